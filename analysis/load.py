"""Recorded runs -> one tidy pandas DataFrame (one row per run), and Parquet export/import.

What MLflow holds is fixed by DEVELOPERS.md "Tracking": run kinds `train|sweep|trial`, tags prefixed
`transgan.`, params = the flattened resolved config with dotted keys (lists as JSON text), metrics
logged with `step = nimg`, and `transgan.protocol.<metric>` = the JSON of that metric's protocol.

Columns of the frame (`RUN_COLUMNS` first, then the prefixed families):
- `run_id, run_name, experiment_id, experiment, parent_run_id, status, start_time, end_time, duration_s`
- the `transgan.*` tags without the prefix (`kind, study, variant, seed, sweep_id, trial_id, ...`);
  tags outside that list keep their name as `tag.<name>`
- `param.<dotted key>`: typed (Int64, Float64, boolean, or str for text and JSON lists)
- `final.<metric>`: the last logged value (largest step); for evaluation metrics that is the
  final EMA generator's score
- `best.<metric>`, `best_kimg.<metric>`: best value during training and where (evaluation metrics)
- `median.<metric>`: median over the history (throughput metrics: `img_per_s`, `sec_per_kimg`)
- `last_kimg`: training length reached (the last `kimg` metric)
- `protocol.<metric>`: the protocol JSON in canonical form (sorted keys), or missing
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from transgan_lab import metric_registry
from transgan_lab.tracking_client import TAG, check_readable, mlflow_client, resolve_tracking_uri, tag_filter
from transgan_lab.tracking_client import TrackingUnavailable as TrackingUnavailable  # raised here, for callers

# The documented `transgan.*` tags that become plain columns.
TAG_COLUMNS = (
    "kind",
    "preset",
    "dataset",
    "sweep_id",
    "trial_id",
    "study",
    "variant",
    "seed",
    "config_hash",
    "dynamics_hash",
    "git_commit",
    "gpu",
    "checkpoint_uri",
)
RUN_COLUMNS = (
    "run_id",
    "run_name",
    "experiment_id",
    "experiment",
    "parent_run_id",
    "status",
    "start_time",
    "end_time",
    "duration_s",
    "last_kimg",
) + TAG_COLUMNS


class AnalysisError(ValueError):
    """A problem with the recorded runs or the request that the user can fix; names the fix.
    (An unreachable or missing store raises ``TrackingUnavailable``, shared with ``platform``.)"""


def canonical_json(text: str | None) -> str | None:
    """Protocol JSON in one canonical spelling (sorted keys, no spaces), so equal protocols compare equal."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(text)


# --------------------------------------------------------------------------------- the store


def store_uri(tracking_uri: str | None) -> str:
    """`--tracking-uri`, else $MLFLOW_TRACKING_URI, else runs/mlflow.db (what the demo writes)."""
    return resolve_tracking_uri(override=tracking_uri)


def open_store(tracking_uri: str | None = None):
    """An MlflowClient on the resolved store; a clear error instead of creating an empty store or
    retrying for minutes when it does not exist or does not answer."""
    uri = store_uri(tracking_uri)
    check_readable(uri)
    return mlflow_client(uri)


def _experiments(cl, experiment: str | None) -> dict[str, str]:
    """experiment_id -> name, for one named experiment or all of them."""
    if experiment:
        exp = cl.get_experiment_by_name(experiment)
        if exp is None:
            names = sorted(e.name for e in cl.search_experiments())
            raise AnalysisError(f"no MLflow experiment named {experiment!r}; known: {', '.join(names) or 'none'}")
        return {exp.experiment_id: exp.name}
    return {e.experiment_id: e.name for e in cl.search_experiments()}


def _search(
    cl, exp_ids: list[str], filter_string: str, order_by: list[str] | None = None, max_results: int | None = None
):
    runs, token = [], None
    while True:
        page = cl.search_runs(
            exp_ids,
            filter_string=filter_string,
            order_by=order_by or ["attributes.start_time ASC"],
            max_results=min(max_results or 1000, 1000),
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token or (max_results and len(runs) >= max_results):
            return runs[:max_results] if max_results else runs


def newest_sweep_id(*, tracking_uri: str | None = None, experiment: str | None = None) -> str:
    """The sweep id of the newest parent run of kind `sweep`."""
    cl = open_store(tracking_uri)
    exps = _experiments(cl, experiment)
    runs = _search(cl, list(exps), tag_filter({TAG + "kind": "sweep"}), ["attributes.start_time DESC"], 1)
    if not runs:
        raise AnalysisError(
            f"no sweep is recorded in {store_uri(tracking_uri)}"
            + (f" (experiment {experiment!r})" if experiment else "")
            + "; run `transgan-lab sweep ...` (or `make demo`) first, or pass --tracking-uri"
        )
    tags = runs[0].data.tags
    return tags.get(TAG + "sweep_id") or runs[0].info.run_name


# ------------------------------------------------------------------------------- typing


def _parse_param(text: str) -> Any:
    """MLflow params are text: '256' -> 256, '0.0002' -> 0.0002, 'true' -> True, '[5, 4]' stays text (JSON)."""
    if text is None:
        return None
    try:
        v = json.loads(text)
    except ValueError:
        low = text.strip().lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return text
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(", ", ": "))  # canonical JSON text, comparable
    return v


