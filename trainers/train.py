"""The GAN training loop every run uses: alone in one process, or as one rank of a Ray Train job.

    train(cfg, reporter, out_dir=...) -> status dict

One **step** = ``optim.n_critic`` D updates then one G update. Global batches are config; each rank
runs ``batch / (world_size * accum)`` rows per micro-batch, so the worker count never changes the
dynamics: latents and gradient-penalty mixing weights are drawn for the whole global batch from a
generator seeded by (seed, step) and sliced per rank, the data stream hands every rank its slice of
the same global batch, and gradients are averaged over ranks (DDP) and micro-batches.

Maintenance (checkpoints, sample grids, evaluation) happens only at report points, which depend on
the step alone, so every rank calls ``reporter.report`` the same number of times (Ray's report is a
barrier). Throughput is measured over the training part only; maintenance is timed separately.
Losses are read from the device only when reported (no host sync inside a step). A NaN/Inf found at a
report rolls back to the last good checkpoint with fresh randomness, at most ``train.nan_retries``
times; then the run stops with status ``diverged``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from transgan_lab.metric_registry import lower_is_better
from transgan_lab.trainers import checkpoint as ckpt
from transgan_lab.trainers import hashing
from transgan_lab.trainers.ema import ema_beta, update_ema
from transgan_lab.trainers.models import attention


class Reporter(Protocol):
    def report(
        self, metrics: dict[str, float], checkpoint_dir: str | None = None, files: dict[str, str] | None = None
    ) -> None: ...


class NullReporter:
    """Reporter that drops everything (metrics still go to metrics.jsonl)."""

    def report(self, metrics, checkpoint_dir=None, files=None) -> None:
        pass


@dataclass
class TrainState:
    step: int = 0  # completed steps
    nimg: int = 0  # real images shown to D
    reseed: int = 0  # bumped by every NaN rollback: fresh randomness after it
    rollbacks: int = 0
    best_value: float | None = None  # best primary metric so far
    best_checkpoint: str | None = None
    train_s: float = 0.0  # seconds spent in training steps (evaluation, grids and checkpoints excluded)
    config_changes: list = field(default_factory=list)


# ---------------------------------------------------------------------------------- helpers


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 where asked or where the device runs it fast ('auto'); None = fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    fast_bf16 = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return torch.bfloat16 if fast_bf16 else None


def _step_generator(seed: int, reseed: int, step: int, tag: int) -> torch.Generator:
    """CPU generator for one (step, phase); identical on every rank."""
    mixed = (seed * 1_000_003 + reseed * 97_409 + step * 16 + tag) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)


def _seed_globals(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
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


def _set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npv = state["numpy"]
    np.random.set_state((npv[0], npv[1].numpy().astype(np.uint32), npv[2], npv[3], npv[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def _preserved_rng():
    """Maintenance (grids, evaluation) must not move the training RNG streams, or a run that
    evaluates at step N would continue differently from one that does not."""
    state = _rng_state()
    try:
        yield
    finally:
        _set_rng_state(state)


def _unwrap(m: nn.Module) -> nn.Module:
    while isinstance(m, (nn.parallel.DistributedDataParallel, _CompiledUnlessDoubleBackward)):
        m = m.module
    return m


class _CompiledUnlessDoubleBackward(nn.Module):
    """torch.compile'd forward, except in the gradient-penalty pass: compiled graphs have no
    double backward, so that pass runs the same module eagerly."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module
        self.compiled = torch.compile(module)

    def forward(self, *args, **kwargs):
        if attention.math_sdpa_active():
            return self.module(*args, **kwargs)
        return self.compiled(*args, **kwargs)

    def no_sync(self):
        return self.module.no_sync()


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def total_steps(cfg: Any) -> int:
    """Steps needed to show cfg.train.kimg thousand real images to D."""
    return max(1, math.ceil(cfg.train.kimg * 1000 / (cfg.optim.n_critic * cfg.optim.batch_d)))


