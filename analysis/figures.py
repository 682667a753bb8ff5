"""Figures (matplotlib, Agg only; no pyplot state): curves over kimg, Optuna importances, Pareto front, sample grids.

Every function returns a `matplotlib.figure.Figure`; `png_bytes(fig)` renders it. Importances are
computed with Optuna's fANOVA evaluator on an in-memory study rebuilt from the recorded trials
(Optuna + scikit-learn, no torch).
"""

from __future__ import annotations

import io
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from transgan_lab.analysis.load import AnalysisError

DPI = 100


def _fig(w: float = 6.4, h: float = 3.6) -> Figure:
    fig = Figure(figsize=(w, h), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def curves_figure(
    curves: pd.DataFrame,  # long frame run_id, metric, step, kimg, value (load.load_curves)
    *,
    metric: str,  # which metric to plot
    labels: Mapping[str, str],  # run_id -> legend label
    groups: Mapping[str, str] | None = None,  # run_id -> group; groups are drawn as mean ± std bands
    highlight: Sequence[str] = (),  # run_ids drawn thicker (e.g. the top trials)
    title: str | None = None,
    metric_label: str | None = None,
) -> Figure:
    """`metric` against kimg (step = nimg / 1000), one line per run, or mean ± std per group."""
    d = curves[curves["metric"] == metric]
    if d.empty:
        raise AnalysisError(
            f"no history of metric {metric!r} for these runs; pick one of {sorted(curves['metric'].unique())}"
        )
    fig = _fig()
    ax = fig.add_subplot(1, 1, 1)
    if groups:
        d = d.assign(group=d["run_id"].map(groups))
        for g, gd in d.groupby("group", sort=True):
            stats = gd.groupby("kimg")["value"].agg(["mean", "std", "count"]).reset_index()
            ax.plot(stats["kimg"], stats["mean"], marker="o", ms=3, label=f"{g} (n={gd['run_id'].nunique()})")
            band = stats["std"].fillna(0.0)
            ax.fill_between(stats["kimg"], stats["mean"] - band, stats["mean"] + band, alpha=0.2)
    else:
        for run_id, rd in d.groupby("run_id", sort=False):
            lw = 2.2 if run_id in highlight else 1.0
            ax.plot(
                rd["kimg"],
                rd["value"],
                marker="o",
                ms=3,
                lw=lw,
                alpha=1.0 if (run_id in highlight or not highlight) else 0.55,
                label=labels.get(run_id, run_id),
            )
    ax.set_xlabel("kimg (thousands of real images shown to D)")
    ax.set_ylabel(metric_label or metric)
    ax.set_title(title or f"{metric_label or metric} vs kimg")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if d["run_id"].nunique() > 6 else 1)
    return fig


# ---------------------------------------------------------------------------- importances


def _distribution(values: pd.Series):
    """An Optuna distribution for one searched param, inferred from its recorded values."""
    import optuna.distributions as D

    vals = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)
    if numeric:
        lo, hi = float(vals.min()), float(vals.max())
        if pd.api.types.is_integer_dtype(values.dtype):
            return D.IntDistribution(int(lo), int(hi)), lambda v: int(v)
        log = lo > 0 and hi / lo >= 10
        return D.FloatDistribution(lo, hi, log=log), lambda v: float(v)
    choices = tuple(sorted({str(v) for v in vals}))
    return D.CategoricalDistribution(choices), lambda v: str(v)


MIN_TRIALS_FOR_IMPORTANCE = 5  # fANOVA's floor, whatever the number of params


def min_trials_for_importance(n_params: int) -> int:
    """Scored trials below which importances are not reported: at least 5, and two per searched
    param (a random forest on fewer points than that ranks noise)."""
    return max(MIN_TRIALS_FOR_IMPORTANCE, 2 * n_params)


IMPORTANCE_CAVEAT = (
    "fANOVA fits a random forest to the recorded trials: with {n} trials for {p} params it is a rough "
    "ranking, not a measurement; check an important-looking param with an ablation before relying on it."
)


