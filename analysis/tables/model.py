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
TIE_NOTE = (
    "≈ = within the spread of the best: the difference is under 2 standard errors (Welch), so these "
    "seeds cannot tell the two apart"
)
TIE_SE = 2.0  # a difference under this many standard errors of the difference is a tie


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
    tie: bool = False  # not the best, but within the spread of the best (see TIE_NOTE)
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
    # Column keys the terminal renderer may leave out, first the first, when the table is wider than
    # the terminal (it says which, in a note); empty: every column is always shown.
    drop_order: list[str] = field(default_factory=list)


def present(v: Any) -> bool:
    return not (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)))


def within_spread(a: Cell, b: Cell) -> bool:
    """Are two mean ± std cells indistinguishable: |difference| < TIE_SE standard errors (Welch)?
    Needs a spread on both sides (n >= 2); without one nothing is a tie."""
    if not (a.std is not None and b.std is not None and (a.n or 0) >= 2 and (b.n or 0) >= 2):
        return False
    se = math.sqrt(a.std**2 / a.n + b.std**2 / b.n)
    return abs(a.value - b.value) < TIE_SE * se if se > 0 else a.value == b.value


def mark_best(table: Table) -> None:
    """Bold the best ranked cell of each metric column, and mark those within its spread (≈)."""
    for col in table.columns:
        if col.kind != "metric":
            continue
        cells = [
            r[col.key] for s in table.sections if s.ranked for r in s.rows if col.key in r and present(r[col.key].value)
        ]
        if len(cells) < 2:
            continue
        pick = min if col.direction == "min" else max
        best = pick(cells, key=lambda c: c.value)
        for c in cells:
            c.bold = c.value == best.value
            c.tie = not c.bold and within_spread(c, best)
    if any(c.tie for s in table.sections for r in s.rows for c in r.values()) and TIE_NOTE not in table.notes:
        table.notes.append(TIE_NOTE)


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
    label = metric_registry.header(m) + (" (best)" if pick == "best" else "")  # `digits-FID ↓`
    return Column(key=m, label=label, kind="metric", digits=2, direction=metric_registry.mode(m))


def value_note(pick: str) -> str:
    return f"values: mean ± std over seeds (sample std); n = runs; per-run value = {PICK_LABELS[pick]}" + (
        "; NOT the final model" if pick == "best" else ""
    )


def protocol_short(metric: str, protocol_json: str | None) -> str:
    """One line a reader needs: ``digits-FID: 1,000 fake vs 1,797 real, digits-cnn-v1 f77286ed (protocol 70e7916a)``.
    The full protocol stays in MLflow, the Parquet/JSON exports and ``--verbose``."""
    label = metric_registry.label(metric)
    if not protocol_json:
        return f"{label}: protocol not recorded"
    try:
        p = json.loads(protocol_json)
    except ValueError:
        return f"{label}: protocol {protocol_id(protocol_json)}"
    parts = []
    if p.get("n_fake") is not None:
        parts.append(f"{int(p['n_fake']):,} fake" + (f" vs {int(p['n_real']):,} real" if p.get("n_real") else ""))
    extractor = p.get("classifier") or p.get("extractor")
    sha = next((str(p[k]) for k in ("classifier_sha256", "weights_sha256", "stats_sha256") if p.get(k)), "")
    if extractor or sha:
        parts.append(" ".join(x for x in (str(extractor or ""), sha[:8]) if x))
    return f"{label}: {', '.join(parts) or 'protocol'} (protocol {protocol_id(protocol_json)})"


def protocol_notes(protocols: dict[str, str | None], *, verbose: bool = False) -> list[str]:
    if verbose:
        return [
            f"{metric_registry.label(m)} protocol {protocol_id(p)}: {p if p else 'not recorded'}"
            for m, p in protocols.items()
        ]
    return [protocol_short(m, p) for m, p in protocols.items()]


def json_list(text: Any) -> list[str]:
    """A JSON list (or one JSON value, or comma-separated text) as strings."""
    if not present(text):
        return []
    try:
        v = json.loads(text)
        return [str(x) for x in v] if isinstance(v, list) else [str(v)]
    except ValueError:
        return [s.strip() for s in str(text).split(",") if s.strip()]
