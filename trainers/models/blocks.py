"""Transformer building blocks shared by the TransGAN generator and discriminators."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import Attention, CrossAttention, math_sdpa, math_sdpa_active


class PixelNorm(nn.Module):
    """Divide each token by the RMS over its channels (no parameters)."""

    def __init__(self, *, eps: float = 1e-8):  # eps: added to the mean square
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)


def make_norm(kind: str, dim: int) -> nn.Module:
    if kind == "ln":
        return nn.LayerNorm(dim)
    if kind == "pn":
        return PixelNorm()
    raise ValueError(f"unknown norm {kind!r}; use 'ln' (LayerNorm) or 'pn' (PixelNorm)")


def make_act(kind: str) -> nn.Module:
    if kind == "gelu":
        return nn.GELU()  # exact erf GELU
    if kind == "leakyrelu":
        return nn.LeakyReLU(0.2)
    raise ValueError(f"unknown activation {kind!r}; use 'gelu' or 'leakyrelu'")


class MLP(nn.Module):
    def __init__(self, *, dim: int, ratio: float, act: str):  # dim: width; ratio: hidden/dim; act: gelu|leakyrelu
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = make_act(act)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def window_partition(x: torch.Tensor, *, side: int, window: int) -> torch.Tensor:
    """(B, side*side, C) raster tokens -> (B * (side/window)^2, window*window, C) non-overlapping windows."""
    B, _, C = x.shape
    n = side // window
    x = x.reshape(B, n, window, n, window, C).permute(0, 1, 3, 2, 4, 5)  # (B, n, n, w, w, C)
    return x.reshape(B * n * n, window * window, C)


def window_reverse(x: torch.Tensor, *, side: int, window: int) -> torch.Tensor:
    """Inverse of window_partition: (B * n^2, window^2, C) -> (B, side*side, C)."""
    n = side // window
    C = x.shape[-1]
    B = x.shape[0] // (n * n)
    x = x.reshape(B, n, n, window, window, C).permute(0, 1, 3, 2, 4, 5)  # (B, n, w, n, w, C)
    return x.reshape(B, side * side, C)


def _math_sdpa_recompute():
    """Checkpoint contexts (forward, recompute) for the gradient-penalty pass: the recomputation in
    backward runs outside the forward's math-SDPA context, so it is re-entered there (same kernel,
    same saved tensors)."""
    return contextlib.nullcontext(), math_sdpa()


class Block(nn.Module):
    """Pre-norm transformer block: [x += CrossAttn(x, latents)]; x += Attn(Norm(x)); x += MLP(Norm(x)).

    Attention is global over the whole grid, or (window set) inside non-overlapping window x window
    tiles of the side x side grid ("grid attention"). The relative bias covers the attended grid.
    """

    def __init__(
        self,
        *,
        dim: int,  # token width
        heads: int,  # attention heads
        mlp_ratio: float,  # MLP hidden width / dim
        norm: str,  # "ln" | "pn"
        act: str,  # "gelu" | "leakyrelu"
        side: int | None = None,  # token grid side (needed for windows and the relative bias)
        window: int | None = None,  # window side for grid attention; None = global attention
        rel_pos_bias: bool = False,  # learned relative-position bias over the attended grid
        prefix_tokens: int = 0,  # tokens before the grid ([cls]) with zero relative bias
        noise_injection: bool = False,  # per-token noise before qkv
        context_dim: int | None = None,  # latent-token width for self-modulation; None = off
    ):
        super().__init__()
        if window is not None and (side is None or side % window):
            raise ValueError(f"window attention needs the grid side {side} to be a multiple of the window {window}")
        self.side = side
        self.window = window
        attn_side = window if window is not None else side
        if rel_pos_bias and attn_side is None:
            raise ValueError("relative position bias needs the token grid side")
        self.cross = CrossAttention(dim=dim, context_dim=context_dim, heads=heads) if context_dim else None
        self.norm1 = make_norm(norm, dim)
        self.attn = Attention(
            dim=dim,
            heads=heads,
            rel_pos_window=attn_side if rel_pos_bias else None,
            prefix_tokens=prefix_tokens,
            noise_injection=noise_injection,
        )
        self.norm2 = make_norm(norm, dim)
        self.mlp = MLP(dim=dim, ratio=mlp_ratio, act=act)
        # Activation checkpointing: keep only the block's input for backward and recompute the
        # rest (set by set_activation_checkpointing). Non-reentrant, so the gradient penalty's
        # double backward works through it, and the RNG is replayed (noise injection matches).
        self.recompute = False

    def forward(
        self,
        x: torch.Tensor,  # (B, N, C)
        mask: torch.Tensor | None = None,  # additive mask over the attended tokens (window-local with windows)
        context: torch.Tensor | None = None,  # (B, T, Cc) latent tokens for self-modulation
    ) -> torch.Tensor:
        if self.recompute and torch.is_grad_enabled():
            if math_sdpa_active():  # only eager passes get here (torch.compile takes no custom context_fn)
                return checkpoint(self._forward, x, mask, context, use_reentrant=False, context_fn=_math_sdpa_recompute)
            return checkpoint(self._forward, x, mask, context, use_reentrant=False)
        return self._forward(x, mask, context)

    def _forward(self, x: torch.Tensor, mask: torch.Tensor | None, context: torch.Tensor | None) -> torch.Tensor:
        if self.cross is not None:
            x = x + self.cross(x, context)
        h = self.norm1(x)
        if self.window is not None:
            h = window_partition(h, side=self.side, window=self.window)
            h = self.attn(h, mask)
            h = window_reverse(h, side=self.side, window=self.window)
        else:
            h = self.attn(h, mask)
        x = x + h
        return x + self.mlp(self.norm2(x))


def set_activation_checkpointing(model: nn.Module, enabled: bool = True) -> int:
    """Recompute every transformer block's activations in backward instead of storing them
    (memory for about one extra forward). Returns the number of blocks switched."""
    n = 0
    for m in model.modules():
        if isinstance(m, Block):
            m.recompute = enabled
            n += 1
    return n
