"""Paper-style tables from recorded runs, in five formats: terminal, Markdown, LaTeX, HTML, CSV.

Studies (runs tagged `transgan.study`, rows labelled by `transgan.variant`):
  table1  G/D combinations (transformer vs conv)        table2  data augmentation
  table3  MT-CT and locality-aware initialisation       table4  scaling S/M/L/XL: params, FLOPs, img/s
  sota    CIFAR-10 / STL-10 against published baselines  celeba  CelebA against published baselines
  sweep   any sweep's top-k trials with their searched params

Rules: cells are mean ± std over seeds (see `aggregate`); the per-run value rule is stated in every
table; rows scored under different protocols are refused (never merged, never ranked); the best of
our rows per metric column is bold (LaTeX `\\textbf`, Markdown `**`, HTML `<strong>`, terminal `*`);
published values are a separate, unranked section and unverified ones carry `†`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from transgan_lab.analysis import baselines
from transgan_lab.analysis.aggregate import (
    PICK_LABELS,
    aggregate,
    check_protocols,
    eval_metrics_in,
    protocol_id,
    select_protocol,
    value_column,
)
from transgan_lab.analysis.load import AnalysisError, metric_direction

FORMATS = ("terminal", "markdown", "latex", "html", "csv")
STUDIES = ("table1", "table2", "table3", "table4", "sota", "celeba", "sweep")

METRIC_LABELS = {"is": "IS", "fid": "FID", "kid": "KID", "digits_is": "digits-IS", "digits_fid": "digits-FID"}
DATASET_LABELS = {"cifar10": "CIFAR-10", "stl10": "STL-10", "celeba": "CelebA", "digits": "digits", "folder": "image folder",
                  "celeba_hq": "CelebA-HQ", "lsun_church": "LSUN Church"}
STUDY_TITLES = {
    "table1": "Table 1: generator / discriminator combinations",
    "table2": "Table 2: data augmentation",
    "table3": "Table 3: multi-task co-training and locality-aware initialisation",
    "table4": "Table 4: scaling up the generator",
    "sota": "Comparison with published results",
    "celeba": "CelebA: comparison with published results",
}
BEST_NOTE = "bold = best of our runs in the column (lower FID/KID, higher IS); published rows are not ranked"
TERMINAL_BEST = "*"


# ------------------------------------------------------------------------------- the model


@dataclass
class Column:
    key: str  # id (CSV header stem)
    label: str  # header text
    kind: str = "text"  # text | number | metric
    digits: int = 2  # decimals shown for number / metric cells
    direction: str | None = None  # metric columns: min | max (which way is best)


@dataclass
class Cell:
    text: str | None = None  # text cells
    value: float | None = None  # number cells; the mean of metric cells
    std: float | None = None  # metric cells: sample std over seeds (None for n = 1)
    n: int | None = None  # metric cells: runs that have a value
    n_row: int | None = None  # runs in the row (a smaller n is shown)
    unverified: bool = False  # published value not checked against the paper
    bold: bool = False  # best of the ranked rows in its column
    protocol: str | None = None  # protocol id (ours) or text (published)


@dataclass
class Section:
    label: str  # e.g. "Our runs", "Published"
    rows: list[dict[str, Cell]]
    ranked: bool = True  # take part in the best-value marking


@dataclass
class Table:
    key: str  # e.g. "table1-digits"
    title: str
    columns: list[Column]
    sections: list[Section]
    notes: list[str] = field(default_factory=list)


def _present(v: Any) -> bool:
    return not (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)))


def _mark_best(table: Table) -> None:
    for col in table.columns:
        if col.kind != "metric":
            continue
        cells = [r[col.key] for s in table.sections if s.ranked for r in s.rows if col.key in r and _present(r[col.key].value)]
        if len(cells) < 2:
            continue
        pick = min if col.direction == "min" else max
        best = pick(c.value for c in cells)
        for c in cells:
            c.bold = c.value == best


# ------------------------------------------------------------------------------ builders


def _param_text(v: Any) -> str:
    if not _present(v):
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, str) and v.startswith("["):
        try:
            items = json.loads(v)
            return ", ".join(str(x) for x in items) if items else "none"
        except ValueError:
            return v
    return str(v)


def _depths_text(v: Any) -> str:
    if not _present(v):
        return "—"
    try:
        return "/".join(str(x) for x in json.loads(v))
    except (TypeError, ValueError):
        return str(v)


def _first(group: pd.DataFrame, col: str) -> Any:
    if col not in group:
        return None
    vals = group[col].dropna()
    return vals.iloc[0] if len(vals) else None


# Study-specific descriptive columns: (key, label, kind, param column, formatter).
_STUDY_COLUMNS: dict[str, list[tuple[str, str, str, str, Callable[[Any], Any]]]] = {
    "table1": [("g_arch", "G", "text", "param.model.g.arch", _param_text),
               ("d_arch", "D", "text", "param.model.d.arch", _param_text)],
    "table2": [("augment", "Augmentation", "text", "param.augment.policy", _param_text)],
    "table3": [("mtct", "MT-CT", "text", "param.model.mtct.enabled", _param_text),
               ("locality", "Locality init", "text", "param.model.g.locality.enabled", _param_text)],
    "table4": [("embed_dim", "Embed dim", "text", "param.model.g.embed_dim", _param_text),
               ("depths", "Depths", "text", "param.model.g.depths", _depths_text)],
    "sota": [("resolution", "Res.", "text", "param.data.resolution", _param_text)],
    "celeba": [("resolution", "Res.", "text", "param.data.resolution", _param_text)],
}
# Table 4's cost columns: (key, label, source column, scale, digits).
_COST_COLUMNS = [("g_params_m", "G params (M)", "final.g_params", 1e-6, 2),
                 ("g_gflops", "G GFLOPs", "final.g_flops", 1e-9, 3),
                 ("img_per_s", "img/s", "median.img_per_s", 1.0, 1)]


def _metric_column(m: str, pick: str) -> Column:
    label = METRIC_LABELS.get(m, m) + (" (best)" if pick == "best" else "")
    return Column(key=m, label=label, kind="metric", digits=2, direction=metric_direction(m))


def _value_note(pick: str) -> str:
    return (f"values: mean ± std over seeds (sample std); n = runs; per-run value = {PICK_LABELS[pick]}"
            + ("; NOT the final model" if pick == "best" else ""))


def _protocol_notes(protocols: dict[str, str | None]) -> list[str]:
    return [f"{METRIC_LABELS.get(m, m)} protocol {protocol_id(p)}: {p if p else 'not recorded'}" for m, p in protocols.items()]


def _study_runs(df: pd.DataFrame, study: str) -> pd.DataFrame:
    kinds = df["kind"].fillna("train")
    base = df[kinds != "sweep"]
    if study == "celeba":
        sel = (base["study"] == "celeba") | ((base["study"] == "sota") & (base["dataset"] == "celeba"))
    elif study == "sota":
        sel = (base["study"] == "sota") & (base["dataset"] != "celeba")
    else:
        sel = base["study"] == study
    return base[sel.fillna(False)].reset_index(drop=True)


def study_tables(
    df: pd.DataFrame,  # tidy runs frame (load_runs / import_parquet)
    *,
    study: str,  # table1 | table2 | table3 | table4 | sota | celeba
    pick: str = "final",  # per-run value rule: final (EMA) | best (during training, labelled)
    protocols: Sequence[str] = (),  # protocol ids to keep when the runs mix protocols
    published: bool = True,  # add the published baselines of the same study and dataset
) -> list[Table]:
    """One table per dataset of the study's runs (Tables 5 and 6 are the `sota` study on CIFAR-10 / STL-10)."""
    if study not in _STUDY_COLUMNS:
        raise AnalysisError(f"unknown study {study!r}; choose one of {', '.join(STUDIES)}")
    runs = _study_runs(df, study)
    if protocols:
        runs = select_protocol(runs, protocols)
    if runs.empty:
        found = sorted(str(s) for s in df["study"].dropna().unique()) if "study" in df else []
        raise AnalysisError(
            f"no runs tagged transgan.study={study!r} in this store (studies found: {', '.join(found) or 'none'}); "
            "record the study's runs first, or pass the right --tracking-uri / --experiment / --parquet"
        )
    tables = []
    for dataset, drun in runs.groupby(runs["dataset"].fillna("—"), sort=True):
        finished = drun[drun["status"] == "FINISHED"]
        if finished.empty:
            continue
        metrics = eval_metrics_in(finished, pick=pick)
        what = f"the {study} runs on {dataset}"
        protocols_used = check_protocols(finished, metrics=metrics, pick=pick, what=what)
        extra = [src for _, _, src, _, _ in _COST_COLUMNS] if study == "table4" else []
        agg = aggregate(finished, by=("study", "dataset", "variant"), metrics=metrics, pick=pick, extra=extra)
        # row order: the order the configurations were first run (table4: by G size)
        first_start = finished.groupby(finished["variant"].astype("string").fillna("—"))["start_time"].min()
        agg["_start"] = agg["variant"].map(first_start)
        order = ["final.g_params", "_start", "variant"] if study == "table4" else ["_start", "variant"]
        agg = agg.sort_values(order, kind="stable").reset_index(drop=True)

        cols = [Column("variant", "Variant")]
        cols += [Column(k, label, kind) for k, label, kind, _, _ in _STUDY_COLUMNS[study]]
        if study == "table4":
            cols += [Column(k, label, "number", digits=d) for k, label, _, _, d in _COST_COLUMNS]
        cols += [Column("n", "n", "text")]
        cols += [_metric_column(m, pick) for m in metrics]

        ours = []
        for _, a in agg.iterrows():
            group = finished[finished["variant"].astype("string").fillna("—") == a["variant"]]
            row = {"variant": Cell(text=str(a["variant"])), "n": Cell(text=str(int(a["n"])))}
            for k, _, _, src, fmt in _STUDY_COLUMNS[study]:
                row[k] = Cell(text=fmt(_first(group, src)))
            if study == "table4":
                for k, _, src, scale, _ in _COST_COLUMNS:
                    v = a.get(src)
                    row[k] = Cell(value=float(v) * scale if _present(v) else None)
            for m in metrics:
                mean, std, n = a[f"{m}.mean"], a[f"{m}.std"], int(a[f"{m}.n"])
                row[m] = Cell(value=mean if _present(mean) else None, std=std if _present(std) else None, n=n,
                              n_row=int(a["n"]), protocol=protocol_id(protocols_used.get(m)))
            ours.append(row)
        sections = [Section("Our runs", ours, ranked=True)]
        notes = [_value_note(pick), BEST_NOTE] + _protocol_notes(protocols_used)

        resolutions = finished["param.data.resolution"].dropna().unique() if "param.data.resolution" in finished else []
        same_res = int(resolutions[0]) if len(resolutions) == 1 else None  # published rows at our resolution only
        pub = baselines.published_for(study=study, dataset=str(dataset), resolution=same_res) if published else pd.DataFrame()
        shown = [m for m in ("is", "fid") if m in metrics]
        if len(pub) and shown:
            pub_rows = []
            for _, p in pub.iterrows():
                if not any(_present(p[m]) for m in shown):
                    continue
                row = {"variant": Cell(text=str(p["model"])), "n": Cell(text="—")}
                for k, _, _, _, _ in _STUDY_COLUMNS[study]:
                    row[k] = Cell(text=str(p["resolution"]) if k == "resolution" else "—")
                if study == "table4":
                    row["g_params_m"] = Cell(value=float(p["g_params_m"]) if _present(p["g_params_m"]) else None)
                    row["g_gflops"] = Cell()
                    row["img_per_s"] = Cell()
                for m in metrics:
                    if m in ("is", "fid") and _present(p[m]):
                        row[m] = Cell(value=float(p[m]), std=float(p[f"{m}_std"]) if m == "is" and _present(p["is_std"]) else None,
                                      unverified=not bool(p[f"{m}_verified"]), protocol=str(p["protocol"]))
                    else:
                        row[m] = Cell()
                pub_rows.append(row)
            if pub_rows:
                sections.append(Section("Published (not ranked)", pub_rows, ranked=False))
                notes.append(baselines.PUBLISHED_NOTE)
                if any(c.unverified for r in pub_rows for c in r.values()):
                    notes.append(baselines.UNVERIFIED_NOTE)
        res = _first(finished, "param.data.resolution")
        where = DATASET_LABELS.get(str(dataset), str(dataset)) + (f", {res}×{res}" if _present(res) else "")
        table = Table(key=f"{study}-{dataset}", title=f"{STUDY_TITLES[study]} ({where})", columns=cols,
                      sections=sections, notes=notes)
        _mark_best(table)
        tables.append(table)
    if not tables:
        raise AnalysisError(f"the {study} runs have no FINISHED run yet (statuses: "
                            f"{', '.join(sorted(runs['status'].dropna().unique()))}); wait for them to finish")
    return tables


