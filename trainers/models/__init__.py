"""Model builders: TransGAN generator/discriminators and the SNGAN-style conv baselines.

``build_generator(cfg)`` / ``build_discriminator(cfg)`` read ``cfg.model`` and ``cfg.data`` from any
attribute tree (the pydantic config or a SimpleNamespace).
"""

from __future__ import annotations

from torch import nn

from .attention import math_sdpa, sdpa
from .blocks import set_activation_checkpointing
from .locality import locality_width


def build_generator(cfg) -> nn.Module:
    """G(z, *, locality_width=None) -> (N, C, H, W) images, no output activation (TransGAN)."""
    arch = cfg.model.g.arch
    if arch == "transgan":
        from .generator import build_transgan_generator

        return build_transgan_generator(cfg)
    if arch == "conv":
        from .conv import build_conv_generator

        return build_conv_generator(cfg)
    raise ValueError(f"unknown model.g.arch {arch!r}; use 'transgan' or 'conv'")


def build_discriminator(cfg) -> nn.Module:
    """D(x) -> (N,) raw scores; augmentation is applied by the losses, not inside D."""
    arch = cfg.model.d.arch
    if arch in ("vit", "multiscale"):
        from .discriminator import build_transgan_discriminator

        return build_transgan_discriminator(cfg)
    if arch == "conv":
        from .conv import build_conv_discriminator

        return build_conv_discriminator(cfg)
    raise ValueError(f"unknown model.d.arch {arch!r}; use 'vit', 'multiscale' or 'conv'")


__all__ = [
    "build_generator",
    "build_discriminator",
    "locality_width",
    "math_sdpa",
    "sdpa",
    "set_activation_checkpointing",
]
