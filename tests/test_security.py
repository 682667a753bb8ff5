"""Security: checkpoints never run code, the services we start listen on loopback only, secrets
never reach MLflow, and the cluster configs hold no credentials.

Checkpoint loading itself (weights_only=True, flipped bytes, truncation, pickled code refused at
the library level) is covered in tests/test_checkpoint.py; here the refusal is proven end to end
through `transgan-lab eval`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import torch
from conftest import TINY_MODEL, free_port, stop_process, wait_http

from transgan_lab.platform.cli import main

REPO = Path(__file__).resolve().parents[1]

TINY = [
    *TINY_MODEL,
    "eval.n_fake=64",
    "eval.batch=64",
]


class _OpensAFile:
    """Unpickling this calls open(marker, "w"): code execution, made visible by the file it creates."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _tiny_checkpoint(root: Path) -> Path:
    from transgan_lab.platform.config import config_hash, dynamics_hash, load_config
    from transgan_lab.trainers import checkpoint as ckpt
    from transgan_lab.trainers.hashing import as_dict
    from transgan_lab.trainers.models import build_generator

    cfg = load_config("digits-tiny", TINY)
    return ckpt.save_checkpoint(
        root / "checkpoints",
        step=0,
        state={"G_ema": build_generator(cfg).state_dict()},
        meta={
            "nimg": 0,
            "kimg": 0.0,
            "config": as_dict(cfg),
            "config_hash": config_hash(cfg),
            "dynamics_hash": dynamics_hash(cfg),
        },
    )


