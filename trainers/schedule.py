"""When things happen, from the config and images seen alone: the run's length in steps, the report
points (log, evaluation, grid, checkpoint), the learning-rate schedule, and the short-run warning."""

from __future__ import annotations

import math
from typing import Any


def images_per_step(cfg: Any) -> int:
    """Real images one step shows D (n_critic D batches): the unit of every length and the EMA."""
    return cfg.optim.n_critic * cfg.optim.batch_d


def steps_left(cfg: Any, nimg: int) -> int:
    """Steps still needed after ``nimg`` real images (a resume): the end is train.kimg of images,
    counted at this config's images per step, whatever the checkpoint's were."""
    return math.ceil(max(0.0, cfg.train.kimg * 1000 - nimg) / images_per_step(cfg))


def total_steps(cfg: Any) -> int:
    """Steps needed to show cfg.train.kimg thousand real images to D (at least one)."""
    return max(1, steps_left(cfg, 0))


MIN_G_UPDATES = 500  # below this a GAN rarely shows anything (the digits preset needs ~1,000 for legible digits)


def short_run_warning(cfg: Any) -> str | None:
    """A warning when the run is configured for fewer than MIN_G_UPDATES generator updates."""
    n = total_steps(cfg)
    if n >= MIN_G_UPDATES:
        return None
    per = images_per_step(cfg)
    need = MIN_G_UPDATES * per / 1000
    return (
        f"warning: {cfg.train.kimg:g} kimg is only {n} generator updates ({per} real images per update: "
        f"n_critic {cfg.optim.n_critic} x batch {cfg.optim.batch_d}); GANs rarely learn in fewer than "
        f"{MIN_G_UPDATES}: set train.kimg >= {need:g} for a run meant to learn"
    )


def crossed(nimg_before: int, nimg_after: int, interval_kimg: float) -> bool:
    """True when images seen passed a multiple of the interval during this step (0 = never)."""
    if interval_kimg <= 0:
        return False
    every = max(1, round(interval_kimg * 1000))
    return nimg_after // every > nimg_before // every


def due_events(cfg: Any, nimg_before: int, nimg_after: int, *, last: bool) -> set[str]:
    """What a step ending at ``nimg_after`` must do: 'log', 'eval', 'grid', 'checkpoint' (all at the end).

    Depends on images seen alone, so every rank agrees and the cadence is the same whatever
    n_critic, the batch or the number of workers."""
    if last:
        return {"log", "eval", "grid", "checkpoint"}
    t = cfg.train
    intervals = {"log": t.log_kimg, "eval": t.eval_kimg, "grid": t.grid_kimg, "checkpoint": t.checkpoint_kimg}
    return {event for event, kimg in intervals.items() if crossed(nimg_before, nimg_after, kimg)}


def lr_scale(
    optim: Any,  # cfg.optim: reads lr_decay ('none' or 'linear'; absent = 'none')
    *,
    step: int,  # G updates done before this step
    last_step: int,  # total_steps(cfg)
) -> float:
    """optim.lr_decay: the factor on lr_g and lr_d for this step, from the G updates done (resume-safe)."""
    if getattr(optim, "lr_decay", "none") == "linear":
        return max(0.0, 1.0 - step / last_step)
    return 1.0
