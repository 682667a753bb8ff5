"""One training step on a ``Trainer``'s state: ``optim.n_critic`` D updates (gradient penalty / R1 on
every ``loss.reg_every``-th), then one G update and the G_ema update.

Latents and gradient-penalty mixing weights are drawn for the whole global batch from a generator
seeded by (seed, step) and sliced per rank; gradients are averaged over ranks (DDP) and micro-batches,
so the worker count never changes the dynamics. Losses accumulate on the device (no host sync inside
a step).

A step is three parts: ``draw_inputs`` (host side: data batches, latents, mixing weights, the
locality width and the lazy-regularisation cadence), ``updates`` (device side: every update, no host
sync), then ``advance`` (the counters) and the EMA update. ``train_step`` runs them eagerly;
``trainers.graphed`` replays ``updates`` and the EMA update from static buffers in a CUDA graph.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from transgan_lab.trainers import losses
from transgan_lab.trainers.device import unwrap
from transgan_lab.trainers.ema import ema_beta, update_ema
from transgan_lab.trainers.rng import step_generator
from transgan_lab.trainers.schedule import images_per_step, lr_scale

if TYPE_CHECKING:
    from transgan_lab.trainers.trainer import Trainer


def global_draw(
    t: Trainer, shape: tuple[int, ...], n_local: int, tag: int, k: int = 0, *, kind=torch.randn
) -> torch.Tensor:
    """Draw for the whole global batch from a (seed, step) generator; keep this rank's rows."""
    st = t.state
    gen = step_generator(t.cfg.seed, st.reseed, st.step * 8 + k, tag)
    x = kind(*shape, generator=gen)
    return x[t.rank * n_local : (t.rank + 1) * n_local].to(t.device, non_blocking=True)


def latents(t: Trainer, n_global: int, n_local: int, tag: int, k: int = 0) -> torch.Tensor:
    return global_draw(t, (n_global, unwrap(t.G).latent_dim), n_local, tag, k)


def locality(t: Trainer) -> int | None:
    """The generator's locality mask width at this epoch (None = no mask)."""
    from transgan_lab.trainers.models import locality_width

    loc = t.cfg.model.g.locality
    if not loc.enabled:
        return None
    return locality_width(loc, int(t.stream.epoch))


def g_forward(t: Trainer, z: torch.Tensor, real: torch.Tensor, width: int | None) -> tuple:
    """G's pass of the G update (with grad): (fake, sr, real); sr is None without MT-CT."""
    if t.cfg.model.mtct.enabled:
        # One batched pass for G(z) and the super-resolution task, so every G parameter is
        # used in the same DDP forward.
        lr = losses.downsample_for_mtct(real, side=unwrap(t.G).bottom)
        fake, sr = t.G(z, locality_width=width, lr_images=lr)
        return fake, sr, real
    return t.G(z, locality_width=width), None, real


def real_clusters(t: Trainer, real: torch.Tensor) -> torch.Tensor | None:
    """model.d.pixel_clusters: the real images' nearest centroids (None for an unconditioned D)."""
    proj = getattr(unwrap(t.D), "clusters", None)
    return None if proj is None else proj.assign(real)


def fake_clusters(t: Trainer, z: torch.Tensor) -> torch.Tensor | None:
    """model.d.pixel_clusters: the fakes' clusters are their latent cells (None for an unconditioned D)."""
    return None if getattr(unwrap(t.D), "clusters", None) is None else unwrap(t.G).cells.cell(z)


def set_lr(t: Trainer) -> None:
    """optim.lr_decay: the step's learning rates from the G updates done (resume-safe)."""
    opt = t.cfg.optim
    scale = lr_scale(opt, step=t.state.step, last_step=t.last_step)
    for group in t.opt_G.param_groups:
        group["lr"] = opt.lr_g * scale
    for group in t.opt_D.param_groups:
        group["lr"] = opt.lr_d * scale


def clip(model: nn.Module, max_norm: float) -> torch.Tensor:
    """Clip the gradients to max_norm (0 = no clipping); their total norm before clipping."""
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm).detach().float()
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])).float()