# ---------------------------------------------------------------------------------- sweeps


def _json_list(text: Any) -> list[str]:
    if not _present(text):
        return []
    try:
        v = json.loads(text)
        return [str(x) for x in v] if isinstance(v, list) else [str(v)]
    except ValueError:
        return [s.strip() for s in str(text).split(",") if s.strip()]


SEARCH_IGNORE = ("name", "preset", "tracking.")


def _as_param(key: str, columns) -> str | None:
    """A sampled key as a logged param: 'model.g.depths.0' -> 'model.g.depths' (lists are one param)."""
    if f"param.{key}" in columns:
        return key
    base = re.sub(r"\.\d+$", "", key)
    return base if f"param.{base}" in columns else None


def searched_params(trials: pd.DataFrame, parent: pd.DataFrame | None = None) -> list[str]:
    """Dotted keys a sweep searched, in this order of evidence: a `transgan.searched` tag (JSON list);
    the keys of the trials' `transgan.sampled` tags (JSON dict of what the sampler chose, as
    platform/tune.py logs it); else the params whose values differ across the trials."""
    for frame in (parent, trials):
        if frame is not None and "tag.searched" in frame.columns:
            listed = [k for v in frame["tag.searched"].dropna() for k in _json_list(v)]
            if listed:
                return list(dict.fromkeys(listed))
    if "tag.sampled" in trials.columns:
        keys: list[str] = []
        for v in trials["tag.sampled"].dropna():
            try:
                sampled = json.loads(v)
            except ValueError:
                continue
            keys += [k for k in (_as_param(k, trials.columns) for k in sampled) if k]
        if keys:
            return sorted(dict.fromkeys(keys))
    out = []
    for c in trials.columns:
        if c.startswith("param.") and not c[len("param."):].startswith(SEARCH_IGNORE):
            if trials[c].astype("string").fillna("—").nunique() > 1:
                out.append(c[len("param."):])
    return out


