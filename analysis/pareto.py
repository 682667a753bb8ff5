"""The one Pareto front: the rows no other row beats on every objective.

Used by the sweep table, the report's figure and the sweep itself (platform prints the front at
the end of a multi-objective sweep and logs it to the parent run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from transgan_lab import metric_registry


def pareto_mask(values: pd.DataFrame, modes: Sequence[str]) -> pd.Series:
    """True for rows no other row dominates (at least as good in every column, better in one).

    ``modes``: "min" or "max" per column. A row with a missing or non-finite value is never on the
    front and dominates nothing.
    """
    signs = [1.0 if m == "min" else -1.0 for m in modes]
    pts = [
        [s * float(v) if v is not None and v is not pd.NA else math.nan for s, v in zip(signs, row)]
        for row in values.itertuples(index=False)
    ]
    ok = [all(math.isfinite(x) for x in p) for p in pts]
    keep = []
    for i, p in enumerate(pts):
        dominated = any(
            ok[j] and all(q[k] <= p[k] for k in range(len(p))) and any(q[k] < p[k] for k in range(len(p)))
            for j, q in enumerate(pts)
            if j != i
        )
        keep.append(ok[i] and not dominated)
    return pd.Series(keep, index=values.index, dtype=bool)


def pareto_front(df: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The rows of ``df`` on the Pareto front of its ``objectives`` columns (directions from the
    metric registry), in their order in ``df``."""
    cols = list(objectives)
    return df[pareto_mask(df[cols], [metric_registry.mode(c) for c in cols])].reset_index(drop=True)
