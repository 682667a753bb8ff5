"""A real 2-worker (gloo) Ray Train run of the real engine, tracked in a real MLflow server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_MODEL

from transgan_lab.platform import tracking
from transgan_lab.platform.config import load_config

pytestmark = pytest.mark.slow

# A digits model small enough for a few steps in seconds on 2 shared cores; 4 steps of 32 images,
# a report every step, evaluation + checkpoint + grid every 2 steps.
TINY = [
    *TINY_MODEL,
    "train.kimg=0.128",
    "train.log_kimg=0.032",
    "train.checkpoint_kimg=0.064",
    "train.grid_kimg=0.064",
    "train.eval_kimg=0.064",
    "train.keep_last=2",
    "eval.n_fake=64",
    "eval.batch=64",
]


def test_two_worker_gloo_run_is_tracked(ray_runtime, mlflow_server, tmp_path):
    from transgan_lab.platform.ray_train import run_train_ray

    cfg = load_config("digits-tiny", TINY + ["name=raytrain", "resources.workers=2", "resources.cpus_per_worker=1"])
    out = tmp_path / "out"
    result = run_train_ray(cfg, out_root=out, tracking_uri=mlflow_server.uri, tags={"study": "test"})

    assert result["status"] == "finished", result
    assert result["metrics"]["nimg"] == 4 * 32 and result["metrics"]["step"] == 4
    assert result["metrics"]["evals"] == 2  # fresh evaluations at steps 2 and 4
    # Both ranks ran the engine: rank 1 got its own folder, rank 0 wrote the run folder.
    run_dir = out / "train" / result["name"]
    assert (run_dir / "ranks" / "1").is_dir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished" and status["nimg"] == 128
    # Ray kept the engine's checkpoints under their own names; the best one is a complete checkpoint.
    ray_dir = out / "ray" / result["name"]
    kept = sorted(p.name for p in ray_dir.glob("ckpt-*"))
    assert kept == ["ckpt-00000002", "ckpt-00000004"]
    best = Path(result["checkpoint_uri"])
    assert best.parent == ray_dir and (best / "manifest.json").exists()

    client = tracking.mlflow_client(mlflow_server.uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["resources.workers"] == "2" and run.data.params["model.g.embed_dim"] == "64"
    tags = run.data.tags
    assert tags["transgan.kind"] == "train" and tags["transgan.study"] == "test"
    assert tags["transgan.checkpoint_uri"] == result["checkpoint_uri"]
    assert tags["transgan.config_hash"] and tags["transgan.git_commit"]
    assert json.loads(tags["transgan.protocol.digits_fid"])  # the protocol of the primary metric
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss_d")] == [32, 64, 96, 128]
    fid = client.get_metric_history(run.info.run_id, "digits_fid")
    assert [m.step for m in fid] == [64, 128]  # only where an evaluation ran
    assert fid[-1].value == pytest.approx(result["metrics"]["digits_fid"])
    g_params = client.get_metric_history(run.info.run_id, "g_params")
    assert len(g_params) == 1 and g_params[0].step == 0 and g_params[0].value > 1000
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any("samples" in p and p.endswith(".png") for p in images)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config.yaml", "protocols", "images"}


def test_relaunch_continues_past_checkpoints_reported_before_the_first_evaluation(ray_runtime, tmp_path):
    """A re-launched run (same Ray name and storage) restores Ray's checkpoint snapshot, JSON on disk.

    The first run's step-1 checkpoint is reported before any evaluation, so its primary metric is
    the 'not yet evaluated' value. That value must survive the JSON snapshot as a number Ray can
    rank against the checkpoints the continued run reports (±inf came back as null and failed it).
    """
    from transgan_lab.platform.ray_train import run_train_ray, worst_value

    base = TINY + ["name=relaunch", "train.checkpoint_kimg=0.032", "train.eval_kimg=0.32", "train.keep_last=3"]
    out = tmp_path / "out"
    first = run_train_ray(
        load_config("digits-tiny", base + ["train.kimg=0.064"]), out_root=out, tracking=False, name="relaunch"
    )
    assert first["status"] == "finished" and first["metrics"]["step"] == 2, first
    snapshot = json.loads((out / "ray" / "relaunch" / "checkpoint_manager_snapshot.json").read_text())
    primaries = [r["metrics"]["digits_fid"] for r in snapshot["checkpoint_results"]]
    assert primaries[0] == worst_value("digits_fid") and primaries[1] < primaries[0]  # step 1 unevaluated

    # Train longer under the same name: Ray restores the snapshot and the engine resumes at step 2.
    second = run_train_ray(
        load_config("digits-tiny", base + ["train.kimg=0.128"]), out_root=out, tracking=False, name="relaunch"
    )
    assert second["status"] == "finished" and second["metrics"]["step"] == 4, second
    assert second["metrics"]["reports"] == 2  # steps 3 and 4 only: it continued, not restarted
    kept = sorted(p.name for p in (out / "ray" / "relaunch").glob("ckpt-*"))
    assert kept == ["ckpt-00000002", "ckpt-00000003", "ckpt-00000004"]  # the best 3 by the primary metric


def test_cli_train_on_ray_continues_from_the_resumed_checkpoint(ray_runtime, tmp_path, capsys):
    """`train --ray --resume RUN` starts its Ray run from RUN's checkpoint (it once started from zero)."""
    from transgan_lab.platform.cli import main

    sets = []
    for s in TINY + ["name=rayresume", "train.eval_kimg=0", "train.checkpoint_kimg=0.032", "resources.workers=1"]:
        sets += ["--set", s]
    out = tmp_path / "out"
    assert main(["train", "digits-tiny", "--out", str(out), "--no-tracking", "--kimg", "0.064", *sets]) == 0
    (local,) = [p for p in out.iterdir() if p.name.startswith("rayresume-")]
    assert json.loads((local / "status.json").read_text())["step"] == 2

    args = ["train", "digits-tiny", "--ray", "--out", str(out), "--no-tracking", "--kimg", "0.128"]
    capsys.readouterr()
    assert main([*args, "--resume", str(local), "--dry-run", *sets]) == 0
    planned = capsys.readouterr().out
    assert "# resumes ckpt-00000002 at step 2 (0.064 kimg); 2 steps to 0.128 kimg" in planned
    assert main([*args, "--resume", str(local), *sets]) == 0
    (ray_run,) = (out / "train").iterdir()
    assert f"# run dir: {ray_run.resolve()}\n" in planned  # the dry run named the folder the Ray run wrote
    steps = [json.loads(line)["step"] for line in (ray_run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 4], f"the Ray run did not continue from step 2: {steps}"
    status = json.loads((ray_run / "status.json").read_text())
    assert status["status"] == "finished" and status["nimg"] == 128

    # A local run of the same config in --out does not stop a Ray run of it (that writes elsewhere).
    capsys.readouterr()
    same_as_local = ["train", "digits-tiny", "--ray", "--out", str(out), "--no-tracking", "--kimg", "0.064"]
    assert main([*same_as_local, "--dry-run", *sets]) == 0
    assert f"# run dir: {(out / 'train' / local.name).resolve()}\n" in capsys.readouterr().out
