"""A sweep's table: its top-k trials by the primary objective, with the searched params, every
objective and, for several objectives, the Pareto front.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

import pandas as pd

from transgan_lab import metric_registry
from transgan_lab.analysis.aggregate import (
    PICK_LABELS,
    check_protocols,
    eval_metrics_in,
    is_bookkeeping,
    protocol_id,
    select_protocol,
    value_column,
)
from transgan_lab.analysis.load import AnalysisError
from transgan_lab.analysis.pareto import pareto_mask
from transgan_lab.analysis.tables.model import (
    BEST_NOTE,
    Cell,
    Column,
    Section,
    Table,
    first,
    json_list,
    mark_best,
    metric_column,
    param_text,
    present,
    protocol_notes,
)


def _as_param(key: str, columns) -> str | None:
    """A sampled key as a logged param: 'model.g.depths.0' -> 'model.g.depths' (lists are one param)."""
    if f"param.{key}" in columns:
        return key
    base = re.sub(r"\.\d+$", "", key)
    return base if f"param.{base}" in columns else None


def _experiment_params(keys) -> list[str]:
    """Bookkeeping fields (intervals, names, resources) dropped; the rest in the registry's order."""
    kept = [k for k in dict.fromkeys(keys) if not is_bookkeeping(k)]
    return sorted(kept, key=lambda k: (metric_registry.param_order(k), k))


def searched_params(trials: pd.DataFrame, parent: pd.DataFrame | None = None) -> list[str]:
    """Dotted keys a sweep searched, in this order of evidence: a `transgan.searched` tag (JSON list);
    the keys of the trials' `transgan.sampled` tags (JSON dict of what the sampler chose, as the
    sweep's trial driver logs it); else the params whose values differ across the trials.
    Bookkeeping params never count; the keys come in the registry's (a paper table's) order."""
    for frame in (parent, trials):
        if frame is not None and "tag.searched" in frame.columns:
            listed = [k for v in frame["tag.searched"].dropna() for k in json_list(v)]
            if listed:
                return _experiment_params(listed)
    if "tag.sampled" in trials.columns:
        keys: list[str] = []
        for v in trials["tag.sampled"].dropna():
            try:
                sampled = json.loads(v)
            except ValueError:
                continue
            keys += [k for k in (_as_param(k, trials.columns) for k in sampled) if k]
        if _experiment_params(keys):
            return _experiment_params(keys)
    out = []
    for c in trials.columns:
        if c.startswith("param.") and not is_bookkeeping(c[len("param.") :]):
            if trials[c].astype("string").fillna("—").nunique() > 1:
                out.append(c[len("param.") :])
    return _experiment_params(out)


def sweep_objectives(trials: pd.DataFrame, parent: pd.DataFrame | None = None) -> list[str]:
    """The sweep's objectives, primary first: the parent's `transgan.objectives` tag (comma list), else
    [eval.primary] + sweep.objectives from the parent's params (else the trials')."""
    if parent is not None and "tag.objectives" in parent.columns:
        listed = [o for v in parent["tag.objectives"].dropna() for o in json_list(v)]
        if listed:
            return list(dict.fromkeys(listed))
    for frame in (parent, trials):
        if frame is None or frame.empty or "param.eval.primary" not in frame:
            continue
        primary = frame["param.eval.primary"].dropna()
        if len(primary):
            extra = json_list(first(frame, "param.sweep.objectives")) if "param.sweep.objectives" in frame else []
            return [str(primary.iloc[0])] + [e for e in extra if e != str(primary.iloc[0])]
    metrics = eval_metrics_in(trials)
    if not metrics:
        raise AnalysisError(
            "the sweep's trials record no evaluation metric and no eval.primary param; nothing to rank by"
        )
    return [metrics[-1]]


