"""Sweeps on a real local Ray runtime with a real MLflow server: Optuna + ASHA, tracking, restore."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port
from test_ray_train import TINY

from transgan_lab.analysis.pareto import pareto_front
from transgan_lab.platform import tracking
from transgan_lab.platform.config import ConfigError, load_config
from transgan_lab.platform.sweep.space import apply_params, check_space

REPO = Path(__file__).resolve().parents[1]


def _sweep_cfg(name: str, extra=()):
    return load_config(
        "digits-tiny",
        TINY
        + [
            f"name={name}",
            "tracking.experiment=sweeps",
            "resources.cpus_per_worker=1",
            "sweep.max_concurrent=2",
            "sweep.grace_reports=1",
            *extra,
        ],
    )


# --------------------------------------------------------------------------- fast checks


def test_demo_space_keeps_the_cost_per_image_and_starts_at_the_preset():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    from sweep_digits import DEMO

    cfg = load_config("digits-tiny", DEMO)
    base = cfg.model_dump(mode="json")
    paper = check_space(base, "demo", draws=32)
    assert paper == {
        "optim.lr_g": cfg.optim.lr_g,
        "optim.lr_d": cfg.optim.lr_d,
        "optim.n_critic": cfg.optim.n_critic,
        "optim.ema_kimg": cfg.optim.ema_kimg,
        "augment.policy": ",".join(cfg.augment.policy),
    }
    assert apply_params(base, {**paper, "augment.policy": list(cfg.augment.policy)}) == base
    # only recipe knobs: the architecture, batch and resolution of every demo trial are the preset's
    assert not [k for k in paper if k.startswith(("model.", "data.")) or "batch" in k]
    assert cfg.sweep.num_samples >= 4 and cfg.sweep.time_budget_min > 0


def test_space_paper_point_and_validation():
    cfg = load_config("digits-tiny")
    base = cfg.model_dump(mode="json")
    paper = check_space(base, "digits", draws=32)
    g = cfg.model.g
    assert paper["model.g.embed_dim"] == g.embed_dim and [paper[f"model.g.depths.{i}"] for i in range(3)] == list(
        g.depths
    )
    assert "model.g.depths.3" not in paper  # one depth per stage of the preset
    assert apply_params(base, {**paper, "augment.policy": list(cfg.augment.policy)}) == base
    with pytest.raises(ConfigError, match="names no config field"):
        apply_params(base, {"model.g.width": 3})
    # A preset the space does not fit (4 stages: width 128 leaves 2 channels for the preset's 4 heads):
    # a clear error naming the bad values, before anything starts.
    narrow = load_config(
        "digits-tiny", ["data.resolution=32", "model.g.depths=[2,1,1,1]", "model.g.embed_dim=256", "model.g.heads=4"]
    )
    with pytest.raises(ConfigError, match="search space 'digits' produces an invalid config"):
        check_space(narrow.model_dump(mode="json"), "digits", draws=32)


def test_pareto_front():
    import pandas as pd

    df = pd.DataFrame(
        {"digits_fid": [10.0, 20.0, 12.0, 30.0], "img_per_s": [50.0, 100.0, 40.0, 90.0], "trial": ["a", "b", "c", "d"]}
    )
    front = pareto_front(df, ["digits_fid", "img_per_s"])
    assert sorted(front["trial"]) == ["a", "b"]  # c is beaten by a, d by b


def test_unreachable_tracking_fails_before_ray(tmp_path):
    port = free_port()
    out = tmp_path / "out"
    env = {**os.environ, "TRANSGAN_LAB_DEBUG": ""}
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "transgan-lab"),
            "sweep",
            "digits-tiny",
            "--out",
            str(out),
            "--set",
            f"tracking.uri=http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"http://127.0.0.1:{port}" in proc.stderr and "not reachable" in proc.stderr
    assert not (out / "ray").exists()  # no Ray storage: nothing started


# --------------------------------------------------------------------------- real sweeps


@pytest.mark.slow
def test_three_trial_sweep_tracks_parent_and_children(ray_runtime, mlflow_server, tmp_path):
    from transgan_lab.platform.sweep import run_sweep

    cfg = _sweep_cfg("sw3", ["train.kimg=0.192", "sweep.num_samples=3"])
    res = run_sweep(cfg, out_root=tmp_path, tracking_uri=mlflow_server.uri, progress=False)

    df = res.table
    assert len(df) == 3 and set(df["status"]) <= {"TERMINATED"}
    assert df["evals"].min() >= 1  # every trial evaluated at least once (ASHA may stop after the first)
    finite = df[df["digits_fid"].map(math.isfinite)]
    assert res.best["trial_id"] == finite.sort_values("digits_fid")["trial_id"].iloc[0]

    uri = mlflow_server.uri
    exp = tracking.ensure_experiment(uri, "sweeps")
    parents = tracking.find_runs(uri, exp, {"transgan.sweep_id": res.name, "transgan.kind": "sweep"})
    children = tracking.find_runs(uri, exp, {"transgan.sweep_id": res.name, "transgan.kind": "trial"})
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["transgan.best_trial_id"] == res.best["trial_id"]
    assert parent.data.metrics["best_digits_fid"] == pytest.approx(res.best["digits_fid"])
    by_trial = {c.data.tags["transgan.trial_id"]: c for c in children}
    assert set(by_trial) == set(df["trial_id"])
    for _, row in df.iterrows():
        child = by_trial[row["trial_id"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        assert child.data.tags["transgan.outcome"] in ("completed", "stopped_early")
        sampled = json.loads(child.data.tags["transgan.sampled"])
        for key in ("model.g.embed_dim", "model.g.heads", "model.d.depth", "optim.n_critic", "optim.lr_g"):
            assert child.data.params[key] == json.dumps(row[key]) == json.dumps(sampled[key])
        assert child.data.params["model.g.depths"] == json.dumps([row[f"model.g.depths.{i}"] for i in range(3)])
        assert child.data.metrics["digits_fid"] == pytest.approx(row["digits_fid"])
    # The preset itself is the first point evaluated.
    first = next(c for c in children if c.data.tags["transgan.trial"].endswith("-t000"))
    assert first.data.params["model.g.embed_dim"] == "64" and first.data.params["optim.lr_g"] == str(cfg.optim.lr_g)


_DRIVER = r"""
import json, os, sys
import ray
from transgan_lab.platform.config import load_config
from transgan_lab.platform.sweep import run_sweep
out, uri, tmp, overrides = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
ray.init(address="local", num_cpus=4, include_dashboard=True, dashboard_host="127.0.0.1",
         object_store_memory=300 * 1024**2, _temp_dir=tmp, log_to_driver=False)
