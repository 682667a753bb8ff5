"""Locality-aware initialisation (v1): which mask half-width applies at a given epoch."""

from __future__ import annotations


def locality_width(loc_cfg, epoch: int) -> int | None:
    """Half-width of the locality mask at ``epoch`` (one pass over the D data), or None for no mask.

    loc_cfg: ``cfg.model.g.locality`` (enabled, schedule [[start_epoch, width], ...], off_epoch).
    The width of the last schedule entry whose start is <= epoch applies (the first entry's width
    before its start); from ``off_epoch`` on the mask is removed.
    """
    if not getattr(loc_cfg, "enabled", False):
        return None
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if epoch >= loc_cfg.off_epoch:
        return None
    schedule = [(int(e), int(w)) for e, w in loc_cfg.schedule]
    if not schedule:
        raise ValueError("model.g.locality.schedule is empty: give [[epoch, width], ...] or set enabled: false")
    width = schedule[0][1]
    for start, w in schedule:
        if epoch >= start:
            width = w
    return width