def sweep_objectives(trials: pd.DataFrame, parent: pd.DataFrame | None = None) -> list[str]:
    """The sweep's objectives, primary first: the parent's `transgan.objectives` tag (comma list), else
    [eval.primary] + sweep.objectives from the parent's params (else the trials')."""
    if parent is not None and "tag.objectives" in parent.columns:
        listed = [o for v in parent["tag.objectives"].dropna() for o in _json_list(v)]
        if listed:
            return list(dict.fromkeys(listed))
    for frame in (parent, trials):
        if frame is None or frame.empty or "param.eval.primary" not in frame:
            continue
        primary = frame["param.eval.primary"].dropna()
        if len(primary):
            extra = _json_list(_first(frame, "param.sweep.objectives")) if "param.sweep.objectives" in frame else []
            return [str(primary.iloc[0])] + [e for e in extra if e != str(primary.iloc[0])]
    metrics = eval_metrics_in(trials)
    if not metrics:
        raise AnalysisError("the sweep's trials record no evaluation metric and no eval.primary param; nothing to rank by")
    return [metrics[-1]]


def pareto_mask(values: pd.DataFrame, directions: Sequence[str]) -> pd.Series:
    """True for rows no other row dominates (at least as good in every objective, better in one)."""
    signs = [1.0 if d == "min" else -1.0 for d in directions]
    pts = [[s * float(v) for s, v in zip(signs, row)] for row in values.itertuples(index=False)]
    keep = []
    for i, p in enumerate(pts):
        dominated = any(all(q[k] <= p[k] for k in range(len(p))) and any(q[k] < p[k] for k in range(len(p)))
                        for j, q in enumerate(pts) if j != i)
        keep.append(not dominated)
    return pd.Series(keep, index=values.index)


