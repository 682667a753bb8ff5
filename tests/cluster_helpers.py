"""Helpers shared by the cluster tests: Ray's own config validation, the loopback config, a
private sshd on 127.0.0.1, credential scanning, process checks and MLflow sweep checks.

Not a test module (no ``test_`` prefix); imported by test_cluster_config.py, test_ray_job.py and
test_loopback_cluster.py.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
LOOPBACK_TEMPLATE = REPO / "platform" / "loopback-cluster.yaml.in"
# Every cluster config the project ships (the loopback one is a template, rendered first).
SHIPPED_CLUSTER_CONFIGS = [REPO / "cluster.yaml", REPO / "cluster-gcp.yaml"]
VENV_BIN = Path(sys.executable).parent  # the venv of the checkout under test


# ------------------------------------------------------------------ Ray's config validation


def ray_schema() -> dict:
    import ray.autoscaler

    with open(Path(ray.autoscaler.__file__).parent / "ray-schema.json") as f:
        return json.load(f)


def validate_like_ray(config: dict) -> dict:
    """What `ray up` does to a config before touching any cloud: ``prepare_config`` (provider
    defaults, merged setup commands, worker bounds) then ``validate_config`` (jsonschema against
    the packaged ray-schema.json plus head-node-type checks). Private Ray APIs, pinned ray 2.60.0:
    kept in this one function. Also checks the raw file against the schema with jsonschema, so a
    change in the private API cannot silently turn the check off. Returns the prepared config."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    jsonschema.validate(config, ray_schema())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    jsonschema.validate(prepared, ray_schema())
    return prepared


def load_yaml(path: Path) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


# ------------------------------------------------------------------ loopback config


def render_loopback_config(
    *,
    cluster_name: str,  # unique per run: Ray keys its SSH control socket and state files by it
    ssh_user: str,  # the account the private sshd lets in (root in CI)
    ssh_private_key: Path,  # key generated for this run
    project_dir: Path = REPO,  # the checkout copied to ~/transgan-lab on the "head"
    ray_port: int,  # GCS port of the loopback head
    dashboard_port: int,  # dashboard / job server port (bound to 127.0.0.1)
    agent_port: int,  # the dashboard agent's HTTP port (default 52365, often taken by another Ray)
    client_port: int,  # the Ray client server's port (default 10001)
    mlflow_port: int,  # the head's MLflow server (bound to 127.0.0.1)
    num_cpus: int = 4,  # logical CPUs of the head (oversubscribed on a 2-core machine)
    object_store_bytes: int = 300 * 1024**2,  # small object store for a CI box
) -> str:
    """platform/loopback-cluster.yaml.in with every ``{{field}}`` filled; refuses leftovers."""
    values = {
        "cluster_name": cluster_name,
        "ssh_user": ssh_user,
        "ssh_private_key": str(ssh_private_key),
        "project_dir": str(project_dir),
        "ray_port": str(ray_port),
        "dashboard_port": str(dashboard_port),
        "agent_port": str(agent_port),
        "client_port": str(client_port),
        "mlflow_port": str(mlflow_port),
        "num_cpus": str(num_cpus),
        "object_store_bytes": str(object_store_bytes),
    }
    text = LOOPBACK_TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = sorted(set(re.findall(r"\{\{(\w+)\}\}", text)))
    if left:
        raise ValueError(f"{LOOPBACK_TEMPLATE.name}: no value for {left}; add them to render_loopback_config")
    return text


# ------------------------------------------------------------------ credentials

# Patterns of things that must never be committed in a cluster config or manifest.
CREDENTIAL_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key setting": re.compile(r"aws_secret_access_key|AWS_SECRET_ACCESS_KEY|aws_session_token", re.I),
    "private key block": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "GCP service-account key": re.compile(r"\"private_key(_id)?\"\s*:"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    "Slack/generic bearer token": re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}|Bearer\s+[A-Za-z0-9._~+/-]{20,}"),
    "password in a URL": re.compile(r"://[^/\s:@]+:[^/\s@]+@"),
    "secret-looking assignment": re.compile(
        r"(?i)\b[\w-]*(password|passwd|secret|token|api[_-]?key|access[_-]?key)[\w-]*\b\s*[:=]\s*['\"]?(?![\s'\"]*$)[^\s'\"#]{8,}"
    ),
}


