"""Published results (analysis/data/published.csv): the paper's numbers and its baselines.

Source: ../shared/reference/transgan-facts.md §8. Each value carries its own verification flag:
`is_verified` / `fid_verified` = yes (checked against a primary source: an abstract, the official
repository or its issue tracker) or no (quoted from the paper's tables second-hand, not checked).
Every output marks unverified values with UNVERIFIED_MARK and a footnote; published values are
shown beside our runs but never ranked with them (their protocols are not ours).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from transgan_lab.analysis.load import AnalysisError

UNVERIFIED_MARK = "†"
UNVERIFIED_NOTE = (
    f"{UNVERIFIED_MARK} unverified: quoted from the paper's tables second-hand, not checked against the paper "
    "(transgan-facts.md §8.2)"
)
PUBLISHED_NOTE = (
    "published numbers come from their authors' evaluation protocols (listed in analysis/data/published.csv); "
    "shown for reference, never ranked with our runs"
)

COLUMNS = (
    "study",
    "model",
    "dataset",
    "resolution",
    "is",
    "is_std",
    "fid",
    "g_params_m",
    "is_verified",
    "fid_verified",
    "source",
    "protocol",
    "note",
)
METRICS = ("is", "fid")


def default_path() -> Path:
    return Path(str(resources.files("transgan_lab.analysis") / "data" / "published.csv"))


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """The published-results table, typed and checked (a value without a verified flag is an error)."""
    path = Path(path) if path is not None else default_path()
    try:
        df = pd.read_csv(
            path,
            dtype={
                "study": "string",
                "model": "string",
                "dataset": "string",
                "source": "string",
                "protocol": "string",
                "note": "string",
                "is_verified": "string",
                "fid_verified": "string",
            },
        )
    except OSError as e:
        raise AnalysisError(
            f"cannot read published results {path}: {e}; reinstall the package or pass the right path"
        ) from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise AnalysisError(f"{path}: missing column(s) {missing}; expected {', '.join(COLUMNS)}")
    for m in METRICS:
        flag = df[f"{m}_verified"]
        bad = df[df[m].notna() & ~flag.isin(["yes", "no"])]
        if len(bad):
            rows = ", ".join(f"line {i + 2} ({r.model}, {r.dataset})" for i, r in bad.iterrows())
            raise AnalysisError(
                f"{path}: {m} values without {m}_verified yes/no at {rows}; "
                "every published value must say whether it was verified"
            )
        df[f"{m}_verified"] = flag.map({"yes": True, "no": False}).astype("boolean")
        df.loc[df[m].isna(), f"{m}_verified"] = pd.NA
    if df["source"].isna().any():
        raise AnalysisError(f"{path}: every row needs a source citation")
    return df


def published_for(
    *, study: str, dataset: str | None = None, resolution: int | None = None, path: str | Path | None = None
) -> pd.DataFrame:
    """Published rows of one study (table1..table4, sota, celeba), optionally one dataset/resolution."""
    df = load_published(path)
    sel = df["study"] == study
    if dataset is not None:
        sel &= df["dataset"] == dataset
    if resolution is not None:
        sel &= df["resolution"] == resolution
    return df[sel].reset_index(drop=True)
