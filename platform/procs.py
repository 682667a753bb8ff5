"""Process ownership: every server the CLI starts ends with it, however the CLI ends.

A long-lived child (the MLflow UI or tracking server, which itself spawns uvicorn and huey worker
processes) is started through :class:`OwnedProcess`: a small supervisor (``python -m
transgan_lab.platform.procs``) in a new session and process group of its own, which runs the
command in that group and ends the whole group, descendants included, when

- the owner asks (``stop()``: on normal exit, on SIGINT, and on SIGTERM/SIGHUP, which
  :func:`signals_raise` turns into :class:`Terminated` so ``finally`` blocks run),
- the command exits by itself (its workers must not outlive it), or
- the owner dies without asking (SIGKILL, a crash): the supervisor holds the read end of a pipe
  whose only write end is in the owner, sees end-of-file, and ends the group. On Linux it is also
  a child subreaper, so descendants that leave the group (a new session) are still found and ended.

A new session keeps a terminal's Ctrl-C away from the children: the owner decides when they stop.
Standard library only (the supervisor starts in milliseconds).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

GRACE_S = 10.0  # from SIGTERM to SIGKILL, for the group's members to shut down
_OWNED: list[OwnedProcess] = []  # started and not yet stopped, ended at interpreter exit


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C (finally blocks run); exit code 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """While inside: SIGTERM and SIGHUP raise :class:`Terminated` in the main thread."""

    def handler(signum, frame):
        raise Terminated(signum)

    old = {}
    try:
        for s in (signal.SIGTERM, signal.SIGHUP):
            old[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: leave signal handling alone
        pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class OwnedProcess:
    """A command run under a supervisor in its own process group; ends when its owner ends."""

    def __init__(
        self,
        cmd: Sequence[str],  # the command line of the child
        *,
        env: dict | None = None,  # its environment (default: this one)
        cwd: str | None = None,  # its working directory
        stdout=None,  # where its output goes (default: ours)
        stderr=None,  # where its errors go (default: ours)
        grace_s: float = GRACE_S,  # SIGTERM -> SIGKILL wait
    ):
        self.grace_s = grace_s
        read_fd, self._write_fd = os.pipe()  # the owner's end is not inherited by anything else
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "transgan_lab.platform.procs",
                    str(read_fd),
                    str(os.getpid()),
                    str(grace_s),
                    "--",
                    *cmd,
                ],
                env=env,
                cwd=cwd,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                pass_fds=(read_fd,),
                start_new_session=True,
            )
        except BaseException:
            os.close(self._write_fd)
            raise
        finally:
            os.close(read_fd)
        self.pid = self.pgid = self.proc.pid
        self.returncode: int | None = None
        _OWNED.append(self)

    def poll(self) -> int | None:
        """Exit code of the supervisor (the child's own code), or None while it runs; never reaps."""
        if self.returncode is not None:
            return self.returncode
        info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait (without reaping) until the supervisor exits; None when ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
        return code

    def stop(self) -> int | None:
        """End the whole group (SIGTERM, then SIGKILL after the grace period); return the exit code."""
        if self.returncode is not None:
            return self.returncode
        code = self.poll()
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)  # the supervisor ends its group, then exits
            code = self.wait(self.grace_s + 5)
            if code is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pgid, signal.SIGKILL)
                code = self.wait()
        # The supervisor is a zombie until reaped below, so its pid (= the group id) cannot have been
        # reused: whatever is still in the group is ours.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.proc.wait()
        self.returncode = code
        os.close(self._write_fd)
        if self in _OWNED:
            _OWNED.remove(self)
        return code


@atexit.register
def _stop_all() -> None:
    for p in _OWNED[:]:  # a copy: stop() removes p from _OWNED
        p.stop()


# ------------------------------------------------------------------------------ supervisor


def _prctl(option: int, arg: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)


def _members(me: int) -> list[int]:
    """Live processes of our group or below us (Linux /proc); [] where /proc is missing."""
    parent_of, group_of = {}, {}
    for d in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else ():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            parent_of[int(d.name)], group_of[int(d.name)] = int(fields[1]), int(fields[2])
    out = []
    for pid in parent_of:
        p, seen = pid, 0
        while p in parent_of and p != me and seen < 64:
            p, seen = parent_of[p], seen + 1
        if pid != me and (group_of[pid] == me or p == me):
            out.append(pid)
    return out


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _end_group(grace_s: float) -> None:
    """SIGTERM to the group and every descendant, SIGKILL to what is left after ``grace_s``."""
    me = os.getpid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(me, signal.SIGTERM)
    for pid in _members(me):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap()
        if not _members(me):
            return
        time.sleep(0.1)
    if not Path("/proc/self/stat").exists():
        os.killpg(me, signal.SIGKILL)  # no /proc to list the group: end it, this process included
    for pid in _members(me):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    _reap()


def supervise(argv: list[str]) -> int:
    """``procs READ_FD OWNER_PID GRACE_S -- CMD...``: run CMD; end its group with the owner."""
    fd, owner, grace_s, cmd = int(argv[0]), int(argv[1]), float(argv[2]), argv[4:]
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphaned descendants become our children
    _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: told at once when the owner dies
    stopped = []

    def on_signal(signum, frame):
        stopped.append(signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    code = None
    if os.getppid() == owner:  # the owner may have died before prctl above
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        while not stopped:
            if (code := child.poll()) is not None:
                break
            try:
                ready, _, _ = select.select([fd], [], [], 0.5)
            except InterruptedError:
                continue
            if ready and not os.read(fd, 1):  # end of file: the owner is gone
                break
    _end_group(grace_s)
    if code is None:
        return 128 + (stopped[0] if stopped else signal.SIGTERM)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1:]))