def train_step(t: Trainer, acc: dict) -> None:
    """One step (n_critic D updates + one G update); loss statistics accumulate in ``acc``."""
    set_lr(t)
    inputs = draw_inputs(t)
    stats: dict = {}
    updates(t, inputs, stats)
    add_stats(acc, stats)
    beta = beta_after(t)
    advance(t)
    update_ema(t.G_ema, unwrap(t.G), beta)  # looked up here at call time: bench/train_step.py patches it
    t.last_beta = beta


@dataclass
class StepInputs:
    """What one step consumes from outside the models, all drawn before its first update."""

    width: int | None  # the generator's locality mask width (None = no mask)
    regularise: tuple[bool, ...]  # per D update: run the penalties (lazy regularisation)
    reals: list[torch.Tensor]  # per D update: this rank's real batch (d_local, C, H, W)
    z_d: list[torch.Tensor | None]  # per D update: latents of D's fakes (d_local, latent); None: shared fakes
    alphas: list[torch.Tensor]  # per D update: gradient-penalty mixing weights (d_local,)
    z_g: torch.Tensor  # the G update's latents (g_local, latent)


def draw_inputs(t: Trainer) -> StepInputs:
    """This step's data batches, latents and mixing weights, on the device. Each draw comes from its
    own (seed, step, phase) generator and the data stream from its position, so drawing them all
    first gives the same values as drawing each where it is used."""
    opt = t.cfg.optim
    reg_every = getattr(t.cfg.loss, "reg_every", 1)
    n = opt.n_critic
    shared = t.share_fakes
    inputs = StepInputs(
        width=locality(t),
        # Lazy regularisation: the penalties run on every reg_every-th D update (counted over the
        # whole run, so the cadence survives resume), weighted x reg_every in d_loss.
        regularise=tuple((t.state.step * n + k) % reg_every == 0 for k in range(n)),
        reals=[t.stream.next_batch().to(t.device, non_blocking=True) for _ in range(n)],
        z_d=[None if shared and k == n - 1 else latents(t, opt.batch_d, t.d_local, tag=1, k=k) for k in range(n)],
        alphas=[global_draw(t, (opt.batch_d,), t.d_local, tag=3, k=k, kind=torch.rand) for k in range(n)],
        z_g=latents(t, opt.batch_g, t.g_local, tag=2),
    )
    match_cells_to_clusters(t, inputs)
    return inputs


def match_cells_to_clusters(t: Trainer, inputs: StepInputs) -> None:
    """model.d.pixel_clusters: each D update's fakes take the clusters of its real batch as their
    cells (z given the cell, see LatentCells.with_cell), so both sides of D's loss hold every cluster
    equally often. Otherwise a per-cluster constant in D's score (which the gradient penalty does not
    see) gains D loss wherever a cluster's share of the data differs from its cell's 1/K, and grows
    without bound: loss_d reached -180 by 384 kimg on the digits. With shared fakes the G update's
    first rows are that D update's fakes, so they take the cells."""
    proj = getattr(unwrap(t.D), "clusters", None)
    if proj is None:
        return
    cells = unwrap(t.G).cells
    for k, real in enumerate(inputs.reals):
        y = proj.assign(real)
        if inputs.z_d[k] is not None:
            inputs.z_d[k] = cells.with_cell(inputs.z_d[k], y)
        else:
            z = inputs.z_g
            inputs.z_g = torch.cat([cells.with_cell(z[: len(y)], y), z[len(y) :]])