def find_credentials(text: str) -> list[str]:
    """Names of the credential patterns found in ``text`` (with the line), empty when clean."""
    hits = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for name, pattern in CREDENTIAL_PATTERNS.items():
            if pattern.search(line):
                hits.append(f"line {lineno}: {name}: {line.strip()[:120]}")
    return hits


# ------------------------------------------------------------------ processes


def ray_daemon_pids() -> dict[int, str]:
    """PID -> command line of every raylet / gcs_server on this machine (anyone's)."""
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        exe = cmd.split(" ", 1)[0]
        if exe.endswith("/raylet") or exe.endswith("/gcs_server") or exe in ("raylet", "gcs_server"):
            out[int(proc.name)] = cmd
    return out


def pids_mentioning(text: str) -> dict[int, str]:
    """PID -> command line of every process (but this one) whose command line contains ``text``."""
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if text in cmd:
            out[int(proc.name)] = cmd
    return out


def wait_gone(text: str, timeout_s: float) -> dict[int, str]:
    """Wait until no process mentions ``text``; returns those still there after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    left = pids_mentioning(text)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = pids_mentioning(text)
    return left


def end_pids_mentioning(text: str, timeout_s: float = 20.0) -> dict[int, str]:
    """SIGTERM, then SIGKILL after ``timeout_s``, every process whose command line contains ``text``
    (a path only this test's processes name); returns what was found."""
    found = pids_mentioning(text)
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    for pid in wait_gone(text, timeout_s):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return found


def remove_ssh_control_dir(cluster_name: str) -> None:
    """Ray keeps its SSH ControlMaster sockets in /tmp/ray_ssh_<user hash>/<cluster hash>/; remove
    the one of this (uniquely named) cluster once its master connection has exited."""
    import getpass
    import hashlib

    user_hash = hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]
    cluster_hash = hashlib.sha256(cluster_name.encode()).hexdigest()[:10]
    parent = Path("/tmp") / f"ray_ssh_{user_hash}"
    shutil.rmtree(parent / cluster_hash, ignore_errors=True)
    try:
        parent.rmdir()  # only when no other cluster's sockets are in it
    except OSError:
        pass


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def kill_pid_file(pid_file: Path, timeout_s: float = 10.0) -> None:
    """End the process whose PID is in ``pid_file`` (a daemon this test started)."""
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().strip())
    except ValueError:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------ private sshd