def param_importances(
    trials: pd.DataFrame,  # trial rows (tidy runs frame)
    *,
    params: Sequence[str],  # searched dotted keys
    objective_column: str,  # e.g. final.digits_fid
    direction: str,  # min | max
    seed: int = 0,  # fANOVA forest seed (deterministic output)
) -> dict[str, float]:
    """fANOVA importance of each searched param for one objective (sums to 1); {} when it cannot be computed."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = trials[trials[objective_column].notna()] if objective_column in trials else trials.iloc[0:0]
    cols = [p for p in params if f"param.{p}" in rows and rows[f"param.{p}"].astype("string").nunique() > 1]
    if len(rows) < 2 or not cols:
        return {}
    dists = {p: _distribution(rows[f"param.{p}"]) for p in cols}
    study = optuna.create_study(direction="minimize" if direction == "min" else "maximize")
    for _, r in rows.iterrows():
        vals = {p: dists[p][1](r[f"param.{p}"]) for p in cols if pd.notna(r[f"param.{p}"])}
        if len(vals) != len(cols):
            continue
        study.add_trial(
            optuna.trial.create_trial(
                params=vals, distributions={p: dists[p][0] for p in cols}, value=float(r[objective_column])
            )
        )
    if len(study.trials) < 2:
        return {}
    imp = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed)
    )
    return {k: float(v) for k, v in imp.items()}


def importance_figure(importances: Mapping[str, Mapping[str, float]]) -> Figure:
    """Horizontal bars: objective -> {param: importance}."""
    if not importances or not any(importances.values()):
        raise AnalysisError(
            "no parameter importances to plot (a sweep needs at least 2 scored trials and a varied param)"
        )
    objs = [o for o, v in importances.items() if v]
    fig = _fig(6.4, 1.2 + 0.45 * max(len(v) for v in importances.values()) * len(objs))
    for i, o in enumerate(objs):
        ax = fig.add_subplot(len(objs), 1, i + 1)
        items = sorted(importances[o].items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in items], [v for _, v in items], color="#4c72b0")
        for y, (_, v) in enumerate(items):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlim(0, 1.1)
        ax.set_title(f"fANOVA importance for {o}", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def pareto_figure(
    points: pd.DataFrame,  # one row per scored trial: the two objective columns + "label" + "pareto" (bool)
    *,
    x: str,  # column on the x axis
    y: str,  # column on the y axis
    x_label: str,
    y_label: str,
) -> Figure:
    """All trials, the Pareto-optimal ones highlighted and joined as a front."""
    fig = _fig()
    ax = fig.add_subplot(1, 1, 1)
    dom = points[~points["pareto"]]
    front = points[points["pareto"]].sort_values(x)
    ax.scatter(dom[x], dom[y], c="#999999", label="dominated", zorder=2)
    ax.scatter(front[x], front[y], c="#c44e52", label="Pareto front", zorder=3)
    ax.plot(front[x], front[y], c="#c44e52", lw=1, drawstyle="steps-post" if len(front) > 1 else "default", zorder=1)
    for _, r in points.iterrows():
        ax.annotate(str(r["label"]), (r[x], r[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title("Pareto front of the sweep's objectives")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------------------ sample grids

_IMAGE_NAME = re.compile(r"^(?P<key>[^+]+)\+step\+(?P<step>\d+)\+timestamp\+(?P<ts>\d+)\+[0-9a-f-]+\.png$")


def newest_sample_image(client, run_id: str, *, key: str = "samples"):
    """(step, PIL image) of the newest `log_image(key=...)` of a run, or None when it logged none."""
    from PIL import Image

    try:
        files = client.list_artifacts(run_id, "images")
    except Exception:  # noqa: BLE001 - a run without artifacts or a store without artifact access
        return None
    found = []
    for f in files:
        m = _IMAGE_NAME.match(Path(f.path).name)
        if m and m["key"] == key:
            found.append((int(m["step"]), int(m["ts"]), f.path))
    if not found:
        return None
    step, _, path = max(found)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in CLI output
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, path, tmp)
        with Image.open(local) as im:
            return step, im.convert("RGB").copy()


def sample_grid_figure(samples: Sequence[tuple[str, object]], *, cols: int = 3) -> Figure:
    """Tile (title, PIL image) pairs, e.g. the final EMA sample grid of each top trial."""
    if not samples:
        raise AnalysisError("no sample grids were logged for these runs (log_image key 'samples')")
    cols = min(cols, len(samples))
    rows = math.ceil(len(samples) / cols)
    fig = _fig(3.0 * cols, 3.2 * rows)
    for i, (title, img) in enumerate(samples):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


__all__ = [
    "curves_figure",
    "IMPORTANCE_CAVEAT",
    "MIN_TRIALS_FOR_IMPORTANCE",
    "min_trials_for_importance",
    "param_importances",
    "importance_figure",
    "pareto_figure",
    "newest_sample_image",
    "sample_grid_figure",
    "png_bytes",
]
