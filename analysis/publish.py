"""A recorded study, published: what `transgan-lab study ... --publish DIR` writes under DIR/<study>/.

    table.md      the study's tables (Markdown), exactly what `transgan-lab table <study>
                  --parquet runs.parquet --format markdown` prints
    table.tex     the same tables in LaTeX (booktabs)
    runs.parquet  the runs frame the tables were built from (no MLflow store needed to rebuild them)
    curves.png    the primary metric against kimg, mean ± std over seeds per variant
    grids/*.png   the final EMA sample grid of each variant's first seed

Everything is generated from the recorded runs; nothing here is edited by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from transgan_lab import metric_registry
from transgan_lab.analysis import figures, load
from transgan_lab.analysis.load import AnalysisError


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def study_markdown(df: pd.DataFrame, *, study: str) -> str:
    """The Markdown of a study's tables from a runs frame (MLflow or Parquet: the same bytes)."""
    from transgan_lab.analysis.tables import render, study_tables

    return render(study_tables(df, study=study), "markdown")


def publish_study(
    df: pd.DataFrame,  # the study's runs (load_runs), parent and trials
    *,
    study: str,  # table1 | table2 | table3 | table4
    out_dir: Path,  # files go to out_dir/<study>/
    tracking_uri: str | None = None,  # the store the runs came from (curves and sample grids)
) -> Path:
    """Write the tables, the Parquet export, the learning curves and a grid per variant."""
    from transgan_lab.analysis.tables import render, study_tables

    trials = df[(df["kind"].fillna("train") != "sweep") & (df["status"] == "FINISHED")]
    if trials.empty:
        raise AnalysisError(f"no finished runs of {study} to publish; run `transgan-lab study {study}` first")
    dest = Path(out_dir) / study
    (dest / "grids").mkdir(parents=True, exist_ok=True)
    parquet = load.export_parquet(df, dest / "runs.parquet")
    # the published Markdown is rebuilt from the Parquet file, so that file is all one needs
    again = load.import_parquet(parquet)
    (dest / "table.md").write_text(study_markdown(again, study=study))
    (dest / "table.tex").write_text(render(study_tables(again, study=study), "latex"))

    primary = str(trials["param.eval.primary"].dropna().iloc[0]) if "param.eval.primary" in trials else "fid"
    curves = load.load_curves(run_ids=trials["run_id"], metrics=[primary], tracking_uri=tracking_uri)
    if not curves.empty:
        variant = dict(zip(trials["run_id"], trials["variant"].astype(str), strict=True))
        fig = figures.curves_figure(
            curves,
            metric=primary,
            labels=variant,
            groups=variant,
            title=f"{study}: {metric_registry.label(primary)} of the EMA generator (mean ± std over seeds)",
            metric_label=metric_registry.label(primary),
        )
        if metric_registry.lower_is_better(primary):
            fig.axes[0].set_yscale("log")
        (dest / "curves.png").write_bytes(figures.png_bytes(fig))

    client = load.open_store(tracking_uri)
    for name, group in trials.sort_values("seed").groupby("variant", sort=False):
        got = figures.newest_sample_image(client, str(group["run_id"].iloc[0]))
        if got is not None:
            step, img = got
            img.save(dest / "grids" / f"{_slug(str(name))}.png", optimize=True)
    return dest