def sweep_frames(df: pd.DataFrame, sweep_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(parent rows, trial rows) of one sweep; a clear error when the sweep has no trials."""
    in_sweep = df[df["sweep_id"] == sweep_id]
    parent = in_sweep[in_sweep["kind"] == "sweep"].reset_index(drop=True)
    trials = in_sweep[in_sweep["kind"] == "trial"].reset_index(drop=True)
    if trials.empty:
        known = sorted(str(s) for s in df["sweep_id"].dropna().unique())
        raise AnalysisError(
            f"sweep {sweep_id!r} has no trial runs here (sweeps found: {', '.join(known) or 'none'}); "
            "check the id (`transgan-lab table sweep --sweep ID`) or the --tracking-uri"
        )
    return parent, trials


def sweep_table(
    df: pd.DataFrame,  # tidy runs frame holding the sweep's parent and trials
    *,
    sweep_id: str,  # the sweep's transgan.sweep_id
    pick: str = "final",  # per-run value rule
    top: int = 10,  # rows shown
    protocols: Sequence[str] = (),  # protocol ids to keep when trials mix protocols
    verbose: bool = False,  # full protocol JSON in the notes, and no column left out to fit a terminal
) -> Table:
    """The sweep's top-k trials by its primary objective, with the searched params and every objective."""
    if top < 1:
        raise AnalysisError(f"--top {top}: show at least one row")
    parent, trials = sweep_frames(df, sweep_id)
    if protocols:
        trials = select_protocol(trials, protocols)
    objectives = sweep_objectives(trials, parent)
    primary = objectives[0]
    metrics = eval_metrics_in(trials, pick=pick)
    col = value_column(primary, pick) if primary in metrics else f"final.{primary}"
    if col not in trials.columns:
        raise AnalysisError(f"no trial of sweep {sweep_id!r} has a {primary!r} value yet; nothing to rank")
    finished = trials[trials["status"] == "FINISHED"]
    scored = finished[finished[col].notna()]
    protocols_used = check_protocols(scored, metrics=metrics, pick=pick, what=f"the trials of sweep {sweep_id!r}")
    asc = metric_registry.lower_is_better(primary)
    ranked = scored.sort_values([col, "run_name"], ascending=[asc, True], kind="stable").reset_index(drop=True)
    multi = len(objectives) > 1
    obj_cols = {o: (value_column(o, pick) if o in metrics else f"final.{o}") for o in objectives}
    if multi and all(c in ranked for c in obj_cols.values()):
        pareto = pareto_mask(
            ranked[list(obj_cols.values())].astype(float), [metric_registry.mode(o) for o in objectives]
        )
    else:
        pareto = None
    shown = ranked.head(top)
    searched = searched_params(trials, parent)

    kimg_digits = _decimals(shown["last_kimg"]) if "last_kimg" in shown else 1
    cols = [Column("rank", "Rank"), Column("trial", "Trial"), Column("kimg", "kimg", "number", digits=kimg_digits)]
    if "final.g_updates" in ranked.columns:  # training length in what a GAN learns from
        cols.append(Column("g_updates", "G updates", "number", digits=0))
    cols += [Column(f"param:{k}", metric_registry.param_label(k)) for k in searched]
    cols += [metric_column(m, pick) for m in metrics]
    extra_obj = [o for o in objectives if o not in metrics]
    in_millions = set(metric_registry.SIZE_METRICS)  # parameter and FLOP counts are shown in millions

    def _obj_key(o: str) -> str:
        return f"obj:{o}_m" if o in in_millions else f"obj:{o}"

    for o in extra_obj:
        label = metric_registry.header(o) + (" (M)" if o in in_millions else "")
        scale = 1e-6 if o in in_millions else 1.0
        cols.append(Column(_obj_key(o), label, "number", digits=_decimals(shown.get(f"final.{o}"), scale=scale)))
    if pareto is not None:
        cols.append(Column("pareto", "Pareto"))
    keep = (
        ["run_name", "last_kimg", "final.g_updates"]
        + [f"param.{k}" for k in searched]
        + [value_column(m, pick) for m in metrics]
        + [f"final.{o}" for o in objectives]
    )
    shown = shown[[c for c in dict.fromkeys(keep) if c in shown.columns]]
    rows = []
    for i, r in shown.iterrows():
        row = {
            "rank": Cell(text=str(i + 1)),
            "trial": Cell(text=str(r["run_name"])),
            "kimg": Cell(value=float(r["last_kimg"]) if present(r["last_kimg"]) else None),
        }
        if "final.g_updates" in shown.columns:
            g = r["final.g_updates"]
            row["g_updates"] = Cell(value=float(g) if present(g) else None)
        for k in searched:
            row[f"param:{k}"] = Cell(text=param_text(r.get(f"param.{k}")))
        for m in metrics:
            v = r.get(value_column(m, pick))
            row[m] = Cell(
                value=float(v) if present(v) else None,
                n=1 if present(v) else 0,
                n_row=1,
                protocol=protocol_id(protocols_used.get(m)),
            )
        for o in extra_obj:
            v = r.get(f"final.{o}")
            scale = 1e-6 if o in in_millions else 1.0
            row[_obj_key(o)] = Cell(value=float(v) * scale if present(v) else None)
        if pareto is not None:
            row["pareto"] = Cell(text="yes" if bool(pareto[i]) else "")
        rows.append(row)
    n_all, n_fin, n_scored = len(trials), len(finished), len(scored)
    notes = [
        f"ranked by {metric_registry.label(primary)} ({'lower' if asc else 'higher'} is better); "
        f"top {len(shown)} of {n_scored} scored trials ({n_fin} finished, {n_all} in the sweep)",
        f"per-run value = {PICK_LABELS[pick]}" + ("; NOT the final model" if pick == "best" else ""),
        "searched params: "
        + (", ".join(f"{metric_registry.param_label(k)} = {k}" for k in searched) or "none recorded"),
        BEST_NOTE.replace("; published rows are not ranked", ""),
    ]
    if multi:
        notes.append(
            "objectives: "
            + ", ".join(f"{o} ({metric_registry.mode(o)})" for o in objectives)
            + "; Pareto = not dominated by another scored trial"
        )
    notes += protocol_notes(protocols_used, verbose=verbose)
    table = Table(
        key=f"sweep-{sweep_id}",
        title=f"Sweep {sweep_id}: top {len(shown)} trials",
        columns=cols,
        sections=[Section("Trials", rows, ranked=True)],
        notes=notes,
        drop_order=[] if verbose else _drop_order(scored, searched, primary=primary, pick=pick, metrics=metrics),
    )
    mark_best(table)
    return table


def _decimals(values, *, scale: float = 1.0) -> int:
    """Decimals that show three significant digits of the column's largest value (0 to 3)."""
    vals = pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce").dropna().abs() * scale
    top = float(vals.max()) if len(vals) else 0.0
    if top <= 0:
        return 1
    return int(min(3, max(0, 2 - math.floor(math.log10(top)))))


def _drop_order(scored: pd.DataFrame, searched: list[str], *, primary: str, pick: str, metrics) -> list[str]:
    """Param columns a narrow terminal may leave out, least important first: by fANOVA importance
    for the primary objective when the sweep has enough scored trials, else the rightmost first."""
    order = list(reversed(searched))
    from transgan_lab.analysis import figures

    if len(scored) >= figures.min_trials_for_importance(len(searched)):
        col = value_column(primary, pick) if primary in metrics else f"final.{primary}"
        imp = figures.param_importances(
            scored, params=searched, objective_column=col, direction=metric_registry.mode(primary)
        )
        if imp:
            order = sorted(searched, key=lambda k: (imp.get(k, 0.0), -searched.index(k)))
    return [f"param:{k}" for k in order]
