"""`ray job submit` (scripts/submit_job.sh) runs the smoke sweep on a Ray head that this test
starts itself on 127.0.0.1, and MLflow records it.

The head is `ray start --head --block` in its own process group, ended by SIGTERM to that group
(never `ray stop`, which would end every Ray process on the machine), so this test can run in the
main test session beside other Ray tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from cluster_helpers import REPO, VENV_BIN, all_run_ids, assert_one_finished_sweep, wait_gone
from conftest import free_port, stop_process, wait_http

SUBMIT = REPO / "scripts" / "submit_job.sh"
SWEEP_SCRIPT = REPO / "experiments" / "sweep_cifar.py"


def _env(**extra: str) -> dict:
    return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", **extra}


def test_submit_job_refuses_bad_arguments():
    r = subprocess.run(["bash", str(SUBMIT), "--address", "127.0.0.1:8265"], capture_output=True, text=True, env=_env())
    assert r.returncode == 2 and "--address must be the dashboard URL (http://HOST:8265)" in r.stderr
    r = subprocess.run(["bash", str(SUBMIT), "--smoke"], capture_output=True, text=True, env=_env())
    assert r.returncode == 2 and "unknown argument '--smoke'; put sweep arguments after --" in r.stderr
    r = subprocess.run(["bash", str(SUBMIT), "--help"], capture_output=True, text=True, env=_env())
    assert r.returncode == 0 and "ray dashboard cluster.yaml" in r.stdout and "set -euo" not in r.stdout


def _wait_ready_for_jobs(address: str, proc: subprocess.Popen, timeout_s: float = 180) -> None:
    """The dashboard answers before the node's agent that runs jobs has registered ("No available
    agent to submit job"); probe with a trivial job until one is accepted and finishes."""
    import time

    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(address)
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"`ray start --head` exited with {proc.returncode}")
        try:
            job = client.submit_job(entrypoint="true")
            break
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(1)
    while client.get_job_status(job) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        if time.monotonic() > deadline:
            raise TimeoutError(f"probe job {job} did not finish within {timeout_s} s")
        time.sleep(0.5)
    assert client.get_job_status(job) == JobStatus.SUCCEEDED, client.get_job_logs(job)


@pytest.fixture
def local_head():
    """A real Ray head on 127.0.0.1 with its dashboard (the job server), in its own session."""
    temp = Path(tempfile.mkdtemp(prefix="tglj-", dir="/tmp"))  # short: Ray's unix sockets live here
    port, dashboard_port = free_port(), free_port()
    cmd = [
        str(VENV_BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        # Free ports for the servers whose defaults are fixed (52365, 10001): another Ray on this
        # machine may hold them, and then no agent runs jobs here.
        f"--dashboard-agent-listen-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        f"--temp-dir={temp}",
        # Logical CPUs, oversubscribed like the suite's ray_runtime: a trial driver and its Train
        # workers fit on a 2-core machine.
        "--num-cpus=4",
        f"--object-store-memory={300 * 1024**2}",
        "--disable-usage-stats",
    ]
    log = open(temp / "head.log", "wb")
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=_env(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled"),
    )
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        wait_http(address + "/api/version", timeout_s=180, proc=proc)
        _wait_ready_for_jobs(address, proc)
        yield address, temp, proc
    finally:
        stop_process(proc, timeout_s=30)
        log.close()
        left = wait_gone(str(temp), 30)
        shutil.rmtree(temp, ignore_errors=True)
        assert left == {}, f"Ray processes of the test head still run: {left}"


@pytest.mark.slow
def test_ray_job_submit_runs_the_smoke_sweep(local_head, mlflow_server):
    assert SWEEP_SCRIPT.exists(), f"{SWEEP_SCRIPT} is missing (written by the orchestration issue)"
    from ray.job_submission import JobStatus, JobSubmissionClient

    address, temp, head = local_head
    before = all_run_ids(mlflow_server.uri)
    job_id = f"tgl-job-{uuid.uuid4().hex[:8]}"
    shared_storage = temp / "shared-storage"  # stands in for s3://bucket/... of a cloud cluster
    r = subprocess.run(
        ["bash", str(SUBMIT), "--address", address, "--submission-id", job_id, "--", "--smoke"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=temp,  # the script finds the checkout itself
        env=_env(
            MLFLOW_TRACKING_URI=mlflow_server.uri,
            TRANSGAN_LAB_STORAGE_PATH=str(shared_storage),
            RAY_AUTH_MODE="disabled",
        ),
    )
    print(r.stdout[-3000:], r.stderr[-2000:])
    assert r.returncode == 0, f"ray job submit failed:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"

    client = JobSubmissionClient(address)
    info = client.get_job_info(job_id)
    assert info.status == JobStatus.SUCCEEDED, info.message
    assert info.entrypoint == "python experiments/sweep_cifar.py --smoke"
    # The checkout travelled as the job's working_dir (uploaded to the cluster), and the tracking
    # URI as an env var of the runtime env.
    assert info.runtime_env["working_dir"].startswith("gcs://_ray_pkg_")
    assert info.runtime_env["env_vars"]["MLFLOW_TRACKING_URI"] == mlflow_server.uri
    assert info.runtime_env["env_vars"]["TRANSGAN_LAB_STORAGE_PATH"] == str(shared_storage)
    assert head.poll() is None, "the head died during the job"

    summary = assert_one_finished_sweep(mlflow_server.uri, exclude_run_ids=before)
    print("MLflow:", summary)
    assert "RUNNING" not in summary["statuses"], summary
    # Ray storage went where the cluster's TRANSGAN_LAB_STORAGE_PATH pointed (tuner state there).
    assert summary["storage_path"].startswith(str(shared_storage) + "/"), summary
    assert list(Path(summary["storage_path"]).glob("tuner.pkl")), sorted(Path(summary["storage_path"]).iterdir())
