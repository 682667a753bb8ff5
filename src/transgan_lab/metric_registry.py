"""Every metric that is ranked or compared anywhere: its name, which way is better, its label, unit
and evaluation protocol; and the display label of every config field a sweep searches. The engine
(best checkpoint), tracking, the sweep (Optuna/ASHA modes, objectives) and the analysis layer
(tables, Pareto fronts, figures) all look metrics up here.

Pure Python on purpose: ``trainers`` (torch only) and ``analysis`` (never torch) both import it.

A metric that is not listed (losses, learning rates and the engine's other training signals) is
lower-is-better and labelled by its name; nothing ranks by those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Evaluation protocol families: what a score needs and what it may be called (DESIGN.md: nothing is
# "FID" or "IS" unless it was computed with the standard Inception weights).
TF_INCEPTION = "tf-inception"  # torch-fidelity's port of the TF Inception weights; needs RGB images
DIGITS_CLASSIFIER = "digits-classifier"  # the offline classifier trained on the embedded digits data


@dataclass(frozen=True)
class Metric:
    name: str  # key in engine reports, Ray/Tune results and MLflow
    mode: Literal["min", "max"]  # which way is better, in Ray's and Optuna's words
    label: str  # column header and axis label
    unit: str = ""  # "" for scores; "img/s", "s", "params" or "FLOPs" otherwise
    protocol: str | None = None  # evaluation protocol family; None: not an evaluation metric


# Evaluation metrics first, in the column order of the paper's tables (IS before FID).
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("is", "max", "IS", protocol=TF_INCEPTION),
        Metric("fid", "min", "FID", protocol=TF_INCEPTION),
        Metric("kid", "min", "KID", protocol=TF_INCEPTION),
        Metric("digits_is", "max", "digits-IS", protocol=DIGITS_CLASSIFIER),
        Metric("digits_fid", "min", "digits-FID", protocol=DIGITS_CLASSIFIER),
        # cost and speed: the further objectives of multi-objective sweeps and Table 4's columns
        Metric("img_per_s", "max", "img/s", unit="img/s"),
        Metric("sec_per_kimg", "min", "s/kimg", unit="s"),
        Metric("g_params", "min", "G params", unit="params"),
        Metric("d_params", "min", "D params", unit="params"),
        Metric("g_flops", "min", "G FLOPs", unit="FLOPs"),
        Metric("d_flops", "min", "D FLOPs", unit="FLOPs"),
    )
}

EVAL_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS.values() if m.protocol)
# Summarised by their median over a run: the first reports include warm-up.
THROUGHPUT_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS.values() if m.unit in ("img/s", "s"))
# Counted once per model (step 0), so a sweep can also minimise model size.
SIZE_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS.values() if m.unit in ("params", "FLOPs"))


def mode(name: str) -> str:
    """ "min" or "max": which way ``name`` is better (unlisted metrics: "min")."""
    return METRICS[name].mode if name in METRICS else "min"


def lower_is_better(name: str) -> bool:
    return mode(name) == "min"


def label(name: str) -> str:
    """Display label (``digits-FID``); an unlisted metric is shown by its name."""
    return METRICS[name].label if name in METRICS else name


def eval_metrics(protocol: str | None = None) -> tuple[str, ...]:
    """Evaluation metric names, all or those of one protocol family."""
    return tuple(n for n in EVAL_METRICS if protocol is None or METRICS[n].protocol == protocol)


def header(name: str) -> str:
    """Column header of a metric: an evaluation score carries its direction (``digits-FID ↓``), a
    cost its unit where the label lacks it (``G params``); an unlisted metric is shown by its name."""
    if name not in METRICS:
        return name
    m = METRICS[name]
    return f"{m.label} {'↓' if m.mode == 'min' else '↑'}" if m.protocol else m.label


@dataclass(frozen=True)
class Param:
    key: str  # dotted config key, as logged to MLflow (`model.g.embed_dim`)
    label: str  # column header in tables (`G width`)
    unit: str = ""  # "" or e.g. "kimg"


# The config fields the search spaces sample (platform/sweep/spaces.py) and the studies vary, in the
# order a paper's table lists them: architecture, then recipe.
PARAMS: dict[str, Param] = {
    p.key: p
    for p in (
        Param("model.g.embed_dim", "G width"),
        Param("model.g.depths", "G depths"),
        Param("model.g.heads", "G heads"),
        Param("model.g.bottom", "G bottom"),
        Param("model.g.locality.enabled", "Locality"),
        Param("model.g.locality.schedule", "Loc. schedule"),
        Param("model.g.locality.off_epoch", "Loc. off", "epoch"),
        Param("model.d.depth", "D depth"),
        Param("model.d.patch_size", "D patch"),
        Param("augment.policy", "Aug."),
        Param("model.mtct.enabled", "MT-CT"),
        Param("model.mtct.weight", "MT-CT λ"),
        Param("loss.kind", "Loss"),
        Param("loss.r1_gamma", "R1 γ"),
        Param("loss.reg_every", "Reg. every"),
        Param("optim.lr_g", "lr G"),
        Param("optim.lr_d", "lr D"),
        Param("optim.beta1", "β1"),
        Param("optim.n_critic", "n_critic"),
        Param("optim.batch_d", "Batch D"),
        Param("optim.batch_g", "Batch G"),
        Param("optim.ema_kimg", "EMA", "kimg"),
    )
}


def param_label(key: str) -> str:
    """Column header of a config field (``G width``, ``EMA (kimg)``); an unlisted one by its dotted key."""
    p = PARAMS.get(key)
    if p is None:
        return key
    return f"{p.label} ({p.unit})" if p.unit else p.label


def param_order(key: str) -> int:
    """Where a field's column goes: the order of ``PARAMS``, unlisted fields after them."""
    return list(PARAMS).index(key) if key in PARAMS else len(PARAMS)


# Config fields that do not change what is trained: names, training length and intervals, paths,
# speed and memory settings, evaluation, resources, tracking, the sweep. A resume may change them
# (the engine's dynamics hash leaves them out); a dotted name covers everything under it.
NON_DYNAMIC = (
    "name",
    "preset",
    "train.kimg",
    "train.log_kimg",
    "train.checkpoint_kimg",
    "train.keep_last",
    "train.grid_kimg",
    "train.eval_kimg",
    "train.nan_retries",
    "train.compile",
    "train.activation_checkpointing",
    "train.cuda_graphs",
    "data.root",
    "data.download",
    "data.loader_workers",
    "eval",
    "resources",
    "tracking",
    "sweep",
)


def in_fields(key: str, fields: tuple[str, ...]) -> bool:
    """``key`` (dotted) is one of ``fields`` or lies under one of them ('eval' holds 'eval.n_fake')."""
    return any(key == f or key.startswith(f + ".") for f in fields)
