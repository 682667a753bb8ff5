"""Study tables: one table per dataset of a paper study's runs, with the published baselines.

  table1  G/D combinations (transformer vs conv)        table2  data augmentation
  table3  MT-CT and locality-aware initialisation       table4  scaling S/M/L/XL: params, FLOPs, img/s
  sota    CIFAR-10 / STL-10 against published baselines  celeba  CelebA against published baselines

Runs are tagged `transgan.study`; rows are labelled by `transgan.variant`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from transgan_lab.analysis import baselines
from transgan_lab.analysis.aggregate import aggregate, check_protocols, eval_metrics_in, protocol_id, select_protocol
from transgan_lab.analysis.load import AnalysisError
from transgan_lab.analysis.tables.model import (
    BEST_NOTE,
    Cell,
    Column,
    Section,
    Table,
    depths_text,
    first,
    mark_best,
    metric_column,
    param_text,
    present,
    protocol_notes,
    value_note,
)

LENGTH_NOTE = "kimg, G updates = training length per run (mean over the row's runs)"
PAPER_STUDIES = ("table1", "table2", "table3", "table4", "sota", "celeba")
DATASET_LABELS = {
    "cifar10": "CIFAR-10",
    "stl10": "STL-10",
    "celeba": "CelebA",
    "digits": "digits",
    "folder": "image folder",
    "celeba_hq": "CelebA-HQ",
    "lsun_church": "LSUN Church",
}
STUDY_TITLES = {
    "table1": "Table 1: generator / discriminator combinations",
    "table2": "Table 2: data augmentation",
    "table3": "Table 3: multi-task co-training and locality-aware initialisation",
    "table4": "Table 4: scaling up the generator",
    "sota": "Comparison with published results",
    "celeba": "CelebA: comparison with published results",
}

# Study-specific descriptive columns: (key, label, kind, param column, formatter).
_STUDY_COLUMNS: dict[str, list[tuple[str, str, str, str, Callable[[Any], Any]]]] = {
    "table1": [
        ("g_arch", "G", "text", "param.model.g.arch", param_text),
        ("d_arch", "D", "text", "param.model.d.arch", param_text),
    ],
    "table2": [("augment", "Augmentation", "text", "param.augment.policy", param_text)],
    "table3": [
        ("mtct", "MT-CT", "text", "param.model.mtct.enabled", param_text),
        ("locality", "Locality init", "text", "param.model.g.locality.enabled", param_text),
    ],
    "table4": [
        ("embed_dim", "Embed dim", "text", "param.model.g.embed_dim", param_text),
        ("depths", "Depths", "text", "param.model.g.depths", depths_text),
    ],
    "sota": [("resolution", "Res.", "text", "param.data.resolution", param_text)],
    "celeba": [("resolution", "Res.", "text", "param.data.resolution", param_text)],
}
# Table 4's cost columns: (key, label, source column, scale, digits).
_COST_COLUMNS = [
    ("g_params_m", "G params (M)", "final.g_params", 1e-6, 2),
    ("g_gflops", "G GFLOPs", "final.g_flops", 1e-9, 3),
    ("img_per_s", "img/s", "median.img_per_s", 1.0, 1),
]


def _budget_text(finished: pd.DataFrame) -> str:
    """``, 20 kimg = 625 G updates per run`` when every run trained the same length, else ``""``."""
    kimg = finished["last_kimg"].dropna().round(3).unique() if "last_kimg" in finished else []
    g = finished["final.g_updates"].dropna().unique() if "final.g_updates" in finished else []
    if len(kimg) != 1:
        return ""
    return f", {kimg[0]:g} kimg" + (f" = {int(g[0]):,} G updates" if len(g) == 1 else "") + " per run"


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
    verbose: bool = False,  # full protocol JSON in the notes instead of the one-line form
) -> list[Table]:
    """One table per dataset of the study's runs (Tables 5 and 6 are the `sota` study on CIFAR-10 / STL-10)."""
    if study not in _STUDY_COLUMNS:
        raise AnalysisError(f"unknown study {study!r}; choose one of {', '.join(PAPER_STUDIES)}, sweep")
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
    # one table per dataset and per recorded study (its sweep id): a study re-run with another
    # budget is a second table, never averaged into the first
    groups = runs.assign(_sid=runs["sweep_id"].fillna("") if "sweep_id" in runs else "")
    for (dataset, sid), drun in groups.groupby([groups["dataset"].fillna("—"), "_sid"], sort=True):
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
        cols += [Column("n", "n", "text"), Column("kimg", "kimg", "number", digits=1)]
        cols += [Column("g_updates", "G updates", "number", digits=0)]
        cols += [metric_column(m, pick) for m in metrics]

        ours = []
        for _, a in agg.iterrows():
            group = finished[finished["variant"].astype("string").fillna("—") == a["variant"]]
            row = {"variant": Cell(text=str(a["variant"])), "n": Cell(text=str(int(a["n"])))}
            for key, src in (("kimg", "last_kimg"), ("g_updates", "final.g_updates")):  # training length
                v = group[src].mean() if src in group else None
                row[key] = Cell(value=float(v) if present(v) else None)
            for k, _, _, src, fmt in _STUDY_COLUMNS[study]:
                row[k] = Cell(text=fmt(first(group, src)))
            if study == "table4":
                for k, _, src, scale, _ in _COST_COLUMNS:
                    v = a.get(src)
                    row[k] = Cell(value=float(v) * scale if present(v) else None)
            for m in metrics:
                mean, std, n = a[f"{m}.mean"], a[f"{m}.std"], int(a[f"{m}.n"])
                row[m] = Cell(
                    value=mean if present(mean) else None,
                    std=std if present(std) else None,
                    n=n,
                    n_row=int(a["n"]),
                    protocol=protocol_id(protocols_used.get(m)),
                )
            ours.append(row)
        sections = [Section("Our runs", ours, ranked=True)]
        notes = [value_note(pick), BEST_NOTE, LENGTH_NOTE] + protocol_notes(protocols_used, verbose=verbose)

        resolutions = finished["param.data.resolution"].dropna().unique() if "param.data.resolution" in finished else []
        same_res = int(resolutions[0]) if len(resolutions) == 1 else None  # published rows at our resolution only
        pub = (
            baselines.published_for(study=study, dataset=str(dataset), resolution=same_res)
            if published
            else pd.DataFrame()
        )
        shown = [m for m in baselines.METRICS if m in metrics]  # the metrics published numbers exist for
        if len(pub) and shown:
            pub_rows = []
            for _, p in pub.iterrows():
                if not any(present(p[m]) for m in shown):
                    continue
                row = {"variant": Cell(text=str(p["model"])), "n": Cell(text="—"), "kimg": Cell(), "g_updates": Cell()}
                for k, _, _, _, _ in _STUDY_COLUMNS[study]:
                    row[k] = Cell(text=str(p["resolution"]) if k == "resolution" else "—")
                if study == "table4":
                    row["g_params_m"] = Cell(value=float(p["g_params_m"]) if present(p["g_params_m"]) else None)
                    row["g_gflops"] = Cell()
                    row["img_per_s"] = Cell()
                for m in metrics:
                    if m in baselines.METRICS and present(p[m]):
                        row[m] = Cell(
                            value=float(p[m]),
                            std=float(p[f"{m}_std"]) if m == "is" and present(p["is_std"]) else None,
                            unverified=not bool(p[f"{m}_verified"]),
                            protocol=str(p["protocol"]),
                        )
                    else:
                        row[m] = Cell()
                pub_rows.append(row)
            if pub_rows:
                sections.append(Section("Published (not ranked)", pub_rows, ranked=False))
                notes.append(baselines.PUBLISHED_NOTE)
                if any(c.unverified for r in pub_rows for c in r.values()):
                    notes.append(baselines.UNVERIFIED_NOTE)
        res = first(finished, "param.data.resolution")
        where = DATASET_LABELS.get(str(dataset), str(dataset)) + (f", {res}×{res}" if present(res) else "")
        where += _budget_text(finished)
        if sid:
            notes.append(f"recorded study {sid} (the id hashes every run's config)")
        table = Table(
            key=f"{study}-{dataset}",
            title=f"{STUDY_TITLES[study]} ({where})",
            columns=cols,
            sections=sections,
            notes=notes,
        )
        mark_best(table)
        tables.append(table)
    if not tables:
        raise AnalysisError(
            f"the {study} runs have no FINISHED run yet (statuses: "
            f"{', '.join(sorted(runs['status'].dropna().unique()))}); wait for them to finish"
        )
    ours_on = set(runs["dataset"].dropna().astype(str))
    if published and study in STUDY_TITLES and study.startswith("table") and "cifar10" not in ours_on:
        paper = _paper_table(study)  # the question as the paper answered it, apart from our numbers
        if paper is not None:
            tables.append(paper)
    return tables


