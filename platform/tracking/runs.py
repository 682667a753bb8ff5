"""Which MLflow run: experiments, the ``transgan.*`` tags and params every run carries, and runs
found again by their key tags (so a retried worker group, a retried trial or a restored sweep
continues ITS run instead of creating a duplicate).

Layout of the records (the contract `analysis` reads, see DEVELOPERS.md "Tracking"):

- one run per plain training run (``transgan.kind=train``, keyed by ``transgan.run_key``),
- one parent run per sweep (``kind=sweep``, keyed by ``transgan.sweep_id``) and one nested child
  per trial (``kind=trial``, keyed by ``sweep_id`` + ``trial_id``, ``mlflow.parentRunId`` set).

Params are the flattened resolved config (logged once, dotted keys, lists as JSON text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transgan_lab.tracking_client import TAG, artifact_root_for, mlflow_client, redact, tag_filter
from transgan_lab.trainers import hashing as _hashing

PARAM_MAX_CHARS = 6000  # MLflow's limit on one param value
TAG_MAX_CHARS = 8000


def ensure_experiment(uri: str, name: str) -> str:
    """Experiment id of ``name``, created (with artifacts beside a SQLite store) when missing."""
    client = mlflow_client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = artifact_root_for(uri)
    try:
        return client.create_experiment(name, artifact_location=Path(root).as_uri() if root else None)
    except Exception:
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
        out[k] = redact(text)[:PARAM_MAX_CHARS]
    return out


def base_tags(cfg: Any, *, kind: str, extra: Mapping[str, Any] | None = None) -> dict[str, str]:
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
    return {
        (k if k.startswith(TAG) or k.startswith("mlflow.") else TAG + k): redact(str(v))[:TAG_MAX_CHARS]
        for k, v in tags.items()
        if v is not None
    }


def find_runs(uri: str, experiment_id: str, key: Mapping[str, str], *, max_results: int = 1000) -> list:
    """Runs whose tags match every item of ``key`` (oldest first)."""
    return list(
        mlflow_client(uri).search_runs(
            [experiment_id],
            filter_string=tag_filter(key),
            max_results=max_results,
            order_by=["attributes.start_time ASC"],
        )
    )


def get_or_create_run(
    uri: str,
    experiment_id: str,
    *,
    key: Mapping[str, str],  # tags that identify the run (e.g. sweep_id + trial_id)
    run_name: str,  # readable name shown in the UI
    tags: Mapping[str, str],  # further tags, set on creation and refreshed on reuse
    parent_run_id: str | None = None,  # nests the run under a sweep's parent run
) -> tuple[str, bool]:
    """The run with these key tags, created when missing; returns (run_id, created)."""
    client = mlflow_client(uri)
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
