"""Group runs by configuration across seeds: mean ± std and n, under one stated per-run value rule.

Per-run value rule (`pick`):
- `final` (default): the metric's last logged value, i.e. the score of the final EMA generator;
- `best`: the best value logged during training (min for FID/KID, max for IS). Only on request, and
  every output built from it says so ("best during training").

Protocols: every evaluation score carries its protocol (`protocol.<metric>` column). Rows whose
protocol JSON differs are never averaged together and never ranked against each other: `aggregate`
and `check_protocols` raise `ProtocolMismatch`, naming the runs and the differing fields, and the
fix (`select_protocol`, i.e. `transgan-lab table --protocol ID`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence

import pandas as pd

from transgan_lab.analysis.load import AnalysisError
from transgan_lab.metric_registry import EVAL_METRICS, NON_DYNAMIC, in_fields

PICKS = {"final": "final", "best": "best"}
PICK_LABELS = {"final": "final EMA value", "best": "best during training"}

# Bookkeeping params, not the experiment: they may differ between the seeds of one configuration
# and are never a sweep's searched params: the fields that do not change what is trained, and the
# seed, but not the training length (another length is another budget). `eval.*` is left to the
# protocol check, which names it precisely.
BOOKKEEPING = ("seed",) + tuple(f for f in NON_DYNAMIC if f != "train.kimg")


def is_bookkeeping(key: str) -> bool:
    """A config field (dotted) that may differ between the seeds of one configuration."""
    return in_fields(key, BOOKKEEPING)


class ProtocolMismatch(AnalysisError):
    """Rows scored under different evaluation protocols were about to be merged or ranked together."""


def protocol_id(protocol_json: str | None) -> str:
    """Short stable id of a canonical protocol JSON ('none' when a score has no recorded protocol)."""
    if (
        protocol_json is None
        or (isinstance(protocol_json, float) and math.isnan(protocol_json))
        or protocol_json is pd.NA
    ):
        return "none"
    return hashlib.sha256(protocol_json.encode()).hexdigest()[:8]


def value_column(metric: str, pick: str) -> str:
    """Column holding the per-run value of `metric` under the rule `pick` (final | best)."""
    if pick not in PICKS:
        raise AnalysisError(
            f"unknown per-run value rule {pick!r}; use 'final' (final EMA value) or 'best' (best during training)"
        )
    return f"{PICKS[pick]}.{metric}"


def eval_metrics_in(df: pd.DataFrame, *, pick: str = "final") -> list[str]:
    """Evaluation metrics that have at least one value in `df`, in the paper's column order (IS before FID)."""
    return [m for m in EVAL_METRICS if value_column(m, pick) in df.columns and df[value_column(m, pick)].notna().any()]


def _present(value) -> bool:
    return not (value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)))


def _describe_difference(protocols: Sequence[str | None]) -> str:
    """Which protocol fields differ, e.g. 'n_fake: 2000 vs 500'."""
    dicts = []
    for p in protocols:
        try:
            dicts.append(json.loads(p) if _present(p) else {})
        except ValueError:
            dicts.append({"_text": p})
    keys = sorted({k for d in dicts for k in d})
    diffs = []
    for k in keys:
        vals = [json.dumps(d.get(k), sort_keys=True) if k in d else "(missing)" for d in dicts]
        if len(set(vals)) > 1:
            diffs.append(f"{k}: {' vs '.join(dict.fromkeys(vals))}")
    return "; ".join(diffs) or "recorded vs not recorded"


def protocol_groups(df: pd.DataFrame, metric: str, *, pick: str = "final") -> dict[str | None, list[str]]:
    """Canonical protocol JSON -> run names, over the rows that have a value for `metric`."""
    col, pcol = value_column(metric, pick), f"protocol.{metric}"
    out: dict[str | None, list[str]] = {}
    if col not in df.columns:
        return out
    scored = df[df[col].notna()]
    names = scored["run_name"] if "run_name" in scored else scored["run_id"]
    protocols = scored[pcol] if pcol in scored.columns else [None] * len(scored)
    for p, name in zip(protocols, names):
        out.setdefault(p if _present(p) else None, []).append(str(name))
    return out


def check_protocols(
    df: pd.DataFrame,  # runs (one row each) about to be merged or ranked together
    *,
    metrics: Iterable[str],  # evaluation metrics that will be compared
    pick: str = "final",  # per-run value rule (only rows with a value count)
    what: str = "these runs",  # how the refusal message names the rows
) -> dict[str, str | None]:
    """metric -> its one protocol JSON; raises ProtocolMismatch when the rows were scored differently."""
    out: dict[str, str | None] = {}
    for m in metrics:
        groups = protocol_groups(df, m, pick=pick)
        if len(groups) > 1:
            parts = [
                f"protocol {protocol_id(p)} ({len(names)} run{'s' if len(names) > 1 else ''}: "
                f"{', '.join(sorted(names))})"
                for p, names in sorted(groups.items(), key=lambda kv: protocol_id(kv[0]))
            ]
            raise ProtocolMismatch(
                f"refusing to merge or rank {what}: their {m} scores come from {len(groups)} different evaluation "
                f"protocols — {'; '.join(parts)}. Differences: {_describe_difference(list(groups))}. "
                f"Scores under different protocols are not comparable; select one with --protocol ID "
                f"(ids above), or re-evaluate the runs under one protocol (`transgan-lab eval`)."
            )
        out[m] = next(iter(groups), None)
    return out


