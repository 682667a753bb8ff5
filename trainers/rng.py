"""The engine's random streams: per-(step, phase) generators for what must be the same on every rank
(latents, gradient-penalty mixing weights), and the global streams (augmentation) that checkpoints
save and maintenance leaves where it found them."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def step_generator(seed: int, reseed: int, step: int, tag: int) -> torch.Generator:
    """CPU generator for one (step, phase); identical on every rank."""
    mixed = (seed * 1_000_003 + reseed * 97_409 + step * 16 + tag) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)


def seed_globals(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The global generators' states, as tensors and plain lists (what a checkpoint stores)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` returned (CUDA states only on the same number of devices)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npv = state["numpy"]
    np.random.set_state((npv[0], npv[1].numpy().astype(np.uint32), npv[2], npv[3], npv[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng():
    """Maintenance (grids, evaluation) must not move the training RNG streams, or a run that
    evaluates at step N would continue differently from one that does not."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
