"""Paper-style tables from recorded runs, in five formats: terminal, Markdown, LaTeX, HTML, CSV.

    model.py     what a table is (columns, cells, sections, notes) and the builders' shared pieces
    studies.py   one study's tables (table1..table4, sota, celeba) with the published baselines
    sweep.py     a sweep's top-k trials with their searched params, objectives and Pareto front
    render.py    the five renderers

``build(df, study=...)`` makes the tables of a study (or a sweep), ``render(tables, fmt)`` prints them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from transgan_lab.analysis.load import AnalysisError
from transgan_lab.analysis.pareto import pareto_mask
from transgan_lab.analysis.tables.model import Cell, Column, Section, Table
from transgan_lab.analysis.tables.render import FORMATS, render, render_html
from transgan_lab.analysis.tables.studies import PAPER_STUDIES, study_tables
from transgan_lab.analysis.tables.sweep import searched_params, sweep_frames, sweep_objectives, sweep_table

STUDIES = PAPER_STUDIES + ("sweep",)

__all__ = [
    "FORMATS",
    "STUDIES",
    "Cell",
    "Column",
    "Section",
    "Table",
    "build",
    "pareto_mask",
    "render",
    "render_html",
    "searched_params",
    "study_tables",
    "sweep_frames",
    "sweep_objectives",
    "sweep_table",
]


def build(
    df: pd.DataFrame,  # tidy runs frame
    *,
    study: str,  # one of STUDIES
    sweep_id: str | None = None,  # for study == "sweep"
    pick: str = "final",  # per-run value rule
    top: int = 10,  # rows of a sweep table
    protocols: Sequence[str] = (),  # protocol ids to keep
    verbose: bool = False,  # full protocol JSON in the notes; a sweep table: every column too
) -> list[Table]:
    """The tables of one study (or a sweep's top-k)."""
    if study == "sweep":
        if not sweep_id:
            raise AnalysisError("a sweep table needs the sweep id (--sweep ID)")
        return [sweep_table(df, sweep_id=sweep_id, pick=pick, top=top, protocols=protocols, verbose=verbose)]
    return study_tables(df, study=study, pick=pick, protocols=protocols, verbose=verbose)