def _paper_table(study: str) -> Table | None:
    """The paper's own rows of a study on CIFAR-10, as their own unranked table: other data and
    other metrics than a digits study, so never a row of it."""
    pub = baselines.published_for(study=study, dataset="cifar10")
    if pub.empty:
        return None
    cols = [Column("variant", "Model"), metric_column("is", "final"), metric_column("fid", "final")]
    rows = []
    for _, p in pub.iterrows():
        row = {"variant": Cell(text=str(p["model"]))}
        for m in ("is", "fid"):
            std, ok = p.get(f"{m}_std"), p[f"{m}_verified"]
            row[m] = Cell(
                value=float(p[m]) if present(p[m]) else None,
                std=float(std) if present(std) else None,
                unverified=present(p[m]) and not (present(ok) and bool(ok)),
            )
        rows.append(row)
    notes = [baselines.PUBLISHED_NOTE]
    if any(c.unverified for r in rows for c in r.values()):
        notes.append(baselines.UNVERIFIED_NOTE)
    return Table(
        key=f"{study}-published",
        title=f"{STUDY_TITLES[study]}: as published on CIFAR-10 (32×32, Inception IS/FID; for orientation, not ranked)",
        columns=cols,
        sections=[Section("Published (not ranked)", rows, ranked=False)],
        notes=notes,
    )