def _typed_series(values: list[Any], index: pd.Index) -> pd.Series:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, index=index, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.Series(values, index=index, dtype="Int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([None if v is None else float(v) for v in values], index=index, dtype="Float64")
    return pd.Series([None if v is None else str(v) for v in values], index=index, dtype="string")


def _to_utc(ms: int | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")


# ----------------------------------------------------------------------------------- load


def load_runs(
    *,
    tracking_uri: str | None = None,  # MLflow URI (default: $MLFLOW_TRACKING_URI or runs/mlflow.db)
    experiment: str | None = None,  # experiment name; None = every experiment in the store
    sweep_id: str | None = None,  # only runs tagged transgan.sweep_id = this (parent and trials)
    tags: dict[str, str | list[str]] | None = None,  # tag filters (keys without `transgan.`); a list = any of
    kinds: Iterable[str] | None = None,  # keep only these run kinds (train, sweep, trial)
    histories: bool = True,  # fetch metric histories for best.* and median.* columns
) -> pd.DataFrame:
    """Search MLflow and return one typed row per run (see the module docstring for the columns)."""
    cl = open_store(tracking_uri)
    exps = _experiments(cl, experiment)
    filters = []
    if sweep_id:
        filters.append(tag_filter({TAG + "sweep_id": sweep_id}))
    alternatives: list[str] = [""]  # a list of values = one search per value (MLflow filters have no OR)
    for k, v in (tags or {}).items():
        key = k if k.startswith(("mlflow.", TAG)) else TAG + k
        if isinstance(v, (list, tuple, set)):
            alternatives = [
                f"{a} and {tag_filter({key: x})}" if a else tag_filter({key: x}) for a in alternatives for x in v
            ]
        else:
            filters.append(tag_filter({key: v}))
    runs, seen = [], set()
    for alt in alternatives:
        for r in _search(cl, list(exps), " and ".join(filters + ([alt] if alt else []))):
            if r.info.run_id not in seen:
                seen.add(r.info.run_id)
                runs.append(r)
    runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
    if kinds is not None:
        wanted = set(kinds)
        runs = [r for r in runs if r.data.tags.get(TAG + "kind") in wanted]
    return runs_to_frame(
        runs, experiments=exps, history=(lambda run_id, key: cl.get_metric_history(run_id, key)) if histories else None
    )


def runs_to_frame(runs: list, *, experiments: dict[str, str] | None = None, history=None) -> pd.DataFrame:
    """MLflow `Run` objects -> the tidy frame. `history(run_id, key)` returns a metric's history, or None to skip."""
    experiments = experiments or {}
    rows: list[dict[str, Any]] = []
    params: dict[str, list[Any]] = {}
    for i, run in enumerate(runs):
        info, data = run.info, run.data
        t = data.tags
        start, end = _to_utc(info.start_time), _to_utc(info.end_time)
        row: dict[str, Any] = {
            "run_id": info.run_id,
            "run_name": info.run_name,
            "experiment_id": info.experiment_id,
            "experiment": experiments.get(info.experiment_id),
            "parent_run_id": t.get("mlflow.parentRunId"),
            "status": info.status,
            "start_time": start,
            "end_time": end,
            "duration_s": (end - start).total_seconds() if (start is not None and end is not None) else None,
        }
        for name in TAG_COLUMNS:
            row[name] = t.get(TAG + name)
        for key, value in t.items():
            if key.startswith(TAG + "protocol."):
                row["protocol." + key[len(TAG + "protocol.") :]] = canonical_json(value)
            elif key.startswith(TAG) and key[len(TAG) :] not in TAG_COLUMNS:
                row["tag." + key[len(TAG) :]] = value
        for key, value in data.metrics.items():
            row["final." + key] = float(value)
        for key in sorted(data.metrics):
            has_protocol = (TAG + "protocol." + key) in t
            if history is None or not (
                key in metric_registry.EVAL_METRICS or has_protocol or key in metric_registry.THROUGHPUT_METRICS
            ):
                continue
            hist = sorted(history(info.run_id, key), key=lambda m: (m.step, m.timestamp))
            if not hist:
                continue
            if key in metric_registry.THROUGHPUT_METRICS:
                row["median." + key] = float(pd.Series([m.value for m in hist]).median())
            else:
                pick = min if metric_registry.lower_is_better(key) else max
                best = pick(hist, key=lambda m: m.value)  # first occurrence of the best value
                row["best." + key] = float(best.value)
                row["best_kimg." + key] = best.step / 1000.0
        if "kimg" in data.metrics:
            row["last_kimg"] = float(data.metrics["kimg"])
        elif "nimg" in data.metrics:
            row["last_kimg"] = float(data.metrics["nimg"]) / 1000.0
        if row["seed"] is None and "seed" in data.params:
            row["seed"] = data.params["seed"]
        for key, value in data.params.items():
            params.setdefault(key, [None] * len(runs))[i] = _parse_param(value)
        rows.append(row)
    return _assemble(rows, params, n=len(runs))


def _assemble(rows: list[dict[str, Any]], params: dict[str, list[Any]], *, n: int) -> pd.DataFrame:
    index = pd.RangeIndex(n)
    cols: dict[str, pd.Series] = {}
    fixed = {c: [r.get(c) for r in rows] for c in RUN_COLUMNS}
    for c in RUN_COLUMNS:
        vals = fixed[c]
        if c in ("start_time", "end_time"):
            cols[c] = pd.Series(pd.to_datetime(vals, utc=True), index=index, dtype="datetime64[ms, UTC]")
        elif c in ("duration_s", "last_kimg"):
            cols[c] = pd.Series(vals, index=index, dtype="Float64")
        elif c == "seed":
            cols[c] = pd.Series([None if v is None else int(v) for v in vals], index=index, dtype="Int64")
        else:
            cols[c] = pd.Series(vals, index=index, dtype="string")
    extra = sorted({k for r in rows for k in r} - set(RUN_COLUMNS))
    float_families = ("final.", "best.", "best_kimg.", "median.")
    for c in extra:
        vals = [r.get(c) for r in rows]
        dtype = "Float64" if c.startswith(float_families) else "string"
        cols[c] = pd.Series(vals, index=index, dtype=dtype)
    for key in sorted(params):
        cols["param." + key] = _typed_series(params[key], index)
    order = (
        list(RUN_COLUMNS) + [c for c in extra if c.startswith("tag.")] + [c for c in extra if c.startswith("protocol.")]
    )
    order += [c for fam in float_families for c in extra if c.startswith(fam)]
    order += [c for c in extra if c not in order] + ["param." + k for k in sorted(params)]
    return (
        pd.DataFrame(cols, index=index)[order]
        if rows
        else pd.DataFrame({c: pd.Series(dtype="string") for c in RUN_COLUMNS})
    )


# --------------------------------------------------------------------------------- curves


def load_curves(
    *,
    run_ids: Iterable[str],  # runs whose histories to fetch
    metrics: Iterable[str],  # metric keys, e.g. ["digits_fid", "loss_d"]
    tracking_uri: str | None = None,  # MLflow URI (see load_runs)
) -> pd.DataFrame:
    """Long frame `run_id, metric, step, kimg, value` from the metric histories (step = nimg)."""
    cl = open_store(tracking_uri)
    out = []
    for run_id in run_ids:
        for key in metrics:
            for m in cl.get_metric_history(run_id, key):
                out.append((run_id, key, int(m.step), m.step / 1000.0, float(m.value)))
    df = pd.DataFrame(out, columns=["run_id", "metric", "step", "kimg", "value"])
    return df.sort_values(["run_id", "metric", "step"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------- parquet

_PARQUET_KIND = b"transgan-lab/runs/v1"


def export_parquet(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the runs frame to Parquet (pyarrow), dtypes kept, so tables rebuild without the server."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # pyarrow 25 reads tz-aware columns via Series.values (pandas 3.1 deprecation)
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone")
        table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"transgan.kind"] = _PARQUET_KIND
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def import_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """Read a frame written by `export_parquet`; refuses other Parquet files with a clear message."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise AnalysisError(
            f"Parquet file {path} does not exist; write one with `transgan-lab table ... --export {path}`"
        )
    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for damaged files
        raise AnalysisError(f"{path} is not a readable Parquet file ({e}); export it again with --export") from None
    if (table.schema.metadata or {}).get(b"transgan.kind") != _PARQUET_KIND:
        raise AnalysisError(
            f"{path} was not written by `transgan-lab table --export` (no runs schema marker); export it again"
        )
    return table.to_pandas().reset_index(drop=True)