res = run_sweep(load_config("digits-tiny", overrides), out_root=out, name="killme", tracking_uri=uri, progress=True)
print("RESULT " + json.dumps({"restored": res.restored, "trials": list(res.table["trial_id"]),
                              "status": list(res.table["status"]), "best": res.best["trial_id"]}), flush=True)
ray.shutdown()
"""


def _start_driver(tmp_path: Path, uri: str, overrides: list[str], tag: str) -> subprocess.Popen:
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    ray_tmp = Path("/tmp") / f"tglk-{os.getpid()}-{tag}"  # short: Ray's unix sockets live under it
    log = open(tmp_path / f"driver-{tag}.log", "w")
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "out"), uri, str(ray_tmp), json.dumps(overrides)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=str(REPO),
    )


def _kill_session(proc: subprocess.Popen, ray_tmp_prefix: str) -> None:
    """SIGKILL the driver, then end every process of the Ray runtime it started (by PID)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    for attempt in range(2):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                pgid = os.getpgid(int(pid))
            except (OSError, ProcessLookupError):
                continue
            if pgid == proc.pid or ray_tmp_prefix in cmd:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(1)


@pytest.mark.slow
def test_killed_driver_restores_without_duplicates(mlflow_server, tmp_path):
    uri = mlflow_server.uri
    # Two trials one after the other; ASHA never stops them (grace 10 evaluations). 0.64 kimg is
    # 4-20 steps whatever n_critic the second trial samples; a checkpoint every 2 steps (scaled by
    # the space to every step for n_critic >= 2).
    overrides = TINY + [
        "name=kill",
        "tracking.experiment=killtest",
        "sweep.num_samples=2",
        "train.kimg=0.64",
        "train.eval_kimg=0.32",
        "train.grid_kimg=0.32",
        "sweep.max_concurrent=1",
        "resources.cpus_per_worker=1",
        "sweep.grace_reports=10",
    ]
    first = _start_driver(tmp_path, uri, overrides, "a")
    exp = tracking.ensure_experiment(uri, "killtest")
    client = tracking.mlflow_client(uri)
    deadline = time.monotonic() + 600
    finished, running = [], []
    try:  # kill when the first trial is done and the second is past its first checkpointed reports
        while time.monotonic() < deadline and first.poll() is None:
            runs = tracking.find_runs(uri, exp, {"transgan.sweep_id": "killme", "transgan.kind": "trial"})
            finished = [r for r in runs if r.info.status == "FINISHED"]
            running = [r for r in runs if r.info.status == "RUNNING"]
            if finished and running and len(client.get_metric_history(running[0].info.run_id, "loss_d")) >= 3:
                break
            time.sleep(1)
    finally:
        _kill_session(first, f"tglk-{os.getpid()}-a")
    assert finished and running, (tmp_path / "driver-a.log").read_text()[-3000:]
    interrupted = running[0]
    done_before = {r.data.tags["transgan.trial_id"]: r for r in finished}
    history_before = {
        t: len(tracking.mlflow_client(uri).get_metric_history(r.info.run_id, "loss_d")) for t, r in done_before.items()
    }

    second = _start_driver(tmp_path, uri, overrides, "b")
    try:
        second.wait(600)
    finally:
        _kill_session(second, f"tglk-{os.getpid()}-b")
    log = (tmp_path / "driver-b.log").read_text()
    assert second.returncode == 0, log[-3000:]
    summary = json.loads(next(line for line in log.splitlines() if line.startswith("RESULT "))[7:])
    assert summary["restored"] is True
    assert len(summary["trials"]) == 2 and set(summary["status"]) == {"TERMINATED"}, log[-6000:]
    assert set(done_before) <= set(summary["trials"])  # no finished trial lost

    runs = tracking.find_runs(uri, exp, {"transgan.sweep_id": "killme"})
    children = [r for r in runs if r.data.tags["transgan.kind"] == "trial"]
    parents = [r for r in runs if r.data.tags["transgan.kind"] == "sweep"]
    assert len(parents) == 1 and len(children) == 2  # no duplicated runs
    assert sorted(r.data.tags["transgan.trial_id"] for r in children) == sorted(summary["trials"])
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        if r.data.tags["transgan.trial_id"] in done_before:  # the same run, untouched by the restore
            assert r.info.run_id == done_before[r.data.tags["transgan.trial_id"]].info.run_id
            assert (
                len(client.get_metric_history(r.info.run_id, "loss_d"))
                == history_before[r.data.tags["transgan.trial_id"]]
            )
    # The interrupted trial continued in its own run, from its Ray Train checkpoint, to the end.
    resumed = client.get_run(interrupted.info.run_id)
    assert resumed.info.status == "FINISHED" and resumed.data.metrics["nimg"] >= 640
    assert resumed.data.tags["transgan.trial_id"] == interrupted.data.tags["transgan.trial_id"]
    steps = [m.step for m in client.get_metric_history(interrupted.info.run_id, "loss_d")]
    assert steps.count(steps[0]) == 1 and steps[-1] >= 640  # resumed from a checkpoint, not from scratch
