"""Shared fixtures: isolated caches, a real Ray runtime, a real MLflow server on 127.0.0.1.

Environment variables are set at import time, before any test imports ray, mlflow or torch, so
that nothing writes into $HOME and nothing listens beyond loopback.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from transgan_lab.platform.experiments import TINY_MODEL  # noqa: F401 (test files import it from here)

REPO = Path(__file__).resolve().parents[1]

# One scratch root for the whole session; short, because Ray's unix sockets live under it.
_SCRATCH = Path(tempfile.mkdtemp(prefix="tgl-", dir="/tmp"))

os.environ.update(
    {
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # The server's job runner (a dozen huey worker processes for GenAI jobs) is not needed here.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "TORCH_HOME": str(_SCRATCH / "torch"),
        "MPLCONFIGDIR": str(_SCRATCH / "mpl"),
        "TORCHINDUCTOR_CACHE_DIR": str(_SCRATCH / "inductor"),
        "TRANSGAN_LAB_CACHE": str(_SCRATCH / "cache"),
        "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0"),
    }
)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SCRATCH, ignore_errors=True)


@pytest.fixture(scope="session")
def scratch() -> Path:
    return _SCRATCH


# The smallest digits model the platform tests train (TINY_MODEL, imported above): the model and
# batch part of their overrides, the same as the smoke runs'.


# Ports for the servers the tests start are drawn below the kernel's ephemeral range (32768-60999 on
# these machines: what bind-to-0 and every outgoing connection get) and above Ray's worker ports
# (10002-19999). A port picked there cannot be handed to a Ray worker, an ssh connection or another
# server between the pick and the server's own bind (a pick by bind-to-0 could, and once did).
_PORTS = (20000, 32767)
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that is free now and was not handed out before in this session."""
    low, high = _PORTS
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        high = min(high, ephemeral_low - 1)
    except (OSError, ValueError, IndexError):
        pass
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port on 127.0.0.1 in {low}-{high} after 500 tries")


def wait_http(url: str, timeout_s: float = 60.0, proc=None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def stop_process(proc, timeout_s: float = 15.0) -> None:
    """End a process we started (and its group) by PID."""
    if hasattr(proc, "stop"):  # an OwnedProcess: its supervisor ends the whole group
        proc.stop()
        return
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 with a SQLite store; started and stopped by PID.

    It runs as an OwnedProcess (platform/procs.py): in a process group of its own whose supervisor
    ends the whole group when this test process ends in any way, SIGKILL included, so a killed test
    run leaves no server (and none of its worker processes) behind.
    """

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = None  # an OwnedProcess

    def start(self) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--workers",
            "1",
        ]
        self.log = open(self.root / "server.log", "ab")
        from transgan_lab.platform.procs import OwnedProcess

        self.proc = OwnedProcess(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        # A loaded 2-core machine (other sessions training) takes up to ~160 s to bring the server up
        # (schema migrations, then uvicorn); waiting longer costs nothing when it is quick.
        wait_http(self.uri + "/health", timeout_s=300, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.log.close()


@pytest.fixture(scope="session")
def mlflow_server():
    """One real MLflow tracking server for the session (tests use their own experiments)."""
    server = MlflowServer(_SCRATCH / "mlflow-server").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ray_runtime():
    """A real local Ray runtime shared by the session (starting one costs seconds).

    Logical CPUs are oversubscribed so a Tune trial driver plus two Train workers fit on 2 cores.
    """
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=4,
            # As init_ray starts it: with the dashboard (its State API serves Ray Train's own
            # placement-group cleaner), on 127.0.0.1.
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=free_port(),
            object_store_memory=300 * 1024**2,
            _temp_dir=str(_SCRATCH / "ray"),
            log_to_driver=False,
        )
    yield ray
    ray.shutdown()
