"""The engine's state on one rank: G, D, G_ema, both optimizers, the data stream and the counters,
built from the config; checkpoints (save, resume, NaN rollback) and maintenance (sample grids,
evaluation). One training step lives in ``trainers.step`` (replayed from CUDA graphs by
``trainers.graphed`` under ``train.cuda_graphs``); the loop that drives both in ``trainers.train``."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from transgan_lab.trainers import checkpoint as ckpt
from transgan_lab.trainers import hashing
from transgan_lab.trainers.device import (
    CompiledUnlessDoubleBackward,
    autocast_dtype,
    default_device,
    dist_rank_world,
    unwrap,
)
from transgan_lab.trainers.graphed import GraphedStep, unsupported, warn_eager
from transgan_lab.trainers.rng import preserved_rng, rng_state, seed_globals, set_rng_state, step_generator
from transgan_lab.trainers.schedule import steps_left, total_steps
from transgan_lab.trainers.step import train_step


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


def diff_dynamics(old: dict, new: Any) -> list[dict]:
    """The training-dynamics fields that differ between a stored config (dict) and ``new``. A field
    the stored config lacks (written before the field existed) counts as its schema default."""
    a, b = hashing.dynamics_fields(old), hashing.dynamics_fields(new)
    for k in b.keys() - a.keys():
        default = hashing.schema_default(new, k)
        if default is not hashing.NO_DEFAULT:
            a[k] = default
    return [{"field": k, "old": a.get(k), "new": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def resume_changes(found: Path, manifest: dict, cfg: Any, *, allow_config_change: bool) -> list[dict]:
    """The dynamics changes of resuming checkpoint ``found`` under ``cfg``; refused unless allowed."""
    changes = diff_dynamics(manifest.get("config") or {}, cfg)
    if changes and not allow_config_change:
        listed = ", ".join(f"{c['field']}: {c['old']!r} -> {c['new']!r}" for c in changes[:8])
        raise ckpt.CheckpointError(
            f"refusing to resume from {found}: the training-dynamics config changed ({listed}); "
            "resume with the original config, or pass --allow-config-change to accept (it is recorded)"
        )
    return changes


class Trainer:
    def __init__(self, cfg, *, out_dir, device, dataset=None):
        from transgan_lab.trainers.augment import DiffAugment
        from transgan_lab.trainers.data import DataStream, build_dataset
        from transgan_lab.trainers.models import build_discriminator, build_generator
        from transgan_lab.trainers.models.clusters import fit_clusters

        self.cfg = cfg
        self.rank, self.world = dist_rank_world()
        self.device = torch.device(device) if device is not None else default_device()
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
        seed_globals(cfg.seed)  # identical model init on every rank
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
        fit_clusters(D, self.dataset, seed=cfg.seed)  # model.d.pixel_clusters: k-means on the data, once
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
        self.D_for_g = unwrap(D)
        if cfg.train.compile:
            G, D = CompiledUnlessDoubleBackward(G), CompiledUnlessDoubleBackward(D)
            self.D_for_g = torch.compile(self.D_for_g)
        self.G, self.D = G, D
        self.aug = DiffAugment(cfg.augment)
        self.state = TrainState()
        self.resumed_from: str | None = None
        self.last_beta = float("nan")
        seed_globals(cfg.seed * 7919 + 1 + self.rank)  # per-rank augmentation randomness
        self.grid_z = torch.randn(64, unwrap(G).latent_dim, generator=step_generator(cfg.seed, 0, 0, 15))
        # train.cuda_graphs: the step replayed from CUDA graphs where it can be captured; elsewhere
        # the eager step, with one warning saying why (cuda_graphs_fallback keeps the reason).
        self.graphed: GraphedStep | None = None
        self.cuda_graphs_fallback: str | None = None
        if getattr(cfg.train, "cuda_graphs", False):
            self.cuda_graphs_fallback = unsupported(self)
            if self.cuda_graphs_fallback is None:
                self.graphed = GraphedStep(self)
            elif self.rank == 0:
                warn_eager(self.cuda_graphs_fallback)

    # -- one step ------------------------------------------------------------------------
    def autocast(self):
        """The step's autocast context (a no-op in fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self, acc: dict) -> None:
        """One training step (n_critic D updates + one G update); losses accumulate in ``acc``."""
        if self.graphed is not None and self.graphed.active:
            self.graphed(acc)
        else:
            train_step(self, acc)

    # -- state ---------------------------------------------------------------------------
    def _state_dict(self) -> dict:
        rng = rng_state()
        if self.world > 1:  # every rank's RNG, so a resume on the same world size is exact
            all_rng: list = [None] * self.world
            dist.all_gather_object(all_rng, rng)
            rng = all_rng
        else:
            rng = [rng]
        return {
            "G": unwrap(self.G).state_dict(),
            "D": unwrap(self.D).state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "rng": rng,
            "data": self.stream.state_dict(),
            "train_state": {k: v for k, v in asdict(self.state).items() if k != "config_changes"},
        }

    def _load_state(self, state: dict) -> None:
        unwrap(self.G).load_state_dict(state["G"])
        unwrap(self.D).load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.stream.load_state_dict(state["data"])
        for k, v in state["train_state"].items():
            setattr(self.state, k, v)
        rngs = state["rng"]
        if len(rngs) == self.world:
            set_rng_state(rngs[self.rank])
        else:  # other world size: dynamics stay the same, augmentation draws differ
            seed_globals(self.cfg.seed * 7919 + 1 + self.rank + 104_729 * self.state.step)
        if self.graphed is not None:  # the optimizers' state tensors were replaced: no graph may write the old ones
            self.graphed.invalidate()

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
        changes = resume_changes(found, manifest, self.cfg, allow_config_change=allow_config_change)
        _, state = ckpt.load_checkpoint(found)
        self._load_state(state)
        # The end is train.kimg of real images, not a step count: when the resumed config shows D
        # more or fewer images per step (n_critic, batch_d), count the steps left at the new rate.
        self.last_step = self.state.step + steps_left(self.cfg, self.state.nimg)
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
        seed_globals(self.cfg.seed * 7919 + 1 + self.rank + 1_000_003 * self.state.reseed)
        return True

    # -- maintenance ---------------------------------------------------------------------
    def write_grid(self) -> str | None:
        if self.rank != 0:
            return None
        from transgan_lab.trainers.metrics.sampling import save_grid

        with torch.no_grad(), self.autocast(), preserved_rng():
            imgs = self.G_ema(self.grid_z.to(self.device)).float()
        path = self.out / "grids" / f"grid-{self.state.nimg:010d}.png"
        save_grid(imgs.cpu(), path, nrow=8)
        return str(path)

    def evaluate(self) -> tuple[dict[str, float], dict]:
        from transgan_lab.trainers.metrics import evaluate

        with preserved_rng():
            results = evaluate(self.G_ema, self.cfg, device=self.device, rank=self.rank, world_size=self.world)
        return {k: float(v["value"]) for k, v in results.items()}, {k: v["protocol"] for k, v in results.items()}