MIN_G_UPDATES = 500  # below this a GAN rarely shows anything (the digits preset needs ~1,000 for legible digits)


def short_run_warning(cfg: Any) -> str | None:
    """A warning when the run is configured for fewer than MIN_G_UPDATES generator updates."""
    n = total_steps(cfg)
    if n >= MIN_G_UPDATES:
        return None
    per = cfg.optim.n_critic * cfg.optim.batch_d
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


def _diff_dynamics(old: dict, new: Any) -> list[dict]:
    a, b = hashing.dynamics_fields(old), hashing.dynamics_fields(new)
    return [{"field": k, "old": a.get(k), "new": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


# -------------------------------------------------------------------------------- the loop


class _Trainer:
    def __init__(self, cfg, reporter, *, out_dir, device, on_step, dataset=None):
        from transgan_lab.trainers.augment import DiffAugment
        from transgan_lab.trainers.data import DataStream, build_dataset
        from transgan_lab.trainers.models import build_discriminator, build_generator

        self.cfg, self.reporter, self.on_step = cfg, reporter, on_step
        self.rank, self.world = _dist()
        self.device = torch.device(device) if device is not None else _default_device()
        self.out = Path(out_dir)
        self.ckpt_root = self.out / "checkpoints"
        if self.rank == 0:
            (self.out / "grids").mkdir(parents=True, exist_ok=True)
        opt = cfg.optim
        for name, batch in (("optim.batch_d", opt.batch_d), ("optim.batch_g", opt.batch_g)):
            if batch % (self.world * opt.accum):
                raise ValueError(f"{name}={batch} is not divisible by world_size x accum = {self.world} x {opt.accum}")
        self.d_local, self.g_local = opt.batch_d // self.world, opt.batch_g // self.world
        self.d_micro, self.g_micro = self.d_local // opt.accum, self.g_local // opt.accum
        self.last_step = total_steps(cfg)
        self.amp_dtype = autocast_dtype(cfg.train.precision, self.device)
        self.share_fakes = bool(getattr(opt, "share_fakes", False))
        if self.share_fakes and (opt.accum > 1 or opt.batch_g < opt.batch_d):
            raise ValueError("optim.share_fakes needs optim.accum=1 and optim.batch_g >= optim.batch_d")

        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        _seed_globals(cfg.seed)  # identical model init on every rank
        self.dataset = dataset if dataset is not None else build_dataset(cfg.data)
        self.stream = DataStream(
            self.dataset,
            global_batch=opt.batch_d,
            seed=cfg.seed,
            rank=self.rank,
            world_size=self.world,
            hflip=cfg.data.hflip,
            device=self.device,
        )
        G = build_generator(cfg).to(self.device)
        D = build_discriminator(cfg).to(self.device)
        if getattr(cfg.train, "activation_checkpointing", False):
            from transgan_lab.trainers.models import set_activation_checkpointing

            set_activation_checkpointing(G)
            set_activation_checkpointing(D)
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        fused = self.device.type == "cuda"
        adam = (
            dict(betas=(opt.beta1, opt.beta2), fused=fused)
            if fused
            else dict(betas=(opt.beta1, opt.beta2), foreach=True)
        )
        self.opt_G = torch.optim.Adam(G.parameters(), lr=opt.lr_g, **adam)
        self.opt_D = torch.optim.Adam(D.parameters(), lr=opt.lr_d, **adam)
        if self.world > 1:
            ddp = dict(broadcast_buffers=False, find_unused_parameters=False)
            if self.device.type == "cuda":
                ddp["device_ids"] = [self.device.index]
            G = nn.parallel.DistributedDataParallel(G, **ddp)
            D = nn.parallel.DistributedDataParallel(D, **ddp)
        # D scores G's samples in the G step with its parameters frozen: no DDP there, so no
        # gradient sync of D, and no reducer state left half-used.
        self.D_for_g = _unwrap(D)
        if cfg.train.compile:
            G, D = _CompiledUnlessDoubleBackward(G), _CompiledUnlessDoubleBackward(D)
            self.D_for_g = torch.compile(self.D_for_g)
        self.G, self.D = G, D
        self.aug = DiffAugment(cfg.augment)
        self.state = TrainState()
        self.resumed_from: str | None = None
        self.last_beta = float("nan")
        _seed_globals(cfg.seed * 7919 + 1 + self.rank)  # per-rank augmentation randomness
        self.grid_z = torch.randn(64, _unwrap(G).latent_dim, generator=_step_generator(cfg.seed, 0, 0, 15))

    # -- state ---------------------------------------------------------------------------
    def _state_dict(self) -> dict:
        rng = _rng_state()
        if self.world > 1:  # every rank's RNG, so a resume on the same world size is exact
            all_rng: list = [None] * self.world
            dist.all_gather_object(all_rng, rng)
            rng = all_rng
        else:
            rng = [rng]
        return {
            "G": _unwrap(self.G).state_dict(),
            "D": _unwrap(self.D).state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "rng": rng,
            "data": self.stream.state_dict(),
            "train_state": {k: v for k, v in asdict(self.state).items() if k != "config_changes"},
        }

    def _load_state(self, state: dict) -> None:
        _unwrap(self.G).load_state_dict(state["G"])
        _unwrap(self.D).load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.stream.load_state_dict(state["data"])
        for k, v in state["train_state"].items():
            setattr(self.state, k, v)
        rngs = state["rng"]
        if len(rngs) == self.world:
            _set_rng_state(rngs[self.rank])
        else:  # other world size: dynamics stay the same, augmentation draws differ
            _seed_globals(self.cfg.seed * 7919 + 1 + self.rank + 104_729 * self.state.step)

    def save(self) -> Path | None:
        """Checkpoint on rank 0 (all ranks take part in gathering RNG states)."""
        state = self._state_dict()
        if self.rank != 0:
            return None
        meta = {
            "nimg": self.state.nimg,
            "kimg": self.state.nimg / 1000,
            "config": hashing.as_dict(self.cfg),
            "config_hash": hashing.config_hash(self.cfg),
            "dynamics_hash": hashing.dynamics_hash(self.cfg),
            "world_size": self.world,
            "best_value": self.state.best_value,
        }
        path = ckpt.save_checkpoint(self.ckpt_root, step=self.state.step, state=state, meta=meta)
        keep = {Path(self.state.best_checkpoint).name} if self.state.best_checkpoint else set()
        ckpt.prune(self.ckpt_root, keep_last=self.cfg.train.keep_last + 1, keep=keep | {ckpt.checkpoint_name(0)})
        return path

    def resume(self, path, *, allow_config_change: bool) -> None:
        found, manifest = ckpt.latest_valid(path)
        changes = _diff_dynamics(manifest["config"], self.cfg)
        if changes and not allow_config_change:
            listed = ", ".join(f"{c['field']}: {c['old']!r} -> {c['new']!r}" for c in changes[:8])
            raise ckpt.CheckpointError(
                f"refusing to resume from {found}: the training-dynamics config changed ({listed}); "
                "resume with the original config, or pass --allow-config-change to accept (it is recorded)"
            )
        _, state = ckpt.load_checkpoint(found)
        self._load_state(state)
        self.state.config_changes = changes
        self.resumed_from = str(found)

    def rollback(self) -> bool:
        """Restore the newest good checkpoint on every rank; False when none can be loaded."""
        obj: list = [None]
        if self.rank == 0:
            try:
                found, _ = ckpt.latest_valid(self.ckpt_root)
                obj = [ckpt.load_checkpoint(found)[1]]
            except ckpt.CheckpointError:
                obj = [None]
        if self.world > 1:
            dist.broadcast_object_list(obj, src=0)
        if obj[0] is None:
            return False
        keep = (
            self.state.reseed,
            self.state.rollbacks,
            self.state.best_value,
            self.state.best_checkpoint,
            self.state.train_s,
        )
        self._load_state(obj[0])
        (
            self.state.reseed,
            self.state.rollbacks,
            self.state.best_value,
            self.state.best_checkpoint,
            self.state.train_s,
        ) = keep
        _seed_globals(self.cfg.seed * 7919 + 1 + self.rank + 1_000_003 * self.state.reseed)
        return True

    # -- one step ------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _global_draw(
        self, shape: tuple[int, ...], n_local: int, tag: int, k: int = 0, *, kind=torch.randn
    ) -> torch.Tensor:
        """Draw for the whole global batch from a (seed, step) generator; keep this rank's rows."""
        st = self.state
        gen = _step_generator(self.cfg.seed, st.reseed, st.step * 8 + k, tag)
        x = kind(*shape, generator=gen)
        return x[self.rank * n_local : (self.rank + 1) * n_local].to(self.device, non_blocking=True)

    def _latents(self, n_global: int, n_local: int, tag: int, k: int = 0) -> torch.Tensor:
        return self._global_draw((n_global, _unwrap(self.G).latent_dim), n_local, tag, k)

    def _locality(self) -> int | None:
        from transgan_lab.trainers.models import locality_width

        loc = self.cfg.model.g.locality
        if not loc.enabled:
            return None
        return locality_width(loc, int(self.stream.epoch))

    def _g_forward(self, z: torch.Tensor, real: torch.Tensor, width: int | None) -> tuple:
        """G's pass of the G update (with grad): (fake, sr, real); sr is None without MT-CT."""
        from transgan_lab.trainers import losses

        if self.cfg.model.mtct.enabled:
            # One batched pass for G(z) and the super-resolution task, so every G parameter is
            # used in the same DDP forward.
            lr = losses.downsample_for_mtct(real, side=_unwrap(self.G).bottom)
            fake, sr = self.G(z, locality_width=width, lr_images=lr)
            return fake, sr, real
        return self.G(z, locality_width=width), None, real

    def _set_lr(self) -> None:
        """optim.lr_decay: the step's learning rates from the G updates done (resume-safe)."""
        opt = self.cfg.optim
        scale = 1.0
        if getattr(opt, "lr_decay", "none") == "linear":
            scale = max(0.0, 1.0 - self.state.step / self.last_step)
        for group in self.opt_G.param_groups:
            group["lr"] = opt.lr_g * scale
        for group in self.opt_D.param_groups:
            group["lr"] = opt.lr_d * scale

    def step(self, acc: dict) -> None:
        from transgan_lab.trainers import losses

        cfg, opt = self.cfg, self.cfg.optim
        self._set_lr()
        G_mod, D_mod = _unwrap(self.G), _unwrap(self.D)
        width = self._locality()
        real_local = None
        reg_every = getattr(cfg.loss, "reg_every", 1)
        z_g = self._latents(opt.batch_g, self.g_local, tag=2)
        # optim.share_fakes: the G update's own samples (detached) are the fakes of the last D
        # update, which saves one generator pass per step (accum 1 and batch_g >= batch_d only).
        g_pass = None
        for k in range(opt.n_critic):
            # Lazy regularisation: the penalties run on every reg_every-th D update (counted over
            # the whole run, so the cadence survives resume), weighted x reg_every in d_loss.
            regularise = (self.state.step * opt.n_critic + k) % reg_every == 0
            real_local = self.stream.next_batch().to(self.device, non_blocking=True)
            alpha_local = self._global_draw((opt.batch_d,), self.d_local, tag=3, k=k, kind=torch.rand)
            shared = None
            if self.share_fakes and k == opt.n_critic - 1:
                with self._autocast():
                    g_pass = self._g_forward(z_g, real_local, width)
                shared = g_pass[0].detach()[: self.d_local]
            else:
                z_local = self._latents(opt.batch_d, self.d_local, tag=1, k=k)
            for a in range(opt.accum):
                rows = slice(a * self.d_micro, (a + 1) * self.d_micro)
                if shared is not None:
                    fake = shared
                else:
                    with torch.no_grad(), self._autocast():
                        fake = self.G(z_local[rows], locality_width=width)
                sync = self.world > 1 and a < opt.accum - 1
                with self.D.no_sync() if sync else contextlib.nullcontext():
                    with self._autocast():
                        loss, stats = losses.d_loss(
                            self.D,
                            real_local[rows],
                            fake.float(),
                            self.aug,
                            cfg.loss,
                            gp_alpha=alpha_local[rows],
                            regularise=regularise,
                        )
                    (loss / opt.accum).backward()
                for key, v in stats.items():
                    acc[key] = acc.get(key, 0.0) + v.detach().float() / (opt.accum * opt.n_critic)
            acc["grad_norm_d"] = acc.get("grad_norm_d", 0.0) + self._clip(self.D, opt.grad_clip) / opt.n_critic
            self.opt_D.step()
            self.opt_D.zero_grad(set_to_none=True)

        D_mod.requires_grad_(False)
        for a in range(opt.accum):
            rows = slice(a * self.g_micro, (a + 1) * self.g_micro)
            sync = self.world > 1 and a < opt.accum - 1
            with self.G.no_sync() if sync else contextlib.nullcontext():
                with self._autocast():
                    if g_pass is None:
                        real = real_local[a * self.d_micro : (a + 1) * self.d_micro]
                        fake, sr, real = self._g_forward(z_g[rows], real, width)
                    else:
                        fake, sr, real = g_pass
                    loss, stats = losses.g_loss(self.D_for_g, fake.float(), self.aug, cfg.loss)
                    if sr is not None:
                        l_sr = losses.mtct_mse(sr, real)
                        loss = loss + cfg.model.mtct.weight * l_sr
                        acc["loss_mtct"] = acc.get("loss_mtct", 0.0) + l_sr.detach() / opt.accum
                (loss / opt.accum).backward()
            for key, v in stats.items():
                acc[key] = acc.get(key, 0.0) + v.detach().float() / opt.accum
        D_mod.requires_grad_(True)
        acc["grad_norm_g"] = acc.get("grad_norm_g", 0.0) + self._clip(self.G, opt.grad_clip)
        self.opt_G.step()
        self.opt_G.zero_grad(set_to_none=True)

        self.state.step += 1
        self.state.nimg += opt.n_critic * opt.batch_d
        beta = ema_beta(
            nimg=self.state.nimg,
            img_per_update=opt.n_critic * opt.batch_d,
            ema_kimg=opt.ema_kimg,
            rampup=opt.ema_rampup,
            fixed_beta=opt.ema_beta,
        )
        update_ema(self.G_ema, G_mod, beta)
        self.last_beta = beta

    @staticmethod
    def _clip(model: nn.Module, max_norm: float) -> torch.Tensor:
        params = [p for p in model.parameters() if p.grad is not None]
        if max_norm > 0:
            return torch.nn.utils.clip_grad_norm_(params, max_norm).detach().float()
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])).float()

    # -- maintenance ---------------------------------------------------------------------
    def write_grid(self) -> str | None:
        if self.rank != 0:
            return None
        from transgan_lab.trainers.metrics.sampling import save_grid

        with torch.no_grad(), self._autocast(), _preserved_rng():
            imgs = self.G_ema(self.grid_z.to(self.device)).float()
        path = self.out / "grids" / f"grid-{self.state.nimg:010d}.png"
        save_grid(imgs.cpu(), path, nrow=8)
        return str(path)

    def evaluate(self) -> tuple[dict[str, float], dict]:
        from transgan_lab.trainers.metrics import evaluate

        with _preserved_rng():
            results = evaluate(self.G_ema, self.cfg, device=self.device, rank=self.rank, world_size=self.world)
        return {k: float(v["value"]) for k, v in results.items()}, {k: v["protocol"] for k, v in results.items()}