def test_eval_refuses_a_checkpoint_whose_generator_is_pickled_code(tmp_path, capsys):
    path = _tiny_checkpoint(tmp_path / "run")
    marker = tmp_path / "pwned"
    target = path / "G_ema.pt"
    torch.save(_OpensAFile(marker), target)
    # Re-sign the manifest, as an attacker who can write the folder would: checksums alone do not save us.
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["G_ema.pt"] = {
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "bytes": target.stat().st_size,
    }
    (path / "manifest.json").write_text(json.dumps(manifest))

    rc = main(["eval", str(tmp_path / "run"), "--n", "4"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "refusing to load" in err and "G_ema.pt" in err and "Traceback" not in err
    assert not marker.exists()
    # Control: the payload is real — an unrestricted load runs it.
    torch.load(target, weights_only=False)
    assert marker.exists()


# ------------------------------------------------------------------------------ listeners


def _listeners(port: int) -> list[str]:
    """Local addresses in LISTEN state on ``port`` (IPv4 and IPv6), from /proc/net/tcp*."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr_hex, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.append(addr_hex)
    return found


def _is_loopback(addr_hex: str) -> bool:
    if len(addr_hex) == 8:  # IPv4, little-endian words
        return addr_hex == "0100007F"
    # IPv6: ::1 or ::ffff:127.0.0.1 (the kernel's words are little-endian per 32 bits)
    return addr_hex in ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


@pytest.mark.slow
def test_ui_listens_on_loopback_only_with_allowed_hosts(tmp_path):
    from transgan_lab.platform import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.check_reachable(uri)  # creates the store the UI shows
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = open(tmp_path / "ui.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "transgan_lab", "ui", "--tracking-uri", uri, "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout_s=240, proc=proc)
        addrs = _listeners(port)
        assert addrs, "nothing listens on the UI port"
        assert all(_is_loopback(a) for a in addrs), f"UI listens beyond loopback: {addrs}"
        # Allowed hosts: an API request naming another host (DNS rebinding) is refused, the same
        # request naming this machine is answered. (/health is exempt from the check by MLflow.)
        api = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        req = urllib.request.Request(api, headers={"Host": "evil.example.com"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=60)
        assert e.value.code in (400, 403)
        with urllib.request.urlopen(api, timeout=60) as r:
            assert r.status == 200 and "experiments" in json.loads(r.read())
    finally:
        stop_process(proc)  # by PID (its own process group)
        log.close()
    deadline = time.monotonic() + 60
    while _listeners(port) and time.monotonic() < deadline:  # the server finishes shutting down
        time.sleep(0.5)
    assert not _listeners(port), "the UI server outlived `transgan-lab ui`"


# ------------------------------------------------------------------------------- secrets


@pytest.mark.slow
def test_secrets_in_the_environment_never_reach_mlflow(mlflow_server, tmp_path, monkeypatch, capsys):
    tag = uuid.uuid4().hex
    secrets = {
        "TRANSGAN_TEST_API_TOKEN": f"tok-{tag}",
        "MY_SERVICE_SECRET": f"sec-{tag}",
        "AWS_SECRET_ACCESS_KEY": f"awskey-{tag}",
        "DB_PASSWORD": f"pw-{tag}",
    }
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    experiment = f"security-{tag[:8]}"
    # The secrets also sit inside config values that are logged: a path, a storage URL, the run name.
    sets = TINY + [
        f"tracking.uri={mlflow_server.uri}",
        f"tracking.experiment={experiment}",
        f"data.root=/mnt/{secrets['TRANSGAN_TEST_API_TOKEN']}/digits",
        f"tracking.storage_path=s3://bucket/{secrets['AWS_SECRET_ACCESS_KEY']}/ray",
        f"name=run-{secrets['MY_SERVICE_SECRET']}",
    ]
    argv = ["train", "digits-tiny", "--kimg", "0.032", "--out", str(tmp_path / "out")]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0, capsys.readouterr().err

    from transgan_lab.platform import tracking

    client = tracking.mlflow_client(mlflow_server.uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["data.root"] == "/mnt/***/digits"  # redacted, not dropped
    assert run.data.params["tracking.storage_path"] == "s3://bucket/***/ray"
    assert run.info.status == "FINISHED"

    # Search the whole store: every param, tag, metric key and run name in the SQLite file, and
    # every artifact file's bytes.
    mlflow_server_root = Path(mlflow_server.root)
    blobs = []
    con = sqlite3.connect(f"file:{mlflow_server_root / 'mlflow.db'}?mode=ro", uri=True)
    try:
        for (table,) in con.execute("select name from sqlite_master where type='table'"):
            for row in con.execute(f'select * from "{table}"'):
                blobs.append(" ".join(str(x) for x in row))
    finally:
        con.close()
    for f in (mlflow_server_root / "artifacts").rglob("*"):
        if f.is_file():
            blobs.append(f.read_bytes().decode("latin-1"))
    everything = "\n".join(blobs)
    assert experiment in everything and "/mnt/***/digits" in everything  # we did search the right store
    for name, value in secrets.items():
        assert value not in everything, f"{name}'s value reached the MLflow store"


# ------------------------------------------------------------------------ cluster configs

_CREDENTIAL_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"(?i)aws_secret_access_key\s*[:=]\s*\S{20,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r'"type"\s*:\s*"service_account"'),  # GCP service account JSON
    re.compile(r"(?i)\b(password|passwd|secret|token|api_key|apikey)\s*[:=]\s*['\"]?[A-Za-z0-9/+_\-]{8,}"),
    re.compile(r"ghp_[A-Za-z0-9]{30,}|xox[baprs]-[A-Za-z0-9-]{10,}|hf_[A-Za-z0-9]{30,}"),
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),  # user:password@host in a URL
]


def _cluster_files() -> list[Path]:
    files = [REPO / "cluster.yaml", REPO / "cluster-gcp.yaml", *sorted((REPO / "platform" / "k8s").glob("*.yaml"))]
    return [f for f in files if f.exists()]


def test_credential_patterns_would_be_found():
    """The scan is not blind: each pattern matches a planted example."""
    samples = [
        "AKIAABCDEFGHIJKLMNOP",
        "aws_secret_access_key: abcdefghijklmnopqrstuvwxyz012345",
        "-----BEGIN RSA PRIVATE KEY-----",
        '{"type": "service_account"}',
        "password: hunter2hunter2",
        "ghp_" + "a" * 36,
        "postgresql://admin:s3cret@db:5432/mlflow",
    ]
    for pattern, sample in zip(_CREDENTIAL_PATTERNS, samples):
        assert pattern.search(sample), pattern.pattern


def test_cluster_configs_hold_no_credentials():
    files = _cluster_files()
    assert REPO / "cluster.yaml" in files and len(files) >= 2
    for f in files:
        text = f.read_text()
        for pattern in _CREDENTIAL_PATTERNS:
            m = pattern.search(text)
            assert m is None, f"{f.name}: looks like a credential: {m.group(0)[:40]!r}"
