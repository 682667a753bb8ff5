"""Process ownership: a server the CLI starts never outlives it (SIGTERM, SIGHUP, SIGKILL).

`transgan-lab ui` starts the real MLflow UI (uvicorn, and with job execution on, huey consumer
processes) under a supervisor in a process group of its own. The tests record every descendant of
the CLI while the UI answers, end the CLI, and assert that none of them survives and the port is
free again. SIGTERM/SIGHUP are handled by the CLI itself; after SIGKILL the supervisor notices the
lost pipe to its owner and ends the group (the watchdog). The library-level test does the same with
a grandchild that escapes into a session of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port, wait_http

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to list processes")


def _table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, command line) of every live process."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            out[int(d.name)] = (int(fields[1]), int(fields[2]), cmd)
    return out


def _descendants(root: int) -> dict[int, str]:
    table = _table()
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, cmd) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = cmd
                frontier.append(pid)
    return found


def _alive(pids) -> dict[int, str]:
    table = _table()
    return {p: table[p][2] for p in pids if p in table}


def _wait_gone(pids, timeout_s: float = 90.0) -> dict[int, str]:
    deadline = time.monotonic() + timeout_s
    while (left := _alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.25)
    return left


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _start_ui(tmp_path: Path, port: int) -> subprocess.Popen:
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.touch()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}  # its huey workers too: the worst case
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(tmp_path / "ui.log", "ab") as log:  # the CLI keeps its own copy of the file
        proc = subprocess.Popen(
            [sys.executable, "-m", "transgan_lab", "ui", "--tracking-uri", f"sqlite:///{db}", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout_s=180, proc=proc)
        deadline = time.monotonic() + 120  # the job runner starts its huey consumers after the server
        while not any("huey_consumer" in c for c in _descendants(proc.pid).values()) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)  # all of them
    except BaseException:
        _kill_tree(proc.pid)
        raise
    return proc


def _kill_tree(pid: int) -> None:
    """Test cleanup only: end what is left of a failed case, by PID."""
    for p in [*_descendants(pid), pid]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_ui_ended_by_signal_leaves_no_process_and_frees_the_port(tmp_path, sig):
    port = free_port()
    proc = _start_ui(tmp_path, port)
    try:
        kids = _descendants(proc.pid)
        assert any("mlflow" in cmd for cmd in kids.values()), kids  # the server really runs under the CLI
        assert any("huey_consumer" in cmd for cmd in kids.values()), kids  # and its workers
        proc.send_signal(sig)
        assert proc.wait(60) == 128 + sig
        assert _wait_gone(kids) == {}, "processes survived the CLI"
        assert _port_free(port)
        assert f"stopped: terminated by {signal.Signals(sig).name}" in (tmp_path / "ui.log").read_text()
    finally:
        _kill_tree(proc.pid)


@pytest.mark.slow
def test_ui_whose_cli_is_killed_is_reaped_by_the_watchdog(tmp_path):
    port = free_port()
    proc = _start_ui(tmp_path, port)
    kids = _descendants(proc.pid)
    try:
        assert any("huey_consumer" in cmd for cmd in kids.values()), kids  # the server's workers too
        proc.kill()  # SIGKILL: the CLI runs no cleanup at all
        assert proc.wait(30) == -signal.SIGKILL
        assert _wait_gone(kids) == {}, "the watchdog left processes behind"
        assert _port_free(port)
    finally:
        for p in kids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


OWNER = r"""
import subprocess, sys, time
from transgan_lab.platform.procs import OwnedProcess
# A child that starts a grandchild in a session of its own (escaping the group), then waits.
child = OwnedProcess([sys.executable, "-c",
    "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], "
    "start_new_session=True); time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def test_owner_killed_group_and_escaped_grandchild_are_ended(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        supervisor = int(owner.stdout.readline())
        deadline = time.monotonic() + 60
        while len(kids := _descendants(supervisor)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(kids) == 2, kids  # child and the grandchild in its own session
        groups = {_table()[p][1] for p in kids}
        assert len(groups) == 2, "the grandchild should have left the group"
        owner.kill()
        owner.wait(30)
        assert _wait_gone([supervisor, *kids]) == {}
    finally:
        _kill_tree(owner.pid)


def test_owned_process_exit_code_and_stop(tmp_path):
    from transgan_lab.platform.procs import OwnedProcess

    done = OwnedProcess([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert done.wait(60) == 3  # the child's own code comes through the supervisor
    assert done.stop() == 3
    running = OwnedProcess([sys.executable, "-c", "import time; time.sleep(600)"])
    deadline = time.monotonic() + 60
    while not (kids := _descendants(running.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)  # the supervisor has started its child
    assert len(kids) == 1, kids
    assert running.poll() is None
    assert running.stop() == 128 + signal.SIGTERM
    assert _wait_gone([running.pid, *kids]) == {}