def train(
    cfg: Any,  # resolved experiment config (attributes as in platform/config/schema.py)
    reporter: Reporter | None = None,  # receives metrics, checkpoints and files at report points
    *,
    out_dir: str | os.PathLike,  # run folder: checkpoints/, grids/, metrics.jsonl, status.json
    resume: str | os.PathLike | None = None,  # run dir or checkpoint dir to continue from
    allow_config_change: bool = False,  # resume even if the training-dynamics config changed
    device: str | torch.device | None = None,  # default: this rank's CUDA device, else CPU
    on_step: Callable[[int, dict], None] | None = None,  # called after every step (fault injection, probes)
    progress: bool | None = None,  # one-line progress on stderr; default: when it is a terminal
    dataset: Any = None,  # images in [-1, 1] replacing cfg.data (benchmarks with synthetic data)
) -> dict:
    """Train until cfg.train.kimg; return the final status (also written to status.json)."""
    reporter = reporter or NullReporter()
    t_enter, started_at = time.perf_counter(), time.time()
    t = _Trainer(cfg, reporter, out_dir=out_dir, device=device, on_step=on_step, dataset=dataset)
    out, rank = t.out, t.rank
    if resume is not None:
        t.resume(resume, allow_config_change=allow_config_change)
    if rank == 0:
        (out / "config.json").write_text(json.dumps(hashing.as_dict(cfg), indent=1))
        if t.state.config_changes:
            (out / "config_changes.json").write_text(json.dumps(t.state.config_changes, indent=1))
    # The rollback target before the first regular checkpoint: a fresh run's step 0, or the resumed
    # state when it came from elsewhere (e.g. a Ray checkpoint downloaded to another folder).
    need = [resume is None or not ckpt.list_checkpoints(t.ckpt_root)]
    if t.world > 1:
        dist.broadcast_object_list(need, src=0)  # rank 0's folder decides; save() is collective
    if need[0]:
        t.save()
    show = (sys.stderr.isatty() if progress is None else progress) and rank == 0
    primary = cfg.eval.primary
    acc: dict[str, Any] = {}
    n_acc, t_train, t_maint, nimg_mark = 0, 0.0, 0.0, t.state.nimg
    status = "finished"
    latest_eval: dict[str, float] = {}

    while t.state.step < t.last_step:
        t0 = time.perf_counter()
        nimg_before = t.state.nimg
        t.step(acc)
        n_acc += 1
        if on_step is not None:
            on_step(t.state.step, {"G": _unwrap(t.G), "D": _unwrap(t.D), "G_ema": t.G_ema})
        step = t.state.step
        events = due_events(cfg, nimg_before, t.state.nimg, last=step == t.last_step)
        if not events:
            t_train += time.perf_counter() - t0
            continue
        # One host sync per report: all accumulated device values at once.
        keys = sorted(acc)
        values = torch.stack([torch.as_tensor(acc[k], dtype=torch.float32, device=t.device) for k in keys]) / n_acc
        if t.world > 1:
            dist.all_reduce(values)
            values /= t.world
        values = values.tolist()
        t_train += time.perf_counter() - t0
        t.state.train_s += t_train
        if not all(math.isfinite(v) for v in values):
            t.state.rollbacks += 1
            t.state.reseed += 1
            if t.state.rollbacks > cfg.train.nan_retries or not t.rollback():
                status = "diverged"
                break
            acc, n_acc, nimg_mark, t_train = {}, 0, t.state.nimg, 0.0
            print(
                f"[transgan-lab] non-finite loss or gradient at step {step}: rolled back to step "
                f"{t.state.step} with fresh randomness ({t.state.rollbacks}/{cfg.train.nan_retries})",
                file=sys.stderr,
            )
            continue

        t1 = time.perf_counter()
        metrics = dict(zip(keys, values))
        images = t.state.nimg - nimg_mark
        metrics.update(
            step=step,
            g_updates=step,
            nimg=t.state.nimg,
            kimg=t.state.nimg / 1000,
            epoch=float(t.stream.epoch),
            train_s=t.state.train_s,
            ema_beta=t.last_beta,
            lr_g=t.opt_G.param_groups[0]["lr"],
            lr_d=t.opt_D.param_groups[0]["lr"],
            img_per_s=images / max(t_train, 1e-9),
            sec_per_kimg=t_train / max(images / 1000, 1e-9),
            rollbacks=t.state.rollbacks,
        )
        files: dict[str, str] = {}
        if "eval" in events:
            latest_eval, protocols = t.evaluate()
            if rank == 0:
                ppath = out / "protocols.json"
                ppath.write_text(json.dumps(protocols, indent=1, sort_keys=True))
                files["protocols"] = str(ppath)
            value = latest_eval.get(primary)
            if value is not None and math.isfinite(value):
                better = t.state.best_value is None or (
                    value < t.state.best_value if lower_is_better(primary) else value > t.state.best_value
                )
                if better:
                    t.state.best_value = value
                    t.state.best_checkpoint = str(t.ckpt_root / ckpt.checkpoint_name(step))
        metrics.update(latest_eval)
        if "grid" in events:
            grid = t.write_grid()
            if grid:
                files["grid"] = grid
        ckpt_dir = None
        if "checkpoint" in events:
            saved = t.save()
            ckpt_dir = str(saved) if saved is not None else None
        metrics["peak_mem_mb"] = _peak_mem_mb(t.device)
        t_maint_step = time.perf_counter() - t1
        t_maint += t_maint_step
        metrics["maintenance_s"] = t_maint
        if rank == 0:
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
        reporter.report(metrics, checkpoint_dir=ckpt_dir if rank == 0 else None, files=files or None)
        if show:
            print(
                f"\r[{cfg.name}] {metrics['kimg']:.1f}/{cfg.train.kimg:g} kimg  {step}/{t.last_step} G updates  "
                f"loss_d {metrics.get('loss_d', float('nan')):.3f}  loss_g {metrics.get('loss_g', float('nan')):.3f}  "
                f"{metrics['img_per_s']:.0f} img/s",
                end="" if step < t.last_step else "\n",
                file=sys.stderr,
                flush=True,
            )
        acc, n_acc, nimg_mark, t_train = {}, 0, t.state.nimg, 0.0

    result = {
        "status": status,
        "step": t.state.step,
        "nimg": t.state.nimg,
        "kimg": t.state.nimg / 1000,
        "g_updates": t.state.step,
        "train_s": t.state.train_s,
        "rollbacks": t.state.rollbacks,
        "best_value": t.state.best_value,
        "best_checkpoint": t.state.best_checkpoint,
        "primary": primary,
        "metrics": latest_eval,
        "config_changes": t.state.config_changes,
        "resumed_from": t.resumed_from,
        "maintenance_s": t_maint,
        "wall_s": time.perf_counter() - t_enter,  # everything inside train(): setup, steps, evaluation, saving
        "started_at": started_at,  # wall clock (time.time) at entry; the end is started_at + wall_s
    }
    if status == "diverged":
        result["message"] = (
            f"training diverged: non-finite losses or gradients {t.state.rollbacks} times "
            f"(train.nan_retries={cfg.train.nan_retries}); lower the learning rates, raise loss.gp_weight "
            "or use train.precision=fp32"
        )
    if rank == 0:
        (out / "status.json").write_text(json.dumps(result, indent=1))
    return result
