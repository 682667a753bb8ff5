"""Every shipped cluster config passes Ray's own validation; the KubeRay RayJob has the structure
KubeRay needs; no credentials anywhere; the head's MLflow starter binds what it is told.

Ray's validation is the same code `ray up` runs before it touches a cloud (prepare_config +
validate_config of the installed ray 2.60.0) plus a plain jsonschema check against the packaged
ray-schema.json. Cloud-side facts (AMIs, quotas, EFS ids) cannot be checked offline.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from cluster_helpers import (
    LOOPBACK_TEMPLATE,
    REPO,
    SHIPPED_CLUSTER_CONFIGS,
    VENV_BIN,
    find_credentials,
    load_yaml,
    pids_mentioning,
    render_loopback_config,
    validate_like_ray,
    wait_gone,
)
from conftest import free_port

RAYJOB = REPO / "platform" / "k8s" / "rayjob-sweep.yaml"
CLUSTER_FILES = [
    *SHIPPED_CLUSTER_CONFIGS,
    LOOPBACK_TEMPLATE,
    RAYJOB,
    REPO / "scripts" / "submit_job.sh",
    REPO / "scripts" / "cluster_mlflow.sh",
    REPO / "README.md",  # the "Run on a cluster" section
]
CLOUD = {"cluster.yaml": ("aws", "s3://"), "cluster-gcp.yaml": ("gcp", "gs://")}


def _loopback_text(**over) -> str:
    kw = dict(
        cluster_name="tgl-loopback-test",
        ssh_user="root",
        ssh_private_key=Path("/tmp/k/id_ed25519"),
        ray_port=6390,
        dashboard_port=8270,
        agent_port=52370,
        client_port=10010,
        mlflow_port=5010,
    )
    kw.update(over)
    return render_loopback_config(**kw)


def _commands(cfg: dict) -> list[str]:
    keys = [
        "initialization_commands",
        "setup_commands",
        "head_setup_commands",
        "worker_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    ]
    return [c for k in keys for c in cfg.get(k) or []]


def _check_project_mounts(mounts: dict, *, local_prefix: str) -> None:
    """The project reaches ~/transgan-lab folder by folder: everything `pip install -e` needs (the
    pyproject's package-dir folders, pyproject.toml, README.md) plus experiments/ and scripts/, each
    at the same relative path, and never the repository root (Ray hashes every file of a mounted
    folder on each `ray up`, the local .venv included)."""
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_dirs = {d.split("/")[0] for d in pyproject["tool"]["setuptools"]["package-dir"].values()}
    needed = package_dirs | {"pyproject.toml", "README.md", "experiments", "scripts"}
    rels = set()
    for remote, local in mounts.items():
        assert local.startswith(local_prefix + "/"), f"{local!r} is not under {local_prefix!r} (never mount the root)"
        rel = local[len(local_prefix) + 1 :]
        assert remote == f"~/transgan-lab/{rel}", (remote, local)
        assert (REPO / rel).exists(), f"file_mounts names {rel}, which is not in the repository"
        rels.add(rel)
    assert needed <= rels, f"file_mounts lacks {sorted(needed - rels)}"


# ------------------------------------------------------------------ Ray's validation


@pytest.mark.parametrize("path", SHIPPED_CLUSTER_CONFIGS, ids=lambda p: p.name)
def test_cloud_config_passes_ray_validation(path):
    prepared = validate_like_ray(load_yaml(path))
    provider, storage_scheme = CLOUD[path.name]
    assert prepared["provider"]["type"] == provider
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    workers = {k: v for k, v in types.items() if k != prepared["head_node_type"]}

    # CPU head carrying the trial-driver resource, on demand, never scaled.
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] >= 4
    assert head["resources"]["TRAIN_DRIVER_RESOURCE"] >= 1
    assert (head["min_workers"], head["max_workers"]) == (0, 0)
    # GPU workers: an 8-GPU and a 4-GPU type, spot, scale from zero, no driver resource.
    assert sorted(w["resources"]["GPU"] for w in workers.values()) == [4, 8]
    for name, w in workers.items():
        assert "TRAIN_DRIVER_RESOURCE" not in w["resources"], name
        assert w["min_workers"] == 0 and 1 <= w["max_workers"] <= prepared["max_workers"], name
    if provider == "aws":
        assert "InstanceMarketOptions" not in head["node_config"]
        assert all(w["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot" for w in workers.values())
        assert prepared["provider"]["cache_stopped_nodes"] is False
    else:
        assert "scheduling" not in head["node_config"]
        for w in workers.values():
            assert w["node_config"]["scheduling"]["provisioningModel"] == "SPOT"
            assert w["node_config"]["scheduling"]["onHostMaintenance"] == "TERMINATE"
            assert sum(a["acceleratorCount"] for a in w["node_config"]["guestAccelerators"]) == w["resources"]["GPU"]
    assert 1 <= prepared["idle_timeout_minutes"] <= 60

    # The project travels to every node without the venv, and is installed at the pinned versions.
    _check_project_mounts(prepared["file_mounts"], local_prefix=".")
    assert {"**/__pycache__", "runs"} <= set(prepared["rsync_exclude"])
    assert any("pip install" in c and "-e ~/transgan-lab" in c for c in prepared["setup_commands"])
    pins = (REPO / "pyproject.toml").read_text()
    assert f'ray[default,tune,train]=={ray.__version__}"' in pins
    for image in (prepared["docker"]["head_image"], prepared["docker"]["worker_image"]):
        assert image.startswith(f"rayproject/ray:{ray.__version__}-py311"), image

    # MLflow on the head: private address, allowed hosts, store on shared storage; every node
    # learns the URI; Ray Train storage on an object store.
    start = " ".join(prepared["head_start_ray_commands"])
    assert "cluster_mlflow.sh start" in start and "--root /mnt/shared/" in start
    assert "0.0.0.0" not in start and "--dashboard-host=127.0.0.1" in start
    assert any("MLFLOW_TRACKING_URI=http://$(hostname -I" in c for c in prepared["head_setup_commands"])
    assert any("MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:5000" in c for c in prepared["worker_setup_commands"])
    assert any(f"TRANSGAN_LAB_STORAGE_PATH={storage_scheme}" in c for c in prepared["setup_commands"])
    assert any("/mnt/shared" in c for c in prepared["initialization_commands"])


@pytest.mark.parametrize("path", SHIPPED_CLUSTER_CONFIGS, ids=lambda p: p.name)
def test_every_config_command_is_valid_bash(path):
    cfg = load_yaml(path)
    for cmd in _commands(cfg):
        r = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True)
        assert r.returncode == 0, f"{path.name}: {cmd!r}: {r.stderr}"


def test_ray_validation_rejects_broken_configs():
    """The validation above is not vacuous: an unknown key, a fractional resource and a head type
    that does not exist are each refused by the same calls."""
    good = load_yaml(REPO / "cluster.yaml")
    unknown = copy.deepcopy(good)
    unknown["idle_timeout_minute"] = 5  # typo of idle_timeout_minutes
    with pytest.raises(jsonschema.ValidationError, match="idle_timeout_minute"):
        validate_like_ray(unknown)
    fractional = copy.deepcopy(good)
    fractional["available_node_types"]["gpu_4x"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError, match="0.5"):
        validate_like_ray(fractional)
    no_head = copy.deepcopy(good)
    no_head["head_node_type"] = "cpu_head"
    with pytest.raises(ValueError, match="head_node_type"):
        validate_like_ray(no_head)


def test_loopback_config_passes_ray_validation():
    cfg = yaml.safe_load(_loopback_text())
    prepared = validate_like_ray(cfg)
    assert prepared["provider"] == {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    assert list(prepared["available_node_types"]) == ["local.cluster.node"]
    assert prepared["max_workers"] == 0
    # Every address in it is loopback, every port the one asked for.
    text = _loopback_text()
    assert set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text)) == {"127.0.0.1"}
    start = " ".join(prepared["head_start_ray_commands"])
    assert "--node-ip-address=127.0.0.1" in start and "--dashboard-host=127.0.0.1" in start
    assert "--port=6390" in start and "--dashboard-port=8270" in start and "--port 5010" in start
    assert "--dashboard-agent-listen-port=52370" in start and "--ray-client-server-port=10010" in start
    assert "ray stop" not in start  # `ray up` must not end other Ray processes on the machine
    _check_project_mounts(prepared["file_mounts"], local_prefix=str(REPO))
    for cmd in _commands(prepared):
        r = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True)
        assert r.returncode == 0, f"{cmd!r}: {r.stderr}"


def test_loopback_template_refuses_unfilled_fields(tmp_path):
    from cluster_helpers import LOOPBACK_TEMPLATE as real

    text = real.read_text() + "\nmetadata: {{missing_field}}\n"
    import cluster_helpers

    fake = tmp_path / "loopback.yaml.in"
    fake.write_text(text)
    old = cluster_helpers.LOOPBACK_TEMPLATE
    cluster_helpers.LOOPBACK_TEMPLATE = fake
    try:
        with pytest.raises(ValueError, match="missing_field"):
            _loopback_text()
    finally:
        cluster_helpers.LOOPBACK_TEMPLATE = old


# ------------------------------------------------------------------ KubeRay


def test_rayjob_manifest_structure():
    docs = list(yaml.safe_load_all(RAYJOB.read_text()))
    assert len(docs) == 1
    job = docs[0]
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    entry = shlex.split(spec["entrypoint"])
    assert entry[:2] == ["python", "experiments/sweep_cifar.py"]
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert isinstance(runtime_env, dict)
    assert set(runtime_env) <= {"working_dir", "excludes", "env_vars", "pip", "py_modules"}
    assert runtime_env["env_vars"]["MLFLOW_TRACKING_URI"].startswith("http://")
    assert re.match(r"(s3|gs)://", runtime_env["env_vars"]["TRANSGAN_LAB_STORAGE_PATH"])
    assert all(isinstance(v, str) for v in runtime_env["env_vars"].values())
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0 and spec["activeDeadlineSeconds"] > 0

    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0" == ray.__version__
    head = cluster["headGroupSpec"]
    head_c = head["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head_c["resources"].get("limits", {})
    assert head["rayStartParams"]["num-gpus"] == "0"
    # KubeRay's custom-resource syntax: a JSON object inside a quoted string.
    driver = yaml.safe_load(yaml.safe_load(head["rayStartParams"]["resources"]))
    assert driver["TRAIN_DRIVER_RESOURCE"] >= 1
    assert {p["containerPort"] for p in head_c["ports"]} >= {6379, 8265}

    groups = cluster["workerGroupSpecs"]
    gpus = []
    for g in groups:
        c = g["template"]["spec"]["containers"][0]
        limit = int(c["resources"]["limits"]["nvidia.com/gpu"])
        assert int(c["resources"]["requests"]["nvidia.com/gpu"]) == limit
        assert int(g["rayStartParams"]["num-gpus"]) == limit, g["groupName"]
        assert 0 == g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], g["groupName"]
        gpus.append(limit)
    assert sorted(gpus) == [4, 8]
    for c in [head_c] + [g["template"]["spec"]["containers"][0] for g in groups]:
        assert ":" in c["image"] and not c["image"].endswith(":latest")
        assert f"ray{ray.__version__}" in c["image"]
        assert "env" not in c or all(
            "valueFrom" in e or not re.search("KEY|SECRET|TOKEN|PASSWORD", e["name"]) for e in c["env"]
        )


# ------------------------------------------------------------------ credentials


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.name)
def test_no_credentials_in_cluster_files(path):
    assert path.exists(), f"{path} is missing"
    hits = find_credentials(path.read_text())
    assert hits == [], f"{path.name} looks like it holds a credential:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    "bad",
    [
        "aws_access_key_id: AKIAABCDEFGHIJKLMNOP",
        "  AWS_SECRET_ACCESS_KEY=abc",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        '{"type": "service_account", "private_key": "x"}',
        "token: ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "backend: postgresql://mlflow:hunter2hunter2@db:5432/mlflow",
        "  MLFLOW_TRACKING_PASSWORD: s3cr3t-v4lue-here",
        "api_key = 0123456789abcdef",
    ],
)
def test_credential_scan_catches_known_shapes(bad):
    assert find_credentials(bad), bad


def test_credential_scan_passes_placeholders():
    ok = [
        '# EDIT 4: IamInstanceProfile: {Arn: "arn:aws:iam::<ACCOUNT_ID>:instance-profile/<PROFILE_NAME>"}',
        "ssh_private_key: /tmp/x/id_ed25519",
        "serviceAccountName: transgan-lab",
        "auth:",
        '      TRANSGAN_LAB_STORAGE_PATH: "s3://YOUR-BUCKET/transgan-lab/ray-results"',
    ]
    for line in ok:
        assert find_credentials(line) == [], line


# ------------------------------------------------------------------ the head's MLflow starter


def test_mlflow_starter_refuses_bad_arguments():
    script = REPO / "scripts" / "cluster_mlflow.sh"
    r = subprocess.run(
        ["bash", str(script), "start", "--host", "0.0.0.0", "--root", "/tmp/x"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "refusing --host 0.0.0.0" in r.stderr
    r = subprocess.run(["bash", str(script), "start", "--host", "127.0.0.1"], capture_output=True, text=True)
    assert r.returncode == 2 and "--root DIR is required" in r.stderr
    r = subprocess.run(["bash", str(script), "start", "--hots", "x"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown argument '--hots'" in r.stderr


@pytest.mark.slow
def test_mlflow_starter_binds_private_address_and_stops_by_pid(scratch):
    """The command cluster.yaml runs on the head, run here on 127.0.0.1: the server answers, a
    Host header outside --allowed-hosts is refused, and `stop` ends it by its PID file."""
    import os

    root = Path(scratch) / f"head-mlflow-{os.getpid()}"
    port = free_port()
    script = REPO / "scripts" / "cluster_mlflow.sh"
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    try:
        r = subprocess.run(
            ["bash", str(script), "start", "--host", "127.0.0.1", "--port", str(port), "--root", str(root)],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        pid = int((root / "mlflow.pid").read_text())
        assert pid in pids_mentioning(str(root))
        api = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        with urllib.request.urlopen(api, timeout=10) as resp:
            assert resp.status == 200
        req = urllib.request.Request(api, headers={"Host": "attacker.example:80"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code in (400, 403)
        assert (root / "mlflow.db").exists()
    finally:
        subprocess.run(["bash", str(script), "stop", "--root", str(root)], env=env, timeout=60)
    assert wait_gone(str(root), 15) == {}
    assert not (root / "mlflow.pid").exists()


def test_sweep_script_runs_when_copied_alone(tmp_path):
    """`ray submit` copies only experiments/sweep_cifar.py to the head's home; it must still find
    the rest of experiments/ (through the installed project) and parse its arguments."""
    import os
    import shutil

    copy_ = tmp_path / "sweep_cifar.py"
    shutil.copy(REPO / "experiments" / "sweep_cifar.py", copy_)
    r = subprocess.run(
        [str(VENV_BIN / "python"), str(copy_), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert r.returncode == 0, r.stderr
    assert "--smoke" in r.stdout and "--address" in r.stdout
