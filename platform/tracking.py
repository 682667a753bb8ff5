"""MLflow tracking: one logging path, run ids keyed by tags, only rank 0 logs.

Layout of the records (the contract `analysis` reads, see DEVELOPERS.md "Tracking"):

- one run per plain training run (``transgan.kind=train``, keyed by ``transgan.run_key``),
- one parent run per sweep (``kind=sweep``, keyed by ``transgan.sweep_id``) and one nested child
  per trial (``kind=trial``, keyed by ``sweep_id`` + ``trial_id``, ``mlflow.parentRunId`` set).

Runs are found again by their key tags, so a retried Ray Train worker group, a retried Tune trial
or a restored sweep continues ITS run instead of creating a duplicate. Params are the flattened
resolved config (logged once); metrics use ``step = nimg`` (images shown to D) so curves of
different batch sizes line up; sample grids go through ``log_image(key="samples", step=nimg)``.

Default store: ``sqlite:///<out>/mlflow.db`` with artifacts in ``<out>/mlartifacts``; on a
cluster, an ``http(s)://`` tracking server (proxied artifacts, no shared disk needed).
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from transgan_lab.trainers import hashing as _hashing

TAG = "transgan."  # prefix of every tag this project writes
_SECRET_NAME = re.compile(r"TOKEN|SECRET|KEY|PASSWORD", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^/:@\s]+):[^@/\s]+@")
_PARAM_MAX_CHARS = 6000  # MLflow's limit on one param value
_TAG_MAX_CHARS = 8000
EVAL_METRICS = ("fid", "is", "kid", "digits_fid", "digits_is")  # names of evaluation metrics


class TrackingUnavailable(Exception):
    """The tracking store cannot be reached or used; the message names the URI and the fix."""


# ------------------------------------------------------------------------------- secrets


def _secret_values() -> list[str]:
    """Values of environment variables whose NAME looks secret (*TOKEN*, *SECRET*, *KEY*, *PASSWORD*)."""
    vals = []
    for name, value in os.environ.items():
        # Short or boolean-like values would redact innocent text ("1", "true").
        if _SECRET_NAME.search(name) and len(value) >= 6 and value.lower() not in ("true", "false", "disabled"):
            vals.append(value)
    return sorted(set(vals), key=len, reverse=True)


def redact(text: str) -> str:
    """Replace secret env-var values and URL passwords in ``text`` with ``***``."""
    out = _URL_PASSWORD.sub(r"\1:***@", str(text))
    for value in _secret_values():
        out = out.replace(value, "***")
    return out


# ------------------------------------------------------------------------- store / URI


def default_tracking_uri(out_root: str | os.PathLike) -> str:
    return f"sqlite:///{Path(out_root).resolve() / 'mlflow.db'}"


def resolve_tracking_uri(
    *,
    out_root: str | os.PathLike,  # output root; the default SQLite file lives here
    cfg_uri: Optional[str] = None,  # tracking.uri from the config
    override: Optional[str] = None,  # --tracking-uri from the command line
) -> str:
    """First of: the command line, the config, $MLFLOW_TRACKING_URI, ``sqlite:///<out>/mlflow.db``."""
    uri = override or cfg_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(out_root)
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme in ("", "file") and not uri.startswith("databricks"):
        raise TrackingUnavailable(
            f"tracking URI {redact(uri)!r} is a plain directory store, which MLflow 3.17 no longer supports; "
            f"use sqlite:///{Path(uri.removeprefix('file://') or '.').resolve() / 'mlflow.db'} or an http(s):// server"
        )
    return uri


