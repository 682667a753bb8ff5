"""The training step replayed from CUDA graphs (``train.cuda_graphs``): same dynamics, fewer launches.

At the presets' batches the fast eager step is bound by kernel launches and host work, not by the
card's arithmetic (thousands of small kernels per step; ``bench/gpu_profile.py``). A CUDA graph
records every kernel of a step once and replays them all with one launch. What that asks of the
step, and how it is met here:

- Static inputs. The step's data batches, latents and gradient-penalty mixing weights are drawn on
  the host exactly as the eager step draws them (``step.draw_inputs``: the same generators, the
  same data order) and copied into buffers allocated once; the graph reads those buffers.
- No host values that change between steps. The learning rates and the EMA weight (1 - beta) are
  0-d device tensors filled before each replay, so lr decay and the EMA ramp-up need no new
  capture; Adam runs fused with ``capturable=True`` and the tensor lr while capturing.
- No host syncs inside: ``step.updates`` has none (losses stay on the device). Augmentation draws
  come from the default CUDA generator, whose Philox offset each replay advances.
- The gradient penalty's double backward (``torch.autograd.grad(create_graph=True)``), which
  torch.compile cannot trace, needs no tracing here: capture records the eager pass's kernels, the
  double backward's among them.

What the Python code of a step decides selects the graph: the locality mask width (it changes with
the epoch) and the lazy-regularisation cadence (which D updates run the penalties, when
``loss.reg_every`` > 1). A new pair runs ``WARMUP_STEPS`` real steps uncaptured on a side stream
(lazy initialisations such as optimizer state and library handles happen outside capture), is then
captured, and replays from there on. All graphs share one memory pool: safe because each replay's
outputs (the loss statistics) are read on the same stream before another graph replays, and nothing
else a graph allocates outlives its replay (gradients are set to None inside it).

A graph holds the addresses of every tensor it touches. Loading a checkpoint (resume, NaN rollback)
replaces the optimizers' state tensors, so ``Trainer._load_state`` calls ``invalidate``. Where the
step cannot be captured (``unsupported``) or a capture fails, the step runs eagerly and one
warning says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from transgan_lab.trainers.device import unwrap
from transgan_lab.trainers.ema import update_ema_tensor
from transgan_lab.trainers.step import StepInputs, add_stats, advance, beta_after, draw_inputs, set_lr, updates

if TYPE_CHECKING:
    from transgan_lab.trainers.trainer import Trainer

WARMUP_STEPS = 2  # uncaptured steps per graph before its capture (real steps: they train)


def unsupported(t: Trainer) -> str | None:
    """Why this trainer's step cannot run from CUDA graphs; None when it can."""
    if t.device.type != "cuda":
        return f"CUDA graphs need a CUDA device and this run is on {t.device.type}"
    if t.world > 1:
        return f"the step is not captured under DDP (world size {t.world})"
    if getattr(t.cfg.train, "compile", False):
        return "train.compile and train.cuda_graphs do not go together (pick one)"
    return None


def warn_eager(why: str) -> None:
    """The one-line warning of a run that asked for CUDA graphs and runs eagerly."""
    warnings.warn(f"train.cuda_graphs: {why}; the training step runs eagerly", stacklevel=3)


class CudaGraph:
    """One captured step: ``replay()`` runs its kernels again and returns its loss statistics
    (static tensors, overwritten by the next replay)."""

    def __init__(self, body: Callable[[], dict], *, pool, stream):
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool, stream=stream):
            self.stats = body()  # recorded, not run

    def replay(self) -> dict:
        self.graph.replay()
        return self.stats


class Uncaptured:
    """Stands in for ``CudaGraph`` where none can be captured (the CPU tests): ``replay()`` runs the
    body itself, so everything but the capture call is exercised."""

    def __init__(self, body: Callable[[], dict], **_):
        self.body = body

    def replay(self) -> dict:
        return self.body()