class LoopbackSSH:
    """A private sshd on 127.0.0.1:22 that lets in one key generated for the run and gives its
    sessions HOME=<root>/home, whose rc files put the checkout's venv on PATH and keep Ray on
    loopback. Started and stopped by the PID in its own PidFile; touches no global file."""

    SSHD = "/usr/sbin/sshd"

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.key = root / "id_ed25519"
        self.config = root / "sshd_config"
        self.pid_file = root / "sshd.pid"
        self.log = root / "sshd.log"
        self.user = os.environ.get("USER") or "root"
        if os.geteuid() == 0:
            self.user = "root"

    @staticmethod
    def ensure_tools() -> None:
        """Install Debian's openssh-server and rsync when missing (root only). The package's
        service is kept from starting (a policy-rc.d for the install only): the system sshd would
        listen on every interface."""
        missing = [
            p
            for p, exe in (("openssh-server", LoopbackSSH.SSHD), ("rsync", "rsync"), ("openssh-client", "ssh"))
            if shutil.which(exe) is None and not Path(exe).exists()
        ]
        if not missing:
            return
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise RuntimeError(f"need {missing} (Debian packages) and root to install them")
        policy = Path("/usr/sbin/policy-rc.d")
        made_policy = not policy.exists()
        if made_policy:
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        try:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=300)
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                check=True,
                env=env,
                timeout=600,
            )
        finally:
            if made_policy:
                policy.unlink(missing_ok=True)

    def write_files(self, *, extra_env: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        for key in (self.key, self.root / "ssh_host_ed25519_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "transgan-lab-loopback", "-f", str(key)],
                check=True,
                timeout=30,
            )
        (self.root / "authorized_keys").write_text(Path(str(self.key) + ".pub").read_text())
        os.chmod(self.root / "authorized_keys", 0o600)
        self.config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    "Port 22",
                    f"HostKey {self.root / 'ssh_host_ed25519_key'}",
                    f"PidFile {self.pid_file}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "MaxSessions 30",
                    "MaxStartups 30:30:60",
                    "X11Forwarding no",
                    "AllowTcpForwarding yes",
                    f"SetEnv HOME={self.home}",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        # Ray runs `bash --login -c -i 'source ~/.bashrc; ...'`; Debian's /etc/profile resets PATH,
        # so the venv comes from the rc files of this temp home.
        (self.home / ".bash_profile").write_text("[ -f ~/.bashrc ] && . ~/.bashrc\n")
        env = {
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            **extra_env,
        }
        lines = [f"export PATH={VENV_BIN}:$PATH"] + [f"export {k}={v}" for k, v in env.items()]
        # sshd starts a session in the account's passwd home (/root) before SetEnv applies; the
        # submitted script writes its outputs (./runs) relative to the working directory.
        lines.append('cd "$HOME"')
        (self.home / ".bashrc").write_text("# written by tests/cluster_helpers.py\n" + "\n".join(lines) + "\n")

    def start(self) -> None:
        if port_in_use(22):
            raise RuntimeError(
                "127.0.0.1:22 is taken (a system sshd?); the loopback cluster needs it "
                "(Ray's cluster config has no SSH port setting)"
            )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
        subprocess.run([self.SSHD, "-f", str(self.config), "-E", str(self.log)], check=True, timeout=30)
        deadline = time.monotonic() + 20
        while not (self.pid_file.exists() and port_in_use(22)):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"private sshd did not come up; log: {self.log.read_text() if self.log.exists() else ''}"
                )
            time.sleep(0.1)

    def ssh(self, command: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
        """Run ``command`` the way Ray does (login + interactive bash) and return the result."""
        return subprocess.run(
            [
                "ssh",
                "-i",
                str(self.key),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                f"{self.user}@127.0.0.1",
                f"bash --login -c -i {command!r}",
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        kill_pid_file(self.pid_file)


# ------------------------------------------------------------------ MLflow checks


def sweep_runs(tracking_uri: str, *, exclude_run_ids: set[str] = frozenset()) -> tuple[list, list]:
    """(sweep parent runs, trial child runs) in every experiment of the store, minus the given ids.
    Parent: tag transgan.kind=sweep; child: transgan.kind=trial with mlflow.parentRunId."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    runs = []
    for exp_id in exp_ids:
        runs += client.search_runs([exp_id], max_results=5000)
    runs = [r for r in runs if r.info.run_id not in exclude_run_ids]
    parents = [r for r in runs if r.data.tags.get("transgan.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("transgan.kind") == "trial"]
    return parents, children


def all_run_ids(tracking_uri: str) -> set[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    ids = set()
    for e in client.search_experiments():
        ids |= {r.info.run_id for r in client.search_runs([e.experiment_id], max_results=5000)}
    return ids


def assert_one_finished_sweep(tracking_uri: str, *, exclude_run_ids: set[str] = frozenset()) -> dict:
    """Exactly one new sweep parent, FINISHED, with >= 2 trial children nested under it, each with
    metrics logged at steps counted in images (nimg). Returns a summary for the test log."""
    from mlflow.tracking import MlflowClient

    parents, children = sweep_runs(tracking_uri, exclude_run_ids=exclude_run_ids)
    assert len(parents) == 1, f"expected one new sweep parent run in {tracking_uri}, found {len(parents)}"
    parent = parents[0]
    assert parent.info.status == "FINISHED", f"sweep parent run is {parent.info.status}"
    mine = [c for c in children if c.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(mine) == len(children), "trial runs that belong to no new sweep parent"
    assert len(mine) >= 2, f"sweep {parent.info.run_id} has {len(mine)} trial runs; the smoke sweep runs several"
    names = [c.info.run_name for c in mine]
    assert len(set(names)) == len(names), f"trial runs share names (readable names must be unique): {sorted(names)}"
    client = MlflowClient(tracking_uri=tracking_uri)
    for child in mine:
        assert child.data.metrics, f"trial run {child.info.run_name} has no metrics"
        steps = {m.step for key in child.data.metrics for m in client.get_metric_history(child.info.run_id, key)}
        assert max(steps) > 0, f"trial run {child.info.run_name} logged no curve over images seen (all steps 0)"
    return {
        "parent": parent.info.run_name,
        "trials": sorted(c.info.run_name for c in mine),
        "statuses": sorted(c.info.status for c in mine),
        "storage_path": parent.data.tags.get("transgan.storage_path"),
    }
