"""The one attention path of every TransGAN model.

Every attention module here calls the module-level :func:`sdpa` (looked up through this module's
globals at call time, so a benchmark may swap in a naive implementation for its baseline). The
call is ``torch.nn.functional.scaled_dot_product_attention`` with one additive float bias that
merges the learned relative-position bias and the locality mask (``-inf`` where masked).

The gradient penalty needs a double backward through attention; only the math backend supports
that, so :func:`math_sdpa` forces it for that pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + attn_bias) v; q/k/v (B, heads, N, d), attn_bias broadcastable to (B, heads, N, M)."""
    if attn_bias is not None and attn_bias.dtype != q.dtype:
        attn_bias = attn_bias.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias)


class math_sdpa:
    """Force the math SDPA backend (twice differentiable) for passes that need a double backward.

    ``with math_sdpa(): ...``. One instance may be entered again, even while entered (activation
    checkpointing re-enters it for each recomputation in backward).

    By default torch's math backend upcasts bf16/fp16 inputs to fp32 (plain fp32 GEMMs, not even
    TF32): under bf16 autocast that made the gradient-penalty pass 38% of the whole step on an
    H200 (bench/results/gpu_profile_nvidia-h200_fp32-math-gp.json). Inside this context the math
    backend keeps the autocast dtype, like every other GEMM of the step; fp32 inputs are unaffected."""

    def __init__(self) -> None:
        self._entered: list = []

    def __enter__(self) -> None:
        cm = sdpa_kernel(SDPBackend.MATH)
        cm.__enter__()
        b = torch.backends.cuda
        self._entered.append((cm, b.fp16_bf16_reduction_math_sdp_allowed()))
        b.allow_fp16_bf16_reduction_math_sdp(True)

    def __exit__(self, *exc) -> None:
        cm, low_precision_allowed = self._entered.pop()
        torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(low_precision_allowed)
        cm.__exit__(*exc)


def math_sdpa_active() -> bool:
    """True inside :func:`math_sdpa` (the gradient-penalty pass)."""
    b = torch.backends.cuda
    return b.math_sdp_enabled() and not (b.flash_sdp_enabled() or b.mem_efficient_sdp_enabled())


# ------------------------------------------------------------------------------ locality masks


def locality_mask(*, side: int, width: int, kind: str, device=None) -> torch.Tensor:
    """Additive (side^2, side^2) float32 mask: 0 where token i may attend to token j, -inf elsewhere.

    side: token grid side (tokens are in raster order); width: half-width w of the neighbourhood;
    kind: "band1d" = |i - j| <= w on the raster index (the official v1 code), "box2d" = both row and
    column offsets <= w (the paper's figure).
    """
    if width < 0:
        raise ValueError(f"locality width must be >= 0, got {width}")
    idx = torch.arange(side * side, device=device)
    if kind == "band1d":
        allowed = (idx[:, None] - idx[None, :]).abs() <= width
    elif kind == "box2d":
        row, col = idx // side, idx % side
        allowed = ((row[:, None] - row[None, :]).abs() <= width) & ((col[:, None] - col[None, :]).abs() <= width)
    else:
        raise ValueError(f"unknown locality kind {kind!r}; use 'band1d' or 'box2d'")
    mask = torch.zeros(side * side, side * side, device=device)
    return mask.masked_fill(~allowed, float("-inf"))


# ------------------------------------------------------------------------ relative position bias


class RelativePositionBias(nn.Module):
    """Learned Swin-style bias: a ((2w-1)^2, heads) table indexed by the 2-D offset of two tokens."""

    def __init__(
        self,
        *,
        window: int,  # side w of the token grid the bias covers
        heads: int,  # one bias per head
        prefix_tokens: int = 0,  # tokens before the grid (e.g. [cls]) that get zero bias
    ):
        super().__init__()
        self.window = window
        self.heads = heads
        self.prefix_tokens = prefix_tokens
        self.table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N), offsets shifted to >= 0
        index = rel[0] * (2 * window - 1) + rel[1]  # (N, N)
        self.register_buffer("index", index, persistent=False)

    def forward(self) -> torch.Tensor:
        n = self.window * self.window
        bias = self.table[self.index.reshape(-1)].reshape(n, n, self.heads).permute(2, 0, 1)  # (heads, N, N)
        if self.prefix_tokens:
            p = self.prefix_tokens
            bias = F.pad(bias, (p, 0, p, 0))
        return bias


# ------------------------------------------------------------------------------------- modules


class Attention(nn.Module):
    """Multi-head self-attention: qkv Linear without bias, output projection with bias.

    Optional learned relative-position bias (over a w x w grid), optional noise injection (one
    N(0,1) scalar per token times a learned strength initialised to 0, added before qkv) and an
    optional additive mask passed to forward.
    """

    def __init__(
        self,
        *,
        dim: int,  # token width
        heads: int,  # attention heads; dim must be divisible by it
        rel_pos_window: int | None = None,  # grid side of the relative bias; None = no bias
        prefix_tokens: int = 0,  # tokens before the grid ([cls]) that get zero relative bias
        noise_injection: bool = False,  # StyleGAN-like per-token noise before qkv
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by heads={heads}; pick heads dividing {dim}")
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos = (
            RelativePositionBias(window=rel_pos_window, heads=heads, prefix_tokens=prefix_tokens)
            if rel_pos_window
            else None
        )
        self.noise_strength = nn.Parameter(torch.zeros(())) if noise_injection else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, N, C); mask: additive float, broadcastable to (B, heads, N, N), -inf where masked
        B, N, C = x.shape
        if self.noise_strength is not None:
            x = x + torch.randn(B, N, 1, device=x.device, dtype=x.dtype) * self.noise_strength
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, h, N, d)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = None
        if self.rel_pos is not None:
            bias = self.rel_pos().unsqueeze(0)  # (1, h, N, N)
        if mask is not None:
            bias = mask if bias is None else bias + mask
        out = sdpa(q, k, v, bias)  # (B, h, N, d)
        out = out.transpose(1, 2).reshape(B, N, C)
        return self.proj(out)


class CrossAttention(nn.Module):
    """Queries from image tokens, keys/values from latent tokens (self-modulation)."""

    def __init__(
        self,
        *,
        dim: int,  # image token width (queries, output)
        context_dim: int,  # latent token width (keys, values)
        heads: int,  # attention heads
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"cross-attention width {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(context_dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        # x: (B, N, C); context: (B, T, Cc)
        B, N, C = x.shape
        T = context.shape[1]
        q = self.q(x).reshape(B, N, self.heads, self.head_dim).transpose(1, 2)  # (B, h, N, d)
        kv = self.kv(context).reshape(B, T, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (2, B, h, T, d)
        out = sdpa(q, kv[0], kv[1], None)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_bias: torch.Tensor | None) -> torch.Tensor:
    """Reference softmax(q k^T / sqrt(d) + bias) v with materialised logits (tests, benchmark baselines)."""
    logits = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if attn_bias is not None:
        logits = logits + attn_bias.to(logits.dtype)
    return logits.softmax(dim=-1) @ v
