"""Exponential moving average of the generator, kept on the training device.

The half-life is given in images (``ema_kimg``), as in StyleGAN2-ADA: after the EMA has seen
``ema_kimg * 1000`` real images its old value weighs one half. With a ramp-up the half-life grows
with training (``<= rampup * images seen``) so that early EMA weights are not stuck at the
random init. A fixed beta per G step is also allowed (v1 and the 256x256 recipes).

Images counted per EMA update are the real images shown to D between two G steps
(``n_critic * batch_d``); the official v2 code counts only one D batch, so its 500 kimg half-life
is 4x longer in images than the name says. Ours means what it says.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(
    *,
    nimg: int,  # real images shown to D so far (after this step)
    img_per_update: int,  # real images shown to D between two EMA updates
    ema_kimg: float,  # half-life in thousands of images
    rampup: float | None,  # half-life <= rampup * nimg; None disables the ramp
    fixed_beta: float | None,  # when set, used as is
) -> float:
    if fixed_beta is not None:
        return float(fixed_beta)
    ema_nimg = ema_kimg * 1000.0
    if rampup is not None:
        ema_nimg = min(ema_nimg, nimg * rampup)
    return 0.5 ** (img_per_update / max(ema_nimg, 1e-8))


def update_ema(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G, parameters in one fused foreach op; buffers copied."""
    _lerp(G_ema, G, 1.0 - beta)


def update_ema_tensor(G_ema: nn.Module, G: nn.Module, weight: torch.Tensor) -> None:
    """As ``update_ema`` with ``weight`` = 1 - beta a 0-d tensor on the device: no host value goes into
    the kernels, so a captured CUDA graph replays it with each step's beta (``trainers.graphed``).
    One weight per tensor (the list overload): a lone 0-d tensor would be read back as a host scalar."""
    _lerp(G_ema, G, [weight] * sum(1 for _ in G_ema.parameters()))


@torch.no_grad()
def _lerp(G_ema: nn.Module, G: nn.Module, weight) -> None:
    torch._foreach_lerp_(list(G_ema.parameters()), [p.detach() for p in G.parameters()], weight)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)