def select_protocol(df: pd.DataFrame, protocol_ids: Iterable[str]) -> pd.DataFrame:
    """Keep the runs scored under the selected protocols (ids from `protocol_id`, as the refusal lists them).

    For each metric that one of the ids belongs to, only rows with that protocol stay; metrics that
    no selected id belongs to are not constrained.
    """
    wanted = set(protocol_ids)
    pcols = [c for c in df.columns if c.startswith("protocol.")]
    ids = {c: df[c].map(lambda v: protocol_id(v) if _present(v) else "none") for c in pcols}
    known = sorted({i for s in ids.values() for i in s if i != "none"})
    unknown = wanted - set(known)
    if unknown:
        raise AnalysisError(
            f"protocol id(s) {sorted(unknown)} not found among these runs; known ids: {', '.join(known) or 'none'}"
        )
    mask = pd.Series(True, index=df.index)
    for c in pcols:
        chosen = wanted & set(ids[c])
        if chosen:
            mask &= ids[c].isin(chosen)
    return df[mask].reset_index(drop=True)


def _config_differences(group: pd.DataFrame) -> list[str]:
    out = []
    for c in group.columns:
        if not c.startswith("param."):
            continue
        key = c[len("param.") :]
        if is_bookkeeping(key):
            continue
        vals = list(dict.fromkeys("—" if not _present(v) else str(v) for v in group[c]))
        if len(vals) > 1:
            out.append(f"{key}: {' vs '.join(vals)}")
    return out


def aggregate(
    df: pd.DataFrame,  # tidy runs frame from load_runs / import_parquet
    *,
    by: Sequence[str] = ("study", "dataset", "variant"),  # columns that define one configuration
    metrics: Sequence[str] | None = None,  # evaluation metrics (default: every one present)
    pick: str = "final",  # per-run value rule: final (EMA, default) | best (during training, labelled)
    extra: Sequence[str] = (),  # more numeric columns averaged per group (e.g. final.g_params)
    status: Sequence[str] | None = ("FINISHED",),  # run statuses that count; None = all
    check_config: bool = True,  # refuse groups whose runs differ in more than seed/bookkeeping
) -> pd.DataFrame:
    """One row per configuration: by-keys, n, seeds, runs, and per metric `<m>.mean/.std/.n` + protocol.

    std is the sample standard deviation (ddof=1), missing for n = 1. The frame's `attrs` record
    the rule: `attrs["pick"]`, `attrs["pick_label"]`, `attrs["metrics"]`.
    """
    if status is not None:
        df = df[df["status"].isin(list(status))]
    metrics = list(metrics) if metrics is not None else eval_metrics_in(df, pick=pick)
    missing = [b for b in by if b not in df.columns]
    if missing:
        raise AnalysisError(
            f"cannot group by {missing}: no such column; columns are the run fields, tags and param.* keys"
        )
    rows = []
    needed = list(
        dict.fromkeys(
            list(by)
            + ["run_id", "run_name", "seed", "status"]
            + [c for c in df.columns if c.startswith(("protocol.", "param."))]
            + [value_column(m, pick) for m in metrics]
            + list(extra)
        )
    )
    df = df[[c for c in needed if c in df.columns]]
    keyed = df.assign(**{b: df[b].astype("string").fillna("—") for b in by})
    for key, group in keyed.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{b}={k}" for b, k in zip(by, key))
        protocols = check_protocols(group, metrics=metrics, pick=pick, what=f"the runs of {label}")
        if check_config:
            diffs = _config_differences(group)
            if diffs:
                raise AnalysisError(
                    f"refusing to average the runs of {label}: they are not one configuration ({'; '.join(diffs)}). "
                    "Give each configuration its own transgan.variant tag, or group by more columns."
                )
        seeds = sorted(int(s) for s in group["seed"] if _present(s)) if "seed" in group else []
        row: dict = dict(zip(by, key))
        row["n"] = len(group)
        row["seeds"] = ",".join(str(s) for s in seeds)
        row["runs"] = ",".join(sorted(str(r) for r in group["run_name"]))
        for m in metrics:
            vals = (
                group[value_column(m, pick)].dropna().astype(float)
                if value_column(m, pick) in group
                else pd.Series([], dtype=float)
            )
            row[f"{m}.mean"] = float(vals.mean()) if len(vals) else math.nan
            row[f"{m}.std"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
            row[f"{m}.n"] = int(len(vals))
            row[f"protocol.{m}"] = protocols.get(m)
        for c in extra:
            vals = group[c].dropna().astype(float) if c in group else pd.Series([], dtype=float)
            row[c] = float(vals.mean()) if len(vals) else math.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update({"pick": pick, "pick_label": PICK_LABELS[pick], "metrics": list(metrics)})
    return out