def artifact_root_for(uri: str) -> Optional[str]:
    """Artifact location for new experiments: next to a SQLite file; the server's default otherwise."""
    if uri.startswith("sqlite:///"):
        return str(Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts")
    return None


def check_reachable(uri: str, *, timeout_s: float = 10.0) -> None:
    """Fail early (before any Ray work) when the store cannot be used; creates a SQLite DB once."""
    scheme = urllib.parse.urlparse(uri).scheme
    shown = redact(uri)
    if scheme in ("http", "https"):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as r:
                if r.status != 200:
                    raise TrackingUnavailable(f"MLflow tracking server {shown} answered /health with HTTP {r.status}")
        except (urllib.error.URLError, OSError, socket.timeout) as e:
            reason = getattr(e, "reason", e)
            raise TrackingUnavailable(
                f"MLflow tracking server {shown} is not reachable ({reason}); start it "
                f"(e.g. `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db`) "
                f"or point tracking.uri / MLFLOW_TRACKING_URI at a reachable server"
            ) from None
        return
    if scheme == "sqlite":
        path = Path(uri.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingUnavailable(f"cannot create the folder of the MLflow store {shown}: {e.strerror}; pick a writable --out") from None
    try:  # creates/migrates a SQLite schema here, once, before any trial process writes to it
        _client(uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any store error is the user's to fix
        raise TrackingUnavailable(f"MLflow store {shown} cannot be used: {redact(str(e)).splitlines()[0]}") from None


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str) -> str:
    """Experiment id of ``name``, created (with artifacts beside a SQLite store) when missing."""
    client = _client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = artifact_root_for(uri)
    try:
        return client.create_experiment(name, artifact_location=Path(root).as_uri() if root else None)
    except Exception:  # noqa: BLE001 - another process created it in between
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


# ----------------------------------------------------------------------------- content


def flat_params(cfg: Any) -> dict[str, str]:
    """Flattened resolved config: dotted keys, lists/dicts as JSON text, secrets redacted."""
    out = {}
    for k, v in _hashing.flatten(_hashing.as_dict(cfg)).items():
        text = v if isinstance(v, str) else json.dumps(v)
        out[k] = redact(text)[:_PARAM_MAX_CHARS]
    return out


def git_commit(repo: Optional[str | os.PathLike] = None) -> str:
    """HEAD of the checkout this code runs from ("unknown" outside git), "+dirty" when modified."""
    root = Path(repo) if repo else Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def gpu_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - no torch/cuda: a CPU run
        pass
    return "cpu"


def base_tags(cfg: Any, *, kind: str, extra: Optional[Mapping[str, Any]] = None) -> dict[str, str]:
    """The ``transgan.*`` tags every run carries (plus ``extra``, prefixed when needed)."""
    tags = {
        "kind": kind,
        "preset": cfg.preset,
        "dataset": cfg.data.dataset,
        "seed": cfg.seed,
        "config_hash": _hashing.config_hash(cfg),
        "dynamics_hash": _hashing.dynamics_hash(cfg),
    }
    tags.update(extra or {})
    return {(k if k.startswith(TAG) or k.startswith("mlflow.") else TAG + k): redact(str(v))[:_TAG_MAX_CHARS]
            for k, v in tags.items() if v is not None}


def _filter(key: Mapping[str, str]) -> str:
    parts = []
    for k, v in key.items():
        parts.append(f"tags.`{k}` = '{str(v).replace(chr(39), '')}'")
    return " and ".join(parts)


def find_runs(uri: str, experiment_id: str, key: Mapping[str, str], *, max_results: int = 1000) -> list:
    """Runs whose tags match every item of ``key`` (oldest first)."""
    return list(
        _client(uri).search_runs(
            [experiment_id], filter_string=_filter(key), max_results=max_results, order_by=["attributes.start_time ASC"]
        )
    )


def get_or_create_run(
    uri: str,
    experiment_id: str,
    *,
    key: Mapping[str, str],  # tags that identify the run (e.g. sweep_id + trial_id)
    run_name: str,  # readable name shown in the UI
    tags: Mapping[str, str],  # further tags, set on creation and refreshed on reuse
    parent_run_id: Optional[str] = None,  # nests the run under a sweep's parent run
) -> tuple[str, bool]:
    """The run with these key tags, created when missing; returns (run_id, created)."""
    client = _client(uri)
    found = find_runs(uri, experiment_id, key, max_results=2)
    if found:
        run = found[0]
        if run.info.status != "RUNNING":
            client.update_run(run.info.run_id, status="RUNNING")
        for k, v in tags.items():
            client.set_tag(run.info.run_id, k, v)
        return run.info.run_id, False
    all_tags = {**tags, **key}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=redact(run_name), tags=all_tags)
    return run.info.run_id, True


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


class RunLogger:
    """Writes one MLflow run: params once, metrics at step=nimg, images, artifacts, tags.

    Only rank 0 constructs one. Safe to re-create on a retried worker: params are logged once
    (a run that already has params keeps them), everything else appends.
    """

    def __init__(
        self,
        *,
        uri: str,  # tracking URI
        run_id: str,  # the run to write (from get_or_create_run)
    ):
        self.uri = uri
        self.run_id = run_id
        self.client = _client(uri)

    # -- once per run -----------------------------------------------------------------------
    def log_config(self, cfg: Any, *, tags: Optional[Mapping[str, str]] = None) -> None:
        """Params (flattened config, once), tags and ``config.yaml`` as an artifact."""
        from mlflow.entities import Param, RunTag

        import yaml

        run = self.client.get_run(self.run_id)
        params = flat_params(cfg)
        existing = run.data.params
        if not existing:
            items = [Param(k, v) for k, v in params.items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(self.run_id, params=items[i:i + 100])
        else:
            changed = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
            if changed:  # a resume under a changed config (allowed by the user): record, never overwrite
                self.client.set_tag(self.run_id, TAG + "resumed_with_changes", ",".join(changed)[:_TAG_MAX_CHARS])
        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        text = redact(yaml.safe_dump(_hashing.as_dict(cfg), sort_keys=False))
        self.client.log_text(self.run_id, text, "config.yaml")

    def log_static(self, values: Mapping[str, float]) -> None:
        """Values logged once at step 0 (g_params, d_params, g_flops, d_flops)."""
        self.log_metrics(values, step=0)

    # -- every report -----------------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, Any], *, step: int) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, int(step)) for k, v in metrics.items() if _finite(v)]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i:i + 500])

    def log_image(self, path: str, *, step: int, key: str = "samples") -> None:
        from PIL import Image

        with Image.open(path) as img:
            img.load()
            self.client.log_image(self.run_id, img, key=key, step=int(step))

    def log_protocol(self, metric: str, protocol: Mapping[str, Any] | str) -> None:
        """``protocols/<metric>.json`` artifact + ``transgan.protocol.<metric>`` tag."""
        data = json.loads(Path(protocol).read_text()) if isinstance(protocol, (str, os.PathLike)) else dict(protocol)
        data = json.loads(redact(json.dumps(data)))  # protocols hold data.root and other config paths
        self.client.log_dict(self.run_id, data, f"protocols/{metric}.json")
        self.client.set_tag(self.run_id, f"{TAG}protocol.{metric}", json.dumps(data, sort_keys=True)[:_TAG_MAX_CHARS])

    # -- tracking outages: keep reports in memory, send them when the store answers again ------
    def report(self, metrics: Mapping[str, Any], files: Optional[Mapping[str, str]] = None,
               checkpoint_uri: Optional[str] = None) -> None:
        """Log one engine report; when the store is unreachable, keep it and send it later.

        Training never stops for a tracking outage: the report waits in memory (the engine's
        metrics.jsonl holds it on disk as well) and is sent, in order, once the store answers.
        """
        self._pending().append((dict(metrics), dict(files or {}), checkpoint_uri))
        self.flush()

    def _pending(self) -> list:
        if not hasattr(self, "_queue"):
            self._queue, self._down = [], False
        return self._queue

    def _store_answers(self) -> bool:
        if urllib.parse.urlparse(self.uri).scheme not in ("http", "https"):
            return True
        try:
            with urllib.request.urlopen(self.uri.rstrip("/") + "/health", timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError, socket.timeout):
            return False

    def flush(self) -> bool:
        """Send the kept reports; False while the store is still unreachable."""
        queue = self._pending()
        if queue and self._down and not self._store_answers():
            return False  # a cheap check instead of MLflow's long retries on every report
        while queue:
            metrics, files, checkpoint_uri = queue[0]
            try:
                self._report_now(metrics, files, checkpoint_uri)
            except Exception as e:  # noqa: BLE001 - any store failure: keep the report, train on
                if not self._down:
                    print(f"warning: MLflow store {redact(self.uri)} failed ({redact(str(e)).splitlines()[0][:300]}); "
                          "training continues, reports are kept and sent when it answers again "
                          "(metrics.jsonl in the run folder has them too)", file=sys.stderr, flush=True)
                self._down = True
                return False
            queue.pop(0)
        if self._down:
            print(f"MLflow store {redact(self.uri)} answers again: kept reports sent", file=sys.stderr, flush=True)
        self._down = False
        return True

    def _report_now(self, metrics: Mapping[str, Any], files: Optional[Mapping[str, str]] = None,
                    checkpoint_uri: Optional[str] = None) -> None:
        """One engine report: metrics at step=nimg, the sample grid, protocols, the checkpoint location.

        Evaluation metrics are logged only on reports where an evaluation ran (the engine passes
        ``files["protocols"]`` exactly then); other reports may repeat the latest values.
        """
        step = int(metrics.get("nimg", metrics.get("step", 0)) or 0)
        fresh = "protocols" in (files or {})
        self.log_metrics({k: v for k, v in metrics.items() if fresh or k not in EVAL_METRICS}, step=step)
        for name, path in (files or {}).items():
            if name == "grid" and path and Path(path).exists():
                self.log_image(path, step=step)
            elif name == "protocols" and path and Path(path).exists():  # {metric: protocol} of this evaluation
                for metric, protocol in json.loads(Path(path).read_text()).items():
                    self.log_protocol(metric, protocol)
            elif name.startswith("protocol.") and path and Path(path).exists():
                self.log_protocol(name.removeprefix("protocol."), path)
        if checkpoint_uri:
            self.client.set_tag(self.run_id, TAG + "latest_checkpoint_uri", redact(checkpoint_uri))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k if k.startswith((TAG, "mlflow.")) else TAG + k,
                                                        redact(str(v))[:_TAG_MAX_CHARS]) for k, v in tags.items()])

    def finish(self, status: str = "FINISHED", *, wait_s: float = 60.0) -> None:
        """Send kept reports (waiting up to ``wait_s`` for the store), then close the run."""
        deadline = time.monotonic() + wait_s
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(2.0)
        if self._pending():
            print(f"warning: {len(self._pending())} report(s) could not be sent to {redact(self.uri)}; "
                  "they are in the run folder's metrics.jsonl", file=sys.stderr, flush=True)
        try:
            self.client.set_terminated(self.run_id, status=status)
        except Exception as e:  # noqa: BLE001 - the run stays RUNNING in the UI; the results are on disk
            print(f"warning: could not mark MLflow run {self.run_id} {status}: {redact(str(e)).splitlines()[0][:300]}",
                  file=sys.stderr, flush=True)


