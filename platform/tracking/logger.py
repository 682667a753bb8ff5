"""One MLflow run written by rank 0: params once, metrics at ``step = nimg``, images, protocols,
tags, and reports kept in memory while the store is unreachable.

Metrics use ``step = nimg`` (images shown to D) so curves of different batch sizes line up; sample
grids go through ``log_image(key="samples", step=nimg)``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transgan_lab.metric_registry import EVAL_METRICS
from transgan_lab.platform.tracking.runs import TAG_MAX_CHARS, flat_params
from transgan_lab.tracking_client import TAG, health, is_server, mlflow_client, redact
from transgan_lab.trainers import hashing as _hashing


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
        self.client = mlflow_client(uri)
        self._queue: list = []  # reports not yet sent, oldest first
        self._down = False  # the store failed and has not answered since

    # -- once per run -----------------------------------------------------------------------
    def log_config(self, cfg: Any, *, tags: Mapping[str, str] | None = None) -> None:
        """Params (flattened config, once), tags and ``config.yaml`` as an artifact."""
        import yaml
        from mlflow.entities import Param, RunTag

        run = self.client.get_run(self.run_id)
        params = flat_params(cfg)
        existing = run.data.params
        if not existing:
            items = [Param(k, v) for k, v in params.items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(self.run_id, params=items[i : i + 100])
        else:
            changed = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
            if changed:  # a resume under a changed config (allowed by the user): record, never overwrite
                self.client.set_tag(self.run_id, TAG + "resumed_with_changes", ",".join(changed)[:TAG_MAX_CHARS])
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
            self.client.log_batch(self.run_id, metrics=items[i : i + 500])

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
        self.client.set_tag(self.run_id, f"{TAG}protocol.{metric}", json.dumps(data, sort_keys=True)[:TAG_MAX_CHARS])

    # -- tracking outages: keep reports in memory, send them when the store answers again ------
    def report(
        self, metrics: Mapping[str, Any], files: Mapping[str, str] | None = None, checkpoint_uri: str | None = None
    ) -> None:
        """Log one engine report; when the store is unreachable, keep it and send it later.

        Training never stops for a tracking outage: the report waits in memory (the engine's
        metrics.jsonl holds it on disk as well) and is sent, in order, once the store answers.
        """
        self._queue.append((dict(metrics), dict(files or {}), checkpoint_uri))
        self.flush()

    def _store_answers(self) -> bool:
        return not is_server(self.uri) or health(self.uri) is None

    def flush(self) -> bool:
        """Send the kept reports; False while the store is still unreachable."""
        queue = self._queue
        if queue and self._down and not self._store_answers():
            return False  # a cheap check instead of MLflow's long retries on every report
        while queue:
            metrics, files, checkpoint_uri = queue[0]
            try:
                self._report_now(metrics, files, checkpoint_uri)
            except Exception as e:  # noqa: BLE001 - any store failure: keep the report, train on
                if not self._down:
                    print(
                        f"warning: MLflow store {redact(self.uri)} failed ({redact(str(e)).splitlines()[0][:300]}); "
                        "training continues, reports are kept and sent when it answers again "
                        "(metrics.jsonl in the run folder has them too)",
                        file=sys.stderr,
                        flush=True,
                    )
                self._down = True
                return False
            queue.pop(0)
        if self._down:
            print(f"MLflow store {redact(self.uri)} answers again: kept reports sent", file=sys.stderr, flush=True)
        self._down = False
        return True

    def _report_now(
        self, metrics: Mapping[str, Any], files: Mapping[str, str] | None = None, checkpoint_uri: str | None = None
    ) -> None:
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

        self.client.log_batch(
            self.run_id,
            tags=[
                RunTag(k if k.startswith((TAG, "mlflow.")) else TAG + k, redact(str(v))[:TAG_MAX_CHARS])
                for k, v in tags.items()
            ],
        )

    def finish(self, status: str = "FINISHED", *, wait_s: float = 60.0) -> None:
        """Send kept reports (waiting up to ``wait_s`` for the store), then close the run."""
        deadline = time.monotonic() + wait_s
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(2.0)
        if self._queue:
            print(
                f"warning: {len(self._queue)} report(s) could not be sent to {redact(self.uri)}; "
                "they are in the run folder's metrics.jsonl",
                file=sys.stderr,
                flush=True,
            )
        try:
            self.client.set_terminated(self.run_id, status=status)
        except Exception as e:  # noqa: BLE001 - the run stays RUNNING in the UI; the results are on disk
            print(
                f"warning: could not mark MLflow run {self.run_id} {status}: {redact(str(e)).splitlines()[0][:300]}",
                file=sys.stderr,
                flush=True,
            )
