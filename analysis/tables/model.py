"""What a table is (columns, cells, sections, notes) and the pieces every builder uses: metric
columns, best-value marking, cell texts and the notes that state the value rule and protocols.

Rules: cells are mean ± std over seeds (see `aggregate`); the per-run value rule is stated in every
table; rows scored under different protocols are refused (never merged, never ranked); the best of
our rows per metric column is bold; published values are a separate, unranked section.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from transgan_lab import metric_registry
from transgan_lab.analysis.aggregate import PICK_LABELS, protocol_id

BEST_NOTE = "bold = best of our runs in the column (lower FID/KID, higher IS); published rows are not ranked"


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


def present(v: Any) -> bool:
    return not (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)))


def mark_best(table: Table) -> None:
    for col in table.columns:
        if col.kind != "metric":
            continue
        cells = [
            r[col.key] for s in table.sections if s.ranked for r in s.rows if col.key in r and present(r[col.key].value)
        ]
        if len(cells) < 2:
            continue
        pick = min if col.direction == "min" else max
        best = pick(c.value for c in cells)
        for c in cells:
            c.bold = c.value == best


def param_text(v: Any) -> str:
    if not present(v):
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


def depths_text(v: Any) -> str:
    if not present(v):
        return "—"
    try:
        return "/".join(str(x) for x in json.loads(v))
    except (TypeError, ValueError):
        return str(v)


def first(group: pd.DataFrame, col: str) -> Any:
    if col not in group:
        return None
    vals = group[col].dropna()
    return vals.iloc[0] if len(vals) else None


def metric_column(m: str, pick: str) -> Column:
    label = metric_registry.label(m) + (" (best)" if pick == "best" else "")
    return Column(key=m, label=label, kind="metric", digits=2, direction=metric_registry.mode(m))


def value_note(pick: str) -> str:
    return f"values: mean ± std over seeds (sample std); n = runs; per-run value = {PICK_LABELS[pick]}" + (
        "; NOT the final model" if pick == "best" else ""
    )


def protocol_notes(protocols: dict[str, str | None]) -> list[str]:
    return [
        f"{metric_registry.label(m)} protocol {protocol_id(p)}: {p if p else 'not recorded'}"
        for m, p in protocols.items()
    ]


def json_list(text: Any) -> list[str]:
    """A JSON list (or one JSON value, or comma-separated text) as strings."""
    if not present(text):
        return []
    try:
        v = json.loads(text)
        return [str(x) for x in v] if isinstance(v, list) else [str(v)]
    except ValueError:
        return [s.strip() for s in str(text).split(",") if s.strip()]