class MlflowReporter:
    """An engine reporter for in-process training (no Ray): every report goes to one run."""

    def __init__(self, logger: Optional[RunLogger]):
        self.logger = logger  # None on ranks other than 0 or with tracking off

    def report(self, metrics: dict, checkpoint_dir: Optional[str] = None, files: Optional[dict] = None) -> None:
        if self.logger is not None:
            self.logger.report(metrics, files, checkpoint_uri=checkpoint_dir)


def start_train_run(
    cfg: Any,
    *,
    uri: str,  # tracking URI (already checked with check_reachable)
    run_key: str,  # deterministic id of this training run (where its state lives)
    run_name: Optional[str] = None,  # readable name; default <name>-<config hash[:8]>
    tags: Optional[Mapping[str, Any]] = None,  # extra transgan.* tags (study, variant, ...)
) -> RunLogger:
    """Get-or-create the MLflow run of a plain training run and log its config."""
    exp_id = ensure_experiment(uri, cfg.tracking.experiment)
    all_tags = base_tags(cfg, kind="train", extra={"git_commit": git_commit(), "gpu": gpu_name(), **(tags or {})})
    run_name = run_name or f"{cfg.name}-{_hashing.config_hash(cfg)[:8]}"
    run_id, _ = get_or_create_run(uri, exp_id, key={TAG + "run_key": redact(run_key)}, run_name=run_name, tags=all_tags)
    logger = RunLogger(uri=uri, run_id=run_id)
    logger.log_config(cfg)
    return logger