class GraphedStep:
    """``step(acc)`` as ``trainers.step.train_step``, replayed from CUDA graphs over static buffers."""

    def __init__(
        self,
        t: Trainer,  # the engine whose step this runs
        *,
        graph: type = CudaGraph,  # what records and replays a step (Uncaptured: the body runs each time)
        warmup_steps: int = WARMUP_STEPS,  # uncaptured steps of each new graph before its capture
    ):
        self.t, self.graph, self.warmup_steps = t, graph, warmup_steps
        dev = t.device
        self.lr_g = torch.zeros((), device=dev)
        self.lr_d = torch.zeros((), device=dev)
        self.ema_weight = torch.zeros((), device=dev)  # 1 - beta
        self.inputs: StepInputs | None = None  # the static buffers, allocated at the first step
        self.graphs: dict[tuple, object] = {}  # (width, regularise) -> captured step
        self.warm: Counter = Counter()  # uncaptured steps run per key
        self.pool = None
        self.stream = torch.cuda.Stream(dev) if dev.type == "cuda" else None
        self.active = True  # False after a failed capture: the trainer steps eagerly
        self.failure: str | None = None  # why the capture failed
        self.captures = 0
        self.replays = 0

    def invalidate(self) -> None:
        """Drop every graph: the next steps warm up and capture again. Needed whenever a tensor a graph
        reads or writes is replaced instead of updated in place (loading optimizer state does that)."""
        self.graphs.clear()
        self.warm.clear()
        self.pool = None

    def __call__(self, acc: dict) -> None:
        t = self.t
        set_lr(t)  # the float lrs stay in the optimizers (what metrics and checkpoints read)
        drawn = draw_inputs(t)
        self._load(drawn)
        beta = beta_after(t)
        self.ema_weight.fill_(1.0 - beta)
        self.lr_g.fill_(t.opt_G.param_groups[0]["lr"])
        self.lr_d.fill_(t.opt_D.param_groups[0]["lr"])
        add_stats(acc, self._run((drawn.width, drawn.regularise)))
        advance(t)
        t.last_beta = beta

    # -- buffers ---------------------------------------------------------------------------
    def _load(self, drawn: StepInputs) -> None:
        """Copy this step's draws into the static buffers the graphs read."""
        if self.inputs is None:
            like = torch.empty_like
            self.inputs = StepInputs(
                width=None,
                regularise=(),
                reals=[like(x) for x in drawn.reals],
                z_d=[None if z is None else like(z) for z in drawn.z_d],
                alphas=[like(a) for a in drawn.alphas],
                z_g=like(drawn.z_g),
            )
        b = self.inputs
        for dst, src in zip(b.reals + b.alphas + [b.z_g], drawn.reals + drawn.alphas + [drawn.z_g]):
            dst.copy_(src)
        for dst, src in zip(b.z_d, drawn.z_d):
            if dst is not None:
                dst.copy_(src)

    def _body(self, key: tuple) -> dict:
        """The captured work: every update of the step and the EMA update, from the static buffers."""
        stats: dict = {}
        updates(self.t, dataclasses.replace(self.inputs, width=key[0], regularise=key[1]), stats)
        update_ema_tensor(self.t.G_ema, unwrap(self.t.G), self.ema_weight)
        return stats

    # -- graphs ----------------------------------------------------------------------------
    def _run(self, key: tuple) -> dict:
        graph = self.graphs.get(key)
        if graph is None:
            if self.warm[key] < self.warmup_steps:
                self.warm[key] += 1
                return self._uncaptured(key)
            try:
                graph = self._capture(key)
            except Exception as e:  # noqa: BLE001 - any capture failure falls back to the eager step, with its reason
                self._abandon(f"capturing the step failed ({type(e).__name__}: {(str(e).splitlines() or [''])[0]})")
                warn_eager(self.failure)
                return self._body(key)  # this step's draws are in the buffers: run it once, uncaptured
        self.replays += 1
        return graph.replay()

    def _uncaptured(self, key: tuple) -> dict:
        """One real step without a graph; on a card on the side stream, as the warm-up before a capture."""
        if self.stream is None:
            return self._body(key)
        main = torch.cuda.current_stream(self.t.device)
        self.stream.wait_stream(main)
        with torch.cuda.stream(self.stream):
            stats = self._body(key)
        main.wait_stream(self.stream)
        for v in stats.values():
            v.record_stream(main)  # read on the main stream: not reused before that read
        return stats

    def _capture(self, key: tuple):
        # A width once left never returns (the locality schedule only widens, then switches off):
        # its graphs go, and their memory with them.
        for old in [k for k in self.graphs if k[0] != key[0]]:
            del self.graphs[old]
        if self.pool is None and self.stream is not None:
            self.pool = torch.cuda.graph_pool_handle()
        self.t.stream.settle()  # no CUDA work from the data stream's decoding thread during the capture
        self.t.opt_G.zero_grad(set_to_none=True)
        self.t.opt_D.zero_grad(set_to_none=True)
        with self._capturable_optimizers():
            graph = self.graph(lambda: self._body(key), pool=self.pool, stream=self.stream)
        self.graphs[key] = graph
        self.captures += 1
        return graph

    @contextlib.contextmanager
    def _capturable_optimizers(self):
        """While capturing: Adam reads its lr from the 0-d tensors and is marked capturable (its step
        counters are device tensors already: fused Adam keeps them there). Restored afterwards, so
        the optimizers' state dicts stay those of the eager step."""
        t, saved = self.t, []
        for opt, lr in ((t.opt_G, self.lr_g), (t.opt_D, self.lr_d)):
            for group in opt.param_groups:
                saved.append((group, group["lr"], group["capturable"]))
                group["lr"], group["capturable"] = lr, True
        try:
            yield
        finally:
            for group, lr, capturable in saved:
                group["lr"], group["capturable"] = lr, capturable

    def _abandon(self, why: str) -> None:
        """After a failed capture: no graph is used again, and no half-recorded state is left behind."""
        self.active, self.failure = False, why
        self.invalidate()
        unwrap(self.t.D).requires_grad_(True)
        self.t.opt_G.zero_grad(set_to_none=True)
        self.t.opt_D.zero_grad(set_to_none=True)