def sweep_frames(df: pd.DataFrame, sweep_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(parent rows, trial rows) of one sweep; a clear error when the sweep has no trials."""
    in_sweep = df[df["sweep_id"] == sweep_id]
    parent = in_sweep[in_sweep["kind"] == "sweep"].reset_index(drop=True)
    trials = in_sweep[in_sweep["kind"] == "trial"].reset_index(drop=True)
    if trials.empty:
        known = sorted(str(s) for s in df["sweep_id"].dropna().unique())
        raise AnalysisError(f"sweep {sweep_id!r} has no trial runs here (sweeps found: {', '.join(known) or 'none'}); "
                            "check the id (`transgan-lab table sweep --sweep ID`) or the --tracking-uri")
    return parent, trials


def sweep_table(
    df: pd.DataFrame,  # tidy runs frame holding the sweep's parent and trials
    *,
    sweep_id: str,  # the sweep's transgan.sweep_id
    pick: str = "final",  # per-run value rule
    top: int = 10,  # rows shown
    protocols: Sequence[str] = (),  # protocol ids to keep when trials mix protocols
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
    asc = metric_direction(primary) == "min"
    ranked = scored.sort_values([col, "run_name"], ascending=[asc, True], kind="stable").reset_index(drop=True)
    multi = len(objectives) > 1
    obj_cols = {o: (value_column(o, pick) if o in metrics else f"final.{o}") for o in objectives}
    if multi and all(c in ranked for c in obj_cols.values()):
        vals = ranked[list(obj_cols.values())].astype(float)
        ok = vals.notna().all(axis=1)
        pareto = pd.Series(False, index=ranked.index)
        pareto[ok] = pareto_mask(vals[ok], [metric_direction(o) for o in objectives])
    else:
        pareto = None
    shown = ranked.head(top)
    searched = searched_params(trials, parent)

    cols = [Column("rank", "Rank"), Column("trial", "Trial"), Column("kimg", "kimg", "number", digits=1)]
    cols += [Column(f"param:{k}", k) for k in searched]
    cols += [_metric_column(m, pick) for m in metrics]
    extra_obj = [o for o in objectives if o not in metrics]
    def _obj_key(o: str) -> str:
        return f"obj:{o}_m" if o.endswith(("params", "flops")) else f"obj:{o}"

    for o in extra_obj:
        label = f"{o} (M)" if o.endswith(("params", "flops")) else o
        cols.append(Column(_obj_key(o), label, "number", digits=3))
    if pareto is not None:
        cols.append(Column("pareto", "Pareto"))
    keep = ["run_name", "last_kimg"] + [f"param.{k}" for k in searched] + [value_column(m, pick) for m in metrics] + [f"final.{o}" for o in objectives]
    shown = shown[[c for c in dict.fromkeys(keep) if c in shown.columns]]
    rows = []
    for i, r in shown.iterrows():
        row = {"rank": Cell(text=str(i + 1)), "trial": Cell(text=str(r["run_name"])),
               "kimg": Cell(value=float(r["last_kimg"]) if _present(r["last_kimg"]) else None)}
        for k in searched:
            row[f"param:{k}"] = Cell(text=_param_text(r.get(f"param.{k}")))
        for m in metrics:
            v = r.get(value_column(m, pick))
            row[m] = Cell(value=float(v) if _present(v) else None, n=1 if _present(v) else 0, n_row=1,
                          protocol=protocol_id(protocols_used.get(m)))
        for o in extra_obj:
            v = r.get(f"final.{o}")
            scale = 1e-6 if o.endswith(("params", "flops")) else 1.0
            row[_obj_key(o)] = Cell(value=float(v) * scale if _present(v) else None)
        if pareto is not None:
            row["pareto"] = Cell(text="yes" if bool(pareto[i]) else "")
        rows.append(row)
    n_all, n_fin, n_scored = len(trials), len(finished), len(scored)
    notes = [
        f"ranked by {METRIC_LABELS.get(primary, primary)} ({'lower' if asc else 'higher'} is better); "
        f"top {len(shown)} of {n_scored} scored trials ({n_fin} finished, {n_all} in the sweep)",
        f"per-run value = {PICK_LABELS[pick]}" + ("; NOT the final model" if pick == "best" else ""),
        "searched params: " + (", ".join(searched) or "none recorded"),
        BEST_NOTE.replace("; published rows are not ranked", ""),
    ]
    if multi:
        notes.append("objectives: " + ", ".join(f"{o} ({metric_direction(o)})" for o in objectives)
                     + "; Pareto = not dominated by another scored trial")
    notes += _protocol_notes(protocols_used)
    table = Table(key=f"sweep-{sweep_id}", title=f"Sweep {sweep_id}: top {len(shown)} trials", columns=cols,
                  sections=[Section("Trials", rows, ranked=True)], notes=notes)
    _mark_best(table)
    return table


# ------------------------------------------------------------------------------ rendering


def _num(v: float | None, digits: int) -> str:
    return "—" if v is None else f"{v:,.{digits}f}" if abs(v) >= 1e4 else f"{v:.{digits}f}"


def _cell_parts(c: Cell, col: Column) -> tuple[str, str, str]:
    """(main text, ± part, suffix) of a cell, format-neutral."""
    if col.kind == "text":
        return (c.text if c.text is not None else "—", "", "")
    if col.kind == "number":
        return (_num(c.value, col.digits), "", "")
    if c.value is None:
        return ("—", "", "")
    pm = _num(c.std, col.digits) if c.std is not None else ""
    suffix = f" (n={c.n})" if (c.n is not None and c.n_row is not None and c.n < c.n_row) else ""
    return (_num(c.value, col.digits), pm, suffix)


def _plain(c: Cell, col: Column, *, pm: str = " ± ", mark: str = baselines.UNVERIFIED_MARK) -> str:
    main, std, suffix = _cell_parts(c, col)
    s = main + (pm + std if std else "") + suffix
    return s + (mark if c.unverified else "")


def render_terminal(table: Table) -> str:
    from tabulate import tabulate

    out = [table.title, "=" * len(table.title)]
    headers = [c.label for c in table.columns]
    align = ["left" if c.kind == "text" else "right" for c in table.columns]
    for s in table.sections:
        body = [[_plain(r.get(c.key, Cell()), c) + (TERMINAL_BEST if r.get(c.key, Cell()).bold else "") for c in table.columns]
                for r in s.rows]
        out += ["", f"{s.label}:", tabulate(body, headers=headers, tablefmt="simple", colalign=align, disable_numparse=True)]
    notes = [n.replace("bold =", f"{TERMINAL_BEST} =") for n in table.notes]
    out += [""] + [f"  {n}" for n in notes]
    return "\n".join(out) + "\n"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def render_markdown(table: Table) -> str:
    out = [f"### {_md_escape(table.title)}", ""]
    headers = [_md_escape(c.label) for c in table.columns]
    seps = [":---" if c.kind == "text" else "---:" for c in table.columns]
    for s in table.sections:
        out += [f"**{_md_escape(s.label)}**", "", "| " + " | ".join(headers) + " |", "| " + " | ".join(seps) + " |"]
        for r in s.rows:
            cells = []
            for c in table.columns:
                cell = r.get(c.key, Cell())
                text = _md_escape(_plain(cell, c))
                cells.append(f"**{text}**" if cell.bold else text)
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out += [f"- {_md_escape(n)}" for n in table.notes]
    return "\n".join(out) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "—": "--", "†": r"$^\dagger$", "×": r"$\times$", "≈": r"$\approx$"}


def _tex(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in s)


def render_latex(table: Table) -> str:
    spec = "".join("l" if c.kind == "text" else "r" for c in table.columns)
    ncol = len(table.columns)
    out = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(table.title)}}}", rf"\label{{tab:{_tex(table.key)}}}",
           rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
           " & ".join(_tex(c.label) for c in table.columns) + r" \\"]
    for s in table.sections:
        out += [r"\midrule", rf"\multicolumn{{{ncol}}}{{l}}{{\textit{{{_tex(s.label)}}}}} \\"]
        for r in s.rows:
            cells = []
            for c in table.columns:
                cell = r.get(c.key, Cell())
                main, std, suffix = _cell_parts(cell, c)
                text = _tex(main) + (r" $\pm$ " + _tex(std) if std else "") + _tex(suffix)
                if cell.unverified:
                    text += r"$^\dagger$"
                cells.append(rf"\textbf{{{text}}}" if cell.bold else text)
            out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize"]
    out += [_tex(n).replace("bold =", r"\textbf{bold} =") + r"\\" for n in table.notes]
    out += [r"\end{minipage}", r"\end{table}"]
    return "\n".join(out) + "\n"


def render_html(table: Table) -> str:
    e = html.escape
    ncol = len(table.columns)
    out = [f'<table class="tgl-table" id="{e(table.key)}">', f"<caption>{e(table.title)}</caption>",
           "<thead><tr>" + "".join(f'<th class="{c.kind}">{e(c.label)}</th>' for c in table.columns) + "</tr></thead>"]
    for s in table.sections:
        cls = "ranked" if s.ranked else "reference"
        out.append(f'<tbody class="{cls}"><tr class="section"><th colspan="{ncol}">{e(s.label)}</th></tr>')
        for r in s.rows:
            tds = []
            for c in table.columns:
                cell = r.get(c.key, Cell())
                main, std, suffix = _cell_parts(cell, c)
                text = e(main) + (" ± " + e(std) if std else "") + e(suffix)
                if cell.unverified:
                    text += '<sup class="unverified" title="unverified">†</sup>'
                if cell.bold:
                    text = f"<strong>{text}</strong>"
                tds.append(f'<td class="{c.kind}">{text}</td>')
            out.append('<tr class="row">' + "".join(tds) + "</tr>")
        out.append("</tbody>")
    out.append("<tfoot>" + "".join(f'<tr><td colspan="{ncol}">{e(n)}</td></tr>' for n in table.notes) + "</tfoot>")
    out.append("</table>")
    return "\n".join(out) + "\n"


def _raw(v: float | None) -> str:
    return "" if v is None else format(v, ".10g")


def csv_rows(table: Table) -> tuple[list[str], list[list[str]]]:
    header = ["table", "section"]
    for c in table.columns:
        if c.kind == "metric":
            header += [f"{c.key}_mean", f"{c.key}_std", f"{c.key}_n", f"{c.key}_best", f"{c.key}_verified", f"{c.key}_protocol"]
        else:
            header.append(c.key)
    rows = []
    for s in table.sections:
        for r in s.rows:
            line = [table.key, s.label]
            for c in table.columns:
                cell = r.get(c.key, Cell())
                if c.kind == "metric":
                    verified = "" if s.ranked or cell.value is None else ("no" if cell.unverified else "yes")
                    line += [_raw(cell.value), _raw(cell.std), "" if cell.n is None else str(cell.n),
                             "1" if cell.bold else "0", verified, cell.protocol or ""]
                elif c.kind == "number":
                    line.append(_raw(cell.value))
                else:
                    line.append(cell.text or "")
            rows.append(line)
    return header, rows


def render_csv(tables: Sequence[Table]) -> str:
    """All tables in one CSV; tables with other columns follow after a blank line with their own header."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for i, t in enumerate(tables):
        header, rows = csv_rows(t)
        if i:
            buf.write("\n")
        w.writerow(header)
        w.writerows(rows)
    return buf.getvalue()


def render(tables: Table | Sequence[Table], fmt: str) -> str:
    """Render one or more tables in `fmt` (terminal | markdown | latex | html | csv)."""
    tables = [tables] if isinstance(tables, Table) else list(tables)
    if fmt not in FORMATS:
        raise AnalysisError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return render_csv(tables)
    fn = {"terminal": render_terminal, "markdown": render_markdown, "latex": render_latex, "html": render_html}[fmt]
    return "\n".join(fn(t) for t in tables)


def build(
    df: pd.DataFrame,  # tidy runs frame
    *,
    study: str,  # one of STUDIES
    sweep_id: str | None = None,  # for study == "sweep"
    pick: str = "final",  # per-run value rule
    top: int = 10,  # rows of a sweep table
    protocols: Sequence[str] = (),  # protocol ids to keep
) -> list[Table]:
    """The tables of one study (or a sweep's top-k)."""
    if study == "sweep":
        if not sweep_id:
            raise AnalysisError("a sweep table needs the sweep id (--sweep ID)")
        return [sweep_table(df, sweep_id=sweep_id, pick=pick, top=top, protocols=protocols)]
    return study_tables(df, study=study, pick=pick, protocols=protocols)
