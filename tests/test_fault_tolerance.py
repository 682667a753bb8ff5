"""Fault tolerance with real components: the tracking server lost at start and mid-run.

Driver loss of a sweep (SIGKILL, rerun resumes, no duplicate MLflow runs) and an unreachable
tracking server for `sweep` are tested in tests/test_sweep.py
(test_killed_driver_restores_without_duplicates, test_unreachable_tracking_fails_before_ray);
this file does not repeat them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_MODEL, MlflowServer, free_port, stop_process

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

TINY = [
    *TINY_MODEL,
    "eval.n_fake=64",
    "eval.batch=64",
    "train.log_kimg=0.032",
    "train.grid_kimg=0",
    "train.precision=fp32",
]


def _cli(args: list[str], *, cwd: Path, env: dict, **kw):
    return [sys.executable, "-m", "transgan_lab", *args], dict(
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO), **env}, **kw
    )


def _sets(items):
    out = []
    for s in items:
        out += ["--set", s]
    return out


def test_unreachable_tracking_fails_before_ray_train_starts(tmp_path):
    """`train --ray` with a dead tracking server: exit 2 naming the URI, no Ray session created."""
    uri = f"http://127.0.0.1:{free_port()}"
    ray_tmp = tmp_path / "raytmp"
    out = tmp_path / "out"
    cmd, kw = _cli(
        ["train", "digits-tiny", "--ray", "--out", str(out), "--kimg", "0.032", *_sets(TINY + [f"tracking.uri={uri}"])],
        cwd=tmp_path,
        env={"RAY_TMPDIR": str(ray_tmp), "TRANSGAN_LAB_DEBUG": ""},
    )
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert p.returncode == 2, p.stderr[-3000:]
    assert uri in p.stderr and "not reachable" in p.stderr and "Traceback" not in p.stderr
    assert not ray_tmp.exists(), "a Ray session was started before the tracking check"
    assert not (out / "ray").exists() and not (out / "train").exists()


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_records(path: Path, n: int, proc: subprocess.Popen, timeout_s: float = 400) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        recs = _records(path)
        if len(recs) >= n:
            return recs
        if proc.poll() is not None:
            raise AssertionError(f"training ended early with {proc.returncode} after {len(recs)} reports")
        time.sleep(0.3)
    raise TimeoutError(f"fewer than {n} reports in {timeout_s} s")


@contextlib.contextmanager
def _paused(proc: subprocess.Popen):
    """Freeze the process group we started (SIGSTOP) for the block, then let it go on (SIGCONT)."""
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGCONT)


def test_tracking_server_lost_mid_run_loses_nothing(tmp_path):
    """Kill the MLflow server after a few reports, bring it back later: training never stops and
    every report (metrics at step=nimg) ends up in the one MLflow run, in order."""
    from transgan_lab.platform import tracking
    from transgan_lab.platform.commands import run_dir_for
    from transgan_lab.platform.config import load_config

    server = MlflowServer(tmp_path / "server").start()
    steps = 32
    sets = TINY + [
        f"tracking.uri={server.uri}",
        "tracking.experiment=outage",
        "train.checkpoint_kimg=0.128",
        f"train.kimg={steps * 32 / 1000}",
    ]
    out = tmp_path / "out"
    run_dir = run_dir_for(load_config("digits-tiny", sets), out)
    log = open(tmp_path / "train.log", "w")
    revived = None
    # Short HTTP retries so the first failed report is noticed quickly (the default backs off for minutes).
    cmd, kw = _cli(
        ["train", "digits-tiny", "--out", str(out), *_sets(sets)],
        cwd=tmp_path,
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"},
    )
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw)
    try:
        # Training is paused (SIGSTOP) while a server stops or starts, so how long that takes on a
        # loaded machine cannot let training finish before the outage or the revival happens.
        _wait_records(run_dir / "metrics.jsonl", 3, proc)
        with _paused(proc):
            server.stop()  # the tracking server dies
            down_at = len(_records(run_dir / "metrics.jsonl"))
        assert down_at + 4 < steps, f"training ran to {down_at} of {steps} reports before the outage"
        _wait_records(run_dir / "metrics.jsonl", down_at + 4, proc)  # training goes on without it
        with _paused(proc):
            revived = MlflowServer(tmp_path / "server")
            revived.port, revived.uri = server.port, server.uri  # same address, same store
            revived.start()
            up_at = len(_records(run_dir / "metrics.jsonl"))
        assert up_at < steps, "training finished while the server was down: nothing left to resend"
        assert proc.wait(600) == 0, (tmp_path / "train.log").read_text()[-3000:]
    finally:
        stop_process(proc)
        log.close()
    try:
        text = (tmp_path / "train.log").read_text()
        assert "training continues, reports are kept" in text and "kept reports sent" in text
        records = _records(run_dir / "metrics.jsonl")
        assert records[-1]["step"] == steps
        client = tracking.mlflow_client(server.uri)
        exp = client.get_experiment_by_name("outage")
        runs = client.search_runs([exp.experiment_id])
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        history = client.get_metric_history(runs[0].info.run_id, "loss_d")
        got = {m.step: m.value for m in history}  # a report re-sent after a partial failure logs the same value
        want = {int(r["nimg"]): float(r["loss_d"]) for r in records if "loss_d" in r}
        assert sorted(got) == sorted(want) and len(want) == steps  # every report, none lost, none invented
        assert [got[k] for k in sorted(got)] == pytest.approx([want[k] for k in sorted(want)])
    finally:
        if revived is not None:
            revived.stop()
        server.stop()


# ------------------------------------------------------------------------------ worker loss


def _descendants(root_pid: int) -> list[int]:
    """Every process below ``root_pid`` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        for c in children.get(pid, []):
            out.append(c)
            todo.append(c)
    return out


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _train_workers(driver_pid: int) -> list[int]:
    return [p for p in _descendants(driver_pid) if "RayTrainWorker" in _title(p)]