def updates(t: Trainer, inputs: StepInputs, stats: dict) -> None:
    """The step's work on the device: n_critic D updates, then the G update; loss statistics are
    summed into ``stats`` (0-d device tensors). No host sync and no Python branch on a device value,
    so this is also the body that ``trainers.graphed`` captures in a CUDA graph."""
    cfg, opt = t.cfg, t.cfg.optim
    D_mod = unwrap(t.D)
    width = inputs.width
    real_local = None
    # optim.share_fakes: the G update's own samples (detached) are the fakes of the last D
    # update, which saves one generator pass per step (accum 1 and batch_g >= batch_d only).
    g_pass = None
    for k in range(opt.n_critic):
        real_local, z_local = inputs.reals[k], inputs.z_d[k]
        shared = None
        if z_local is None:
            with t.autocast():
                g_pass = g_forward(t, inputs.z_g, real_local, width)
            shared = g_pass[0].detach()[: t.d_local]
        for a in range(opt.accum):
            rows = slice(a * t.d_micro, (a + 1) * t.d_micro)
            z_fake = inputs.z_g[: t.d_local] if shared is not None else z_local[rows]
            if shared is not None:
                fake = shared
            else:
                with torch.no_grad(), t.autocast():
                    fake = t.G(z_fake, locality_width=width)
            y_real, y_fake = real_clusters(t, real_local[rows]), fake_clusters(t, z_fake)
            sync = t.world > 1 and a < opt.accum - 1
            with t.D.no_sync() if sync else contextlib.nullcontext():
                with t.autocast():
                    loss, d_stats = losses.d_loss(
                        t.D,
                        real_local[rows],
                        fake.float(),
                        t.aug,
                        cfg.loss,
                        gp_alpha=inputs.alphas[k][rows],
                        regularise=inputs.regularise[k],
                        y_real=y_real,
                        y_fake=y_fake,
                    )
                (loss / opt.accum).backward()
            for key, v in d_stats.items():
                stats[key] = stats.get(key, 0.0) + v.detach().float() / (opt.accum * opt.n_critic)
        stats["grad_norm_d"] = stats.get("grad_norm_d", 0.0) + clip(t.D, opt.grad_clip) / opt.n_critic
        t.opt_D.step()
        t.opt_D.zero_grad(set_to_none=True)

    D_mod.requires_grad_(False)
    for a in range(opt.accum):
        rows = slice(a * t.g_micro, (a + 1) * t.g_micro)
        sync = t.world > 1 and a < opt.accum - 1
        with t.G.no_sync() if sync else contextlib.nullcontext():
            with t.autocast():
                if g_pass is None:
                    real = real_local[a * t.d_micro : (a + 1) * t.d_micro]
                    fake, sr, real = g_forward(t, inputs.z_g[rows], real, width)
                else:
                    fake, sr, real = g_pass
                y_g = fake_clusters(t, inputs.z_g[rows])
                loss, g_stats = losses.g_loss(t.D_for_g, fake.float(), t.aug, cfg.loss, y=y_g)
                if sr is not None:
                    l_sr = losses.mtct_mse(sr, real)
                    loss = loss + cfg.model.mtct.weight * l_sr
                    stats["loss_mtct"] = stats.get("loss_mtct", 0.0) + l_sr.detach() / opt.accum
            (loss / opt.accum).backward()
        for key, v in g_stats.items():
            stats[key] = stats.get(key, 0.0) + v.detach().float() / opt.accum
    D_mod.requires_grad_(True)
    stats["grad_norm_g"] = stats.get("grad_norm_g", 0.0) + clip(t.G, opt.grad_clip)
    t.opt_G.step()
    t.opt_G.zero_grad(set_to_none=True)


def add_stats(acc: dict, stats: dict) -> None:
    """acc += one step's loss statistics (device tensors; no host sync)."""
    for key, v in stats.items():
        acc[key] = acc.get(key, 0.0) + v


def beta_after(t: Trainer) -> float:
    """The EMA's beta for the images seen once this step is done."""
    opt, per = t.cfg.optim, images_per_step(t.cfg)
    return ema_beta(
        nimg=t.state.nimg + per,
        img_per_update=per,
        ema_kimg=opt.ema_kimg,
        rampup=opt.ema_rampup,
        fixed_beta=opt.ema_beta,
    )


def advance(t: Trainer) -> None:
    """Count the finished step."""
    t.state.step += 1
    t.state.nimg += images_per_step(t.cfg)