def local_run_reporter(
    cfg: Any,
    *,
    run_dir: str | os.PathLike,  # the engine's run folder (its resolved path keys the MLflow run)
    out_root: str | os.PathLike,  # output root: the default SQLite store lives here
    resume: Any = None,  # unused: a resumed run finds its MLflow run by the same run folder
    tags: Optional[Mapping[str, Any]] = None,  # extra transgan.* tags (study, variant)
):
    """(reporter, finish(status)) for `transgan-lab train` without Ray: one MLflow run per run folder."""
    uri = resolve_tracking_uri(out_root=out_root, cfg_uri=cfg.tracking.uri)
    check_reachable(uri)
    logger = start_train_run(cfg, uri=uri, run_key=f"local:{Path(run_dir).resolve()}",
                             tags={"run_dir": str(Path(run_dir).resolve()), **(tags or {})})

    def finish(status: str) -> None:
        logger.finish(status)

    return MlflowReporter(logger), finish


# ------------------------------------------------------------------------------------ UI


def cmd_ui(args) -> int:
    """`transgan-lab ui`: the MLflow UI on 127.0.0.1 for the run store (foreground, Ctrl-C stops it)."""
    uri = resolve_tracking_uri(out_root="runs", override=getattr(args, "tracking_uri", None))
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.exists():
            raise TrackingUnavailable(
                f"no run store at {db}: nothing has been recorded there yet; run `make demo` or "
                f"`transgan-lab sweep digits-tiny`, or pass --tracking-uri sqlite:///path/to/mlflow.db"
            )
    elif uri.startswith(("http://", "https://")):
        print(f"{redact(uri)} is already a tracking server: open it in a browser")
        return 0
    host, port = args.host, int(args.port)
    allowed = ",".join(sorted({f"{host}:{port}", f"localhost:{port}", f"127.0.0.1:{port}", host, "localhost", "127.0.0.1"}))
    cmd = [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", uri,
           "--host", host, "--port", str(port), "--workers", "1", "--allowed-hosts", allowed]
    root = artifact_root_for(uri)
    if root:
        cmd += ["--default-artifact-root", Path(root).as_uri()]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true")}
    print(f"MLflow UI for {redact(uri)} on http://{host}:{port}  (Ctrl-C stops it)", flush=True)
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(15)
        return 0