def _run_folder(out: Path) -> Path:
    (folder,) = list((out / "train").iterdir())  # one run per output root
    return folder


def _final_weights(out: Path) -> dict:
    from transgan_lab.trainers import checkpoint as ckpt

    found, manifest = ckpt.latest_valid(_run_folder(out))
    _, state = ckpt.load_checkpoint(found, names=["G", "D", "G_ema"])
    return {"step": manifest["step"], **state}


def test_worker_sigkill_resumes_from_checkpoint_and_matches_uninterrupted_run(mlflow_server, tmp_path):
    """SIGKILL one of two gloo workers after the first checkpoint: Ray restarts the group
    (FailureConfig), the engine resumes from the checkpoint, the run finishes at its step count in
    one MLflow run with every step present, and its weights equal an uninterrupted run's."""
    import torch

    from transgan_lab.platform import tracking

    steps = 12
    sets = TINY + [
        "resources.workers=2",
        "resources.cpus_per_worker=1",
        "train.deterministic=true",
        "augment.policy=[]",
        "train.checkpoint_kimg=0.128",
        "train.keep_last=5",
        "sweep.max_failures=2",
        f"train.kimg={steps * 32 / 1000}",
        f"tracking.uri={mlflow_server.uri}",
    ]

    import shutil
    import tempfile

    ray_tmps: list[str] = []

    def launch(tag: str) -> tuple[subprocess.Popen, Path]:
        out = tmp_path / tag
        ray_tmp = tempfile.mkdtemp(prefix=f"tglw-{tag[0]}-", dir="/tmp")  # short: Ray's unix sockets live here
        ray_tmps.append(ray_tmp)
        cmd, kw = _cli(
            [
                "train",
                "digits-tiny",
                "--ray",
                "--out",
                str(out),
                *_sets(sets + [f"tracking.experiment=workerloss-{tag}"]),
            ],
            cwd=tmp_path,
            env={"RAY_TMPDIR": ray_tmp},
        )
        log = open(tmp_path / f"{tag}.log", "w")
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw), out

    killed = launch("killed")
    proc, out = killed
    victim = None
    try:
        deadline = time.monotonic() + 500
        while time.monotonic() < deadline and proc.poll() is None:
            recs = [r for f in (out / "train").glob("*/metrics.jsonl") for r in _records(f)]
            # Step 5 reported: the step-4 checkpoint's report (a barrier) has completed and Ray holds it.
            if recs and recs[-1]["step"] >= 5:
                workers = _train_workers(proc.pid)
                if len(workers) == 2:
                    victim = max(workers)
                    os.kill(victim, 9)
                    break
            time.sleep(0.2)
        assert victim is not None, (tmp_path / "killed.log").read_text()[-3000:]
        assert proc.wait(600) == 0, (tmp_path / "killed.log").read_text()[-3000:]
    finally:
        stop_process(proc)
    clean, out_clean = launch("clean")
    try:
        assert clean.wait(600) == 0, (tmp_path / "clean.log").read_text()[-3000:]
    finally:
        stop_process(clean)
        for d in ray_tmps:
            shutil.rmtree(d, ignore_errors=True)

    a, b = _final_weights(out), _final_weights(out_clean)
    assert a["step"] == b["step"] == steps
    for part in ("G", "D", "G_ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs from the uninterrupted run"
    # The run was really interrupted: Ray records the restarted attempt, the engine the resume.
    log = (tmp_path / "killed.log").read_text()
    status = json.loads((_run_folder(out) / "status.json").read_text())
    assert status["status"] == "finished" and status["step"] == steps
    records = [r["step"] for r in _records(_run_folder(out) / "metrics.jsonl")]
    restart = next(i for i in range(1, len(records)) if records[i] <= records[i - 1])  # the group restarted
    assert records[restart] == 5, f"resumed at step {records[restart]}, not from the step-4 checkpoint: {records}"
    assert records[restart:] == list(range(5, steps + 1))

    client = tracking.mlflow_client(mlflow_server.uri)
    exp = client.get_experiment_by_name("workerloss-killed")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED", log[-2000:]
    history = client.get_metric_history(runs[0].info.run_id, "loss_d")
    by_step: dict[int, set] = {}
    for m in history:
        by_step.setdefault(m.step, set()).add(round(m.value, 6))
    assert sorted(by_step) == [32 * s for s in range(1, steps + 1)]  # no gap
    assert all(len(v) == 1 for v in by_step.values()), "a repeated step logged a different value"


# ------------------------------------------------------------------------------------ soak


@pytest.mark.timeout(2700)  # ~20 Ray Train start-ups on 2 cores; each trial starts 8 processes
def test_soak_twenty_trials_with_injected_faults_all_accounted_for(ray_runtime, mlflow_server, scratch):
    """20 one-report trials, each worker attempt failing with probability sweep.fault_rate: the
    sweep completes and every trial has exactly one MLflow child run with a final outcome."""
    from transgan_lab.platform import tracking
    from transgan_lab.platform.config import load_config
    from transgan_lab.platform.sweep import run_sweep

    n = 20
    cfg = load_config(
        "digits-tiny",
        TINY
        + [
            "name=soak",
            "tracking.experiment=soak",
            "resources.cpus_per_worker=1",
            "sweep.max_concurrent=3",
            "sweep.grace_reports=1",
            f"sweep.num_samples={n}",
            "sweep.fault_rate=0.3",
            "sweep.max_failures=1",
            "train.kimg=0.032",
            "train.checkpoint_kimg=0.032",
            "train.eval_kimg=0.032",
            "eval.n_fake=32",
            "eval.batch=32",
        ],
    )
    out = scratch / "soak"
    res = run_sweep(cfg, out_root=out, tracking_uri=mlflow_server.uri, progress=False)
    df = res.table
    assert len(df) == n and set(df["status"]) <= {"TERMINATED", "ERROR"}
    # Nothing stays reserved: the placement groups of failed and stopped trials were freed (before
    # the sweep driver reaped them, they held their CPUs and the sweep stalled after ~7 faults).
    import ray

    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("CPU", 0) == ray.cluster_resources()["CPU"], ray.available_resources()

    uri = mlflow_server.uri
    exp = tracking.ensure_experiment(uri, "soak")
    parents = tracking.find_runs(uri, exp, {"transgan.sweep_id": res.name, "transgan.kind": "sweep"})
    children = tracking.find_runs(uri, exp, {"transgan.sweep_id": res.name, "transgan.kind": "trial"})
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["transgan.n_trials"] == str(n)
    by_trial = {}
    for c in children:
        by_trial.setdefault(c.data.tags["transgan.trial_id"], []).append(c)
    assert set(by_trial) == set(df["trial_id"]) and all(len(v) == 1 for v in by_trial.values())  # no duplicates
    failed = set(df["trial_id"][df["status"] == "ERROR"])
    for trial_id, (child,) in by_trial.items():
        outcome = child.data.tags["transgan.outcome"]
        assert child.info.status != "RUNNING"
        if trial_id in failed:
            assert outcome == "failed"
        else:
            assert outcome in ("completed", "stopped_early") and "digits_fid" in child.data.metrics
    assert parents[0].data.tags["transgan.n_errors"] == str(len(failed))
    # Faults were really injected (and mostly absorbed by retries): the workers' logs say so.
    # (Only this test sets sweep.fault_rate; the Ray logs and the sweep's storage hold the traces.)
    injected = 0
    for root in (scratch / "ray", out):
        for f in root.rglob("*"):
            if f.is_file() and f.suffix in (".err", ".out", ".log", ".txt") and f.stat().st_size < 50 * 2**20:
                injected += f.read_text(errors="replace").count("injected worker fault")
    print(f"soak: {n} trials, {len(failed)} failed after retries, {injected} injected-fault traces in logs")
    assert injected >= 1


def test_reaper_frees_placement_groups_of_dead_actors_only(ray_runtime):
    """The sweep driver's reaper removes a group whose creating actor died and leaves alone the
    groups of live actors and of the driver itself (Tune's trial groups are the driver's)."""
    import ray
    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

    from transgan_lab.platform.sweep.callbacks import reap_orphaned_placement_groups

    @ray.remote(num_cpus=0)
    class Maker:
        def make(self):
            pg = placement_group([{"CPU": 0.25}])
            ray.get(pg.ready(), timeout=60)
            return pg.id.hex()

    doomed, alive = Maker.remote(), Maker.remote()
    pg_doomed, pg_alive = ray.get([doomed.make.remote(), alive.make.remote()])
    own = placement_group([{"CPU": 0.25}])
    ray.get(own.ready(), timeout=60)
    try:
        assert pg_doomed not in reap_orphaned_placement_groups()  # its creator is still alive
        ray.kill(doomed)
        deadline, reaped = time.monotonic() + 60, []
        while pg_doomed not in reaped and time.monotonic() < deadline:
            reaped += reap_orphaned_placement_groups()
            time.sleep(0.2)
        table = placement_group_table()
        assert reaped == [pg_doomed], reaped
        assert table[pg_doomed]["state"] == "REMOVED"
        assert table[pg_alive]["state"] == "CREATED" and table[own.id.hex()]["state"] == "CREATED"
    finally:
        ray.kill(alive)
        remove_placement_group(own)
        deadline = time.monotonic() + 60  # the test's own leftover is reaped too
        while pg_alive not in reap_orphaned_placement_groups() and time.monotonic() < deadline:
            time.sleep(0.2)
