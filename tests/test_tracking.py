"""MLflow tracking against a real `mlflow server` on 127.0.0.1 (and real SQLite stores)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port, stop_process, wait_http
from PIL import Image

from transgan_lab.platform import tracking
from transgan_lab.platform.config import load_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _exp(uri: str) -> str:
    return tracking.ensure_experiment(uri, f"test-tracking-{uuid.uuid4().hex[:8]}")


def test_uri_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri(out_root=tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert tracking.resolve_tracking_uri(out_root=tmp_path) == "http://127.0.0.1:1"
    assert tracking.resolve_tracking_uri(out_root=tmp_path, cfg_uri="sqlite:///a.db") == "sqlite:///a.db"
    assert (
        tracking.resolve_tracking_uri(out_root=tmp_path, cfg_uri="sqlite:///a.db", override="http://h:2")
        == "http://h:2"
    )
    with pytest.raises(tracking.TrackingUnavailable, match="sqlite:///"):
        tracking.resolve_tracking_uri(out_root=tmp_path, override=str(tmp_path / "mlruns"))


def test_unreachable_server_is_named(monkeypatch):
    port = free_port()  # nothing listens there
    uri = f"http://user:hunter2pass@127.0.0.1:{port}"
    with pytest.raises(tracking.TrackingUnavailable) as e:
        tracking.check_reachable(uri, timeout_s=3)
    msg = str(e.value)
    assert f"127.0.0.1:{port}" in msg and "not reachable" in msg
    assert "hunter2pass" not in msg  # the password in the URI is redacted


def test_sqlite_store_created_once(tmp_path):
    uri = tracking.default_tracking_uri(tmp_path / "out")
    tracking.check_reachable(uri)
    assert (tmp_path / "out" / "mlflow.db").stat().st_size > 0
    exp_id = tracking.ensure_experiment(uri, "x")
    assert tracking.ensure_experiment(uri, "x") == exp_id
    loc = tracking.mlflow_client(uri).get_experiment(exp_id).artifact_location
    assert loc == (tmp_path / "out" / "mlartifacts").resolve().as_uri()


def test_get_or_create_is_keyed_by_tags(mlflow_server):
    uri = mlflow_server.uri
    exp = _exp(uri)
    key = {"transgan.sweep_id": "s1"}
    parent, created = tracking.get_or_create_run(uri, exp, key=key, run_name="s1", tags={"transgan.kind": "sweep"})
    assert created
    again, created2 = tracking.get_or_create_run(uri, exp, key=key, run_name="s1", tags={"transgan.kind": "sweep"})
    assert (again, created2) == (parent, False)
    ids = set()
    for attempt in range(2):  # a retried trial gets its run back, even after it was marked FAILED
        child, _ = tracking.get_or_create_run(
            uri,
            exp,
            key={"transgan.sweep_id": "s1", "transgan.trial_id": "t_00000"},
            run_name="s1-t000",
            tags={"transgan.kind": "trial"},
            parent_run_id=parent,
        )
        ids.add(child)
        tracking.RunLogger(uri=uri, run_id=child).finish("FAILED")
    assert len(ids) == 1
    runs = tracking.find_runs(uri, exp, {"transgan.sweep_id": "s1"})
    assert len(runs) == 2
    child_run = [r for r in runs if r.info.run_id != parent][0]
    assert child_run.data.tags["mlflow.parentRunId"] == parent


def test_run_logger_params_metrics_images_protocols(mlflow_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cr3t-value-42")
    uri = mlflow_server.uri
    cfg = load_config("digits-tiny", ["name=run-s3cr3t-value-42"])
    exp = _exp(uri)
    run_id, _ = tracking.get_or_create_run(
        uri, exp, key={"transgan.run_key": "k"}, run_name="k", tags=tracking.base_tags(cfg, kind="train")
    )
    log = tracking.RunLogger(uri=uri, run_id=run_id)
    log.log_config(cfg)
    log.log_config(cfg)  # a retried worker: params are not logged twice, no error
    grid = tmp_path / "grid.png"
    Image.fromarray((np.arange(16 * 16 * 3) % 255).astype(np.uint8).reshape(16, 16, 3)).save(grid)
    proto = tmp_path / "protocols.json"
    proto.write_text(json.dumps({"digits_fid": {"n_fake": 64, "extractor": "digits-cnn"}}))
    log.report({"nimg": 256, "kimg": 0.256, "loss_d": 1.5, "loss_g": float("nan")}, {"grid": str(grid)})
    log.report(
        {"nimg": 512, "kimg": 0.512, "loss_d": 1.25, "digits_fid": 33.0},
        {"grid": str(grid), "protocols": str(proto)},
        checkpoint_uri="/x/ckpt-00000002",
    )
    log.finish()

    client = tracking.mlflow_client(uri)
    run = client.get_run(run_id)
    p, t = run.data.params, run.data.tags
    assert p["model.g.depths"] == json.dumps(cfg.model.g.depths) and p["model.g.embed_dim"] == str(
        cfg.model.g.embed_dim
    )
    assert p["augment.policy"] == json.dumps(cfg.augment.policy)
    assert p["name"] == "run-***"  # value of an env var named *TOKEN* is redacted
    assert t["transgan.kind"] == "train" and t["transgan.dataset"] == "digits" and t["transgan.preset"] == "digits-tiny"
    assert t["transgan.latest_checkpoint_uri"] == "/x/ckpt-00000002"
    assert json.loads(t["transgan.protocol.digits_fid"]) == {"extractor": "digits-cnn", "n_fake": 64}
    hist = client.get_metric_history(run_id, "loss_d")
    assert [(m.step, m.value) for m in hist] == [(256, 1.5), (512, 1.25)]
    assert "loss_g" not in run.data.metrics  # NaN is not logged
    assert [m.step for m in client.get_metric_history(run_id, "digits_fid")] == [512]
    arts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "protocols", "images"} <= arts
    config_text = Path(client.download_artifacts(run_id, "config.yaml", str(tmp_path / "dl"))).read_text()
    assert "s3cr3t-value-42" not in config_text and "model:" in config_text
    images = [a.path for a in client.list_artifacts(run_id, "images")]
    assert len([i for i in images if "samples" in i and i.endswith(".png")]) >= 2
    assert run.info.status == "FINISHED"


def test_ui_serves_the_store_on_loopback(tmp_path):
    uri = tracking.default_tracking_uri(tmp_path)
    tracking.check_reachable(uri)
    port = free_port()
    exe = str(Path(sys.executable).parent / "transgan-lab")
    proc = subprocess.Popen(
        [exe, "ui", "--tracking-uri", uri, "--port", str(port)],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout_s=90, proc=proc)
    finally:
        stop_process(proc)
    missing = subprocess.run(
        [exe, "ui", "--tracking-uri", f"sqlite:///{tmp_path}/nothing/mlflow.db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "no run store at" in missing.stderr and "nothing/mlflow.db" in missing.stderr
