"""MLflow tracking, written by ``platform`` (rank 0 only): one logging path, runs keyed by tags.

    runs.py         experiments, the tags and params every run carries, get-or-create by key tags
    logger.py       ``RunLogger``: one run's params, metrics, images, protocols; outage queue
    reporters.py    the engine reporter of in-process training and the run it writes to
    provenance.py   git commit and GPU name of a run
    ui.py           `transgan-lab ui`

The store itself (URIs, the ``/health`` probe, redaction, ``TrackingUnavailable``) is
``transgan_lab.tracking_client``, shared with ``analysis``.
"""

from transgan_lab.platform.tracking.logger import RunLogger
from transgan_lab.platform.tracking.provenance import git_commit, gpu_name
from transgan_lab.platform.tracking.reporters import MlflowReporter, local_run_reporter, start_train_run
from transgan_lab.platform.tracking.runs import base_tags, ensure_experiment, find_runs, flat_params, get_or_create_run
from transgan_lab.tracking_client import (
    TAG,
    TrackingUnavailable,
    check_reachable,
    default_tracking_uri,
    mlflow_client,
    redact,
    resolve_tracking_uri,
)

__all__ = [
    "TAG",
    "MlflowReporter",
    "RunLogger",
    "TrackingUnavailable",
    "base_tags",
    "check_reachable",
    "default_tracking_uri",
    "ensure_experiment",
    "find_runs",
    "flat_params",
    "get_or_create_run",
    "git_commit",
    "gpu_name",
    "local_run_reporter",
    "mlflow_client",
    "redact",
    "resolve_tracking_uri",
    "start_train_run",
]
