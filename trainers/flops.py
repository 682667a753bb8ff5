"""Parameters and forward FLOPs per image of a preset's G and D.

FLOPs count matrix multiplies and convolutions (1 multiply-add = 2 FLOPs) with
``torch.utils.flop_counter.FlopCounterMode``, INCLUDING the attention QK^T and AV products (the
official counter registered them as 0). The models are built and run on the ``meta`` device (no
memory, no compute), under the math SDPA backend, so attention decomposes into counted matmuls on
any machine. Norms, softmax, activations and additions are not counted.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .models import build_discriminator, build_generator
from .models.attention import math_sdpa


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def forward_flops(module: nn.Module, *inputs: torch.Tensor, **kwargs) -> int:
    """FLOPs of one forward call (matmuls and convs; attention products included)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), math_sdpa(), counter:
        module(*inputs, **kwargs)
    return int(counter.get_total_flops())


def param_counts(cfg) -> dict[str, int]:
    """{"g_params", "d_params"}: the models built on the ``meta`` device (no memory; ~1 s for XL)."""
    with torch.device("meta"):
        return {"g_params": count_params(build_generator(cfg)), "d_params": count_params(build_discriminator(cfg))}


def model_summary(cfg) -> dict[str, int]:
    """{"g_params", "d_params", "g_flops", "d_flops"}: parameters and forward FLOPs per image."""
    with torch.device("meta"):
        G = build_generator(cfg)
        D = build_discriminator(cfg)
        z = torch.zeros(1, G.latent_dim)
        x = torch.zeros(1, cfg.data.channels, cfg.data.resolution, cfg.data.resolution)
        # model.d.pixel_clusters: D also takes the image's cluster
        y = () if getattr(D, "clusters", None) is None else (torch.zeros(1, dtype=torch.long),)
    return {
        "g_params": count_params(G),
        "d_params": count_params(D),
        "g_flops": forward_flops(G, z),
        "d_flops": forward_flops(D, x, *y),
    }


def format_summary(summary: dict[str, int]) -> str:
    """Two readable lines: G and D parameters (M) and forward GFLOPs per image."""
    lines = []
    for who in ("g", "d"):
        lines.append(
            f"{who.upper()}: {summary[f'{who}_params'] / 1e6:8.2f} M params  "
            f"{summary[f'{who}_flops'] / 1e9:9.3f} GFLOPs/image (forward, attention matmuls included)"
        )
    return "\n".join(lines)
