"""GAN losses (computed in fp32), the gradient and R1 penalties and the MT-CT reconstruction loss.

Stats are dicts of detached 0-dim tensors: no ``.item()`` here, so the engine syncs with the
device only when it logs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .models.attention import math_sdpa

KINDS = ("wgan-gp-eps", "wgan-gp", "hinge", "nsgan")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"loss.kind={kind!r} is unknown; choose one of {', '.join(KINDS)}")


def _d(D: Callable, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """D's scores; y: the images' clusters for a cluster-conditioned D (model.d.pixel_clusters), else None."""
    return D(x) if y is None else D(x, y)


def gradient_penalty(
    D: Callable,  # discriminator: images -> (N,) scores
    real: torch.Tensor,  # (N, C, H, W) real images
    fake: torch.Tensor,  # (N, C, H, W) generated images (detached here)
    aug: Callable,  # augmentation applied to the interpolates before D
    phi: float,  # target gradient norm
    alpha: torch.Tensor | None = None,  # (N,) mixing weights; default U(0,1) from the global RNG
    y: torch.Tensor | None = None,  # (N,) clusters of the interpolates (the real images'), conditioned D only
) -> torch.Tensor:
    """mean((||d D(aug(x_hat)) / d x_hat||_2 - phi)^2), x_hat = a*real + (1-a)*fake, a ~ U(0,1) per sample."""
    real = real.detach()
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    alpha = alpha.to(device=real.device, dtype=real.dtype).view(-1, 1, 1, 1)
    x_hat = (alpha * real + (1 - alpha) * fake.detach().to(real.dtype)).requires_grad_(True)
    with math_sdpa():
        scores = _d(D, aug(x_hat), y).float()
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norm = grad.float().flatten(1).norm(2, dim=1)
    return ((norm - phi) ** 2).mean()


def r1_penalty(
    D: Callable,  # discriminator: images -> (N,) scores
    real: torch.Tensor,  # (N, C, H, W) real images
    aug: Callable,  # augmentation applied before D (the gradient is taken w.r.t. the un-augmented image)
    y: torch.Tensor | None = None,  # (N,) clusters of the real images, conditioned D only
) -> torch.Tensor:
    """mean ||d D(aug(x)) / d x||_2^2 over real images x (Mescheder et al. 2018; StyleGAN2's R1)."""
    x = real.detach().requires_grad_(True)
    with math_sdpa():
        scores = _d(D, aug(x), y).float()
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad.float().flatten(1).pow(2).sum(dim=1).mean()


def d_loss(
    D: Callable,  # discriminator
    real: torch.Tensor,  # (N, C, H, W) real images
    fake: torch.Tensor,  # (N, C, H, W) generated images (detached here)
    aug: Callable,  # augmentation (same for real, fake and penalty inputs)
    loss_cfg,  # cfg.loss: kind, gp_weight, phi, drift, r1_gamma, reg_every
    *,
    gp_alpha: torch.Tensor | None = None,  # (N,) GP mixing weights (the engine draws them per global batch)
    regularise: bool = True,  # compute the penalties in this update (lazy regularisation: every reg_every-th)
    y_real: torch.Tensor | None = None,  # (N,) clusters of the real images (cluster-conditioned D only)
    y_fake: torch.Tensor | None = None,  # (N,) clusters (latent cells) of the fakes
) -> tuple[torch.Tensor, dict]:
    kind = loss_cfg.kind
    _check_kind(kind)
    fake = fake.detach()
    # One D pass over real and fake together: per-sample the same computation (D has no
    # batch-coupled layers), with half the calls and GEMMs twice as tall (faster on CPUs and GPUs).
    real_a, fake_a = aug(real), aug(fake)
    y = None if y_real is None else torch.cat([y_real, y_fake])
    d_real, d_fake = _d(D, torch.cat([real_a, fake_a]), y).float().split([len(real_a), len(fake_a)])
    zero = d_real.new_zeros(())
    if kind in ("wgan-gp-eps", "wgan-gp"):
        loss = -d_real.mean() + d_fake.mean()
        if kind == "wgan-gp-eps" and loss_cfg.drift > 0:
            loss = loss + loss_cfg.drift * d_real.mean() ** 2
    elif kind == "hinge":
        loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    else:  # nsgan: -log sigmoid(D(real)) - log(1 - sigmoid(D(fake)))
        loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    # Penalties. With lazy regularisation (reg_every k > 1) they run on every k-th update with
    # weight x k, so their expected gradient is unchanged (StyleGAN2); the logged values are the
    # same unbiased estimate (x k when computed, 0 otherwise), so their mean over updates is the penalty.
    lazy = int(getattr(loss_cfg, "reg_every", 1))
    gp = r1 = zero
    if regularise and kind in ("wgan-gp-eps", "wgan-gp") and loss_cfg.gp_weight > 0:
        gp = gradient_penalty(D, real, fake, aug, loss_cfg.phi, alpha=gp_alpha, y=y_real) * lazy
        loss = loss + loss_cfg.gp_weight / loss_cfg.phi**2 * gp
    r1_gamma = float(getattr(loss_cfg, "r1_gamma", 0.0))
    if regularise and r1_gamma > 0:
        r1 = r1_penalty(D, real, aug, y=y_real) * lazy
        loss = loss + r1_gamma / 2 * r1
    stats = {
        "loss_d": loss.detach(),
        "loss_gp": gp.detach(),
        "d_real": d_real.detach().mean(),
        "d_fake": d_fake.detach().mean(),
    }
    if r1_gamma > 0:
        stats["loss_r1"] = r1.detach()
    return loss, stats


def g_loss(
    D: Callable,  # discriminator
    fake: torch.Tensor,  # (N, C, H, W) generated images (gradients flow into G)
    aug: Callable,  # augmentation
    loss_cfg,  # cfg.loss
    y: torch.Tensor | None = None,  # (N,) clusters (latent cells) of the fakes, cluster-conditioned D only
) -> tuple[torch.Tensor, dict]:
    kind = loss_cfg.kind
    _check_kind(kind)
    d_fake = _d(D, aug(fake), y).float()
    if kind == "nsgan":
        loss = F.softplus(-d_fake).mean()
    else:  # wgan-gp(-eps) and hinge: -mean D(G(z))
        loss = -d_fake.mean()
    return loss, {"loss_g": loss.detach(), "d_fake_g": d_fake.detach().mean()}


def downsample_for_mtct(real: torch.Tensor, *, side: int) -> torch.Tensor:
    """Area (box-filter, antialiased) resize of real images to side x side."""
    return F.interpolate(real, size=(side, side), mode="area")


def mtct_loss(
    G: Callable,  # generator with a super-resolution path (plain or DDP-wrapped)
    real: torch.Tensor,  # (N, C, H, W) real images
    *,
    locality_width=None,  # locality mask half-width for this epoch (None = no mask)
) -> torch.Tensor:
    """Unweighted MSE between G.super_resolve(downsample(real)) and real (the engine multiplies by lambda)."""
    inner = getattr(G, "module", G)
    if getattr(inner, "sr_embed", None) is None:
        raise ValueError("MT-CT needs a generator built with model.mtct.enabled=true")
    lr = downsample_for_mtct(real, side=inner.bottom)
    # Calling G itself (not .super_resolve) keeps a DDP wrapper's gradient hooks in the path.
    out = G(None, locality_width=locality_width, lr_images=lr)
    return mtct_mse(out, real)


def mtct_mse(sr_images: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Unweighted MT-CT MSE for the one-pass form
    ``fake, sr = G(z, lr_images=downsample_for_mtct(real, side=bottom))``."""
    return F.mse_loss(sr_images.float(), real.float())
