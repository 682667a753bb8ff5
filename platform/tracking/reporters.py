"""The engine's reporter for in-process training (no Ray) and the MLflow run it writes to."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transgan_lab.platform.tracking.logger import RunLogger
from transgan_lab.platform.tracking.provenance import git_commit, gpu_name
from transgan_lab.platform.tracking.runs import base_tags, ensure_experiment, get_or_create_run
from transgan_lab.tracking_client import TAG, check_reachable, redact, resolve_tracking_uri
from transgan_lab.trainers import hashing as _hashing


class MlflowReporter:
    """An engine reporter for in-process training (no Ray): every report goes to one run."""

    def __init__(self, logger: RunLogger | None):
        self.logger = logger  # None on ranks other than 0 or with tracking off

    def report(self, metrics: dict, checkpoint_dir: str | None = None, files: dict | None = None) -> None:
        if self.logger is not None:
            self.logger.report(metrics, files, checkpoint_uri=checkpoint_dir)


def start_train_run(
    cfg: Any,
    *,
    uri: str,  # tracking URI (already checked with check_reachable)
    run_key: str,  # deterministic id of this training run (where its state lives)
    run_name: str | None = None,  # readable name; default <name>-<config hash[:8]>
    tags: Mapping[str, Any] | None = None,  # extra transgan.* tags (study, variant, ...)
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
    tags: Mapping[str, Any] | None = None,  # extra transgan.* tags (study, variant)
):
    """(reporter, finish(status)) for `transgan-lab train` without Ray: one MLflow run per run folder
    (a resumed run finds its MLflow run again by the same folder)."""
    uri = resolve_tracking_uri(out_root=out_root, cfg_uri=cfg.tracking.uri)
    check_reachable(uri)
    logger = start_train_run(
        cfg,
        uri=uri,
        run_key=f"local:{Path(run_dir).resolve()}",
        tags={"run_dir": str(Path(run_dir).resolve()), **(tags or {})},
    )

    def finish(status: str) -> None:
        logger.finish(status)

    return MlflowReporter(logger), finish
