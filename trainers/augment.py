"""DiffAugment-style differentiable augmentation, applied to real, fake and gradient-penalty inputs.

All random draws come from the global torch RNG on ``x.device`` (the engine seeds it, so a resume
replays the same draws). Every op is vectorised over the batch, and the batch gates of cutout and
erase are tensors (no host sync, no Python branch on a random value).
"""

from __future__ import annotations

import torch
from torch import nn

OPS = ("translation", "cutout", "color", "erase", "stl_erase")


def _rand(n: int, x: torch.Tensor) -> torch.Tensor:
    # drawn in float32 whatever x's dtype, so the draws (and the RNG stream) do not depend on precision
    return torch.rand(n, device=x.device).to(x.dtype)


def translation(x: torch.Tensor, *, ratio: float) -> torch.Tensor:
    """Shift each image by integers in [-round(ratio*H), round(ratio*H)] (rows and columns), zero fill."""
    B, C, H, W = x.shape
    sy, sx = int(ratio * H + 0.5), int(ratio * W + 0.5)
    if sy == 0 and sx == 0:
        return x
    ty = torch.randint(-sy, sy + 1, (B, 1, 1), device=x.device)
    tx = torch.randint(-sx, sx + 1, (B, 1, 1), device=x.device)
    xp = torch.nn.functional.pad(x, (sx, sx, sy, sy))  # (B, C, H + 2sy, W + 2sx), zeros outside
    rows = torch.arange(H, device=x.device).view(1, H, 1) - ty + sy  # (B, H, 1): source row in xp
    cols = torch.arange(W, device=x.device).view(1, 1, W) - tx + sx  # (B, 1, W)
    b = torch.arange(B, device=x.device).view(B, 1, 1)
    out = xp.permute(0, 2, 3, 1)[b, rows, cols]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def _box_mask(
    x: torch.Tensor, *, top: torch.Tensor, left: torch.Tensor, h: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """(B, 1, H, W) mask: 0 inside the per-sample box [top, top+h) x [left, left+w), 1 outside."""
    _, _, H, W = x.shape
    r = torch.arange(H, device=x.device).view(1, H, 1)
    c = torch.arange(W, device=x.device).view(1, 1, W)
    top, left, h, w = (t.view(-1, 1, 1) for t in (top, left, h, w))
    inside = (r >= top) & (r < top + h) & (c >= left) & (c < left + w)  # (B, H, W)
    return (~inside).unsqueeze(1).to(x.dtype)


def _gated(x: torch.Tensor, keep: torch.Tensor, gate_prob: float) -> torch.Tensor:
    """Apply the erase mask ``keep`` to the whole batch with probability gate_prob (one draw)."""
    on = (torch.rand((), device=x.device) < gate_prob).to(x.dtype)
    return x * (1 - on * (1 - keep))


def cutout(x: torch.Tensor, *, ratio: float, gate_prob: float) -> torch.Tensor:
    """Zero a square of side round(ratio*H) at a random centre per image; the whole batch is gated."""
    B, _, H, W = x.shape
    sh, sw = int(ratio * H + 0.5), int(ratio * W + 0.5)
    cy = torch.randint(0, H, (B,), device=x.device)
    cx = torch.randint(0, W, (B,), device=x.device)
    h = torch.full((B,), sh, device=x.device)
    w = torch.full((B,), sw, device=x.device)
    keep = _box_mask(x, top=cy - sh // 2, left=cx - sw // 2, h=h, w=w)
    return _gated(x, keep, gate_prob)


def color(x: torch.Tensor) -> torch.Tensor:
    """Brightness + U(-0.5, 0.5); saturation x U(0, 2) about the channel mean (RGB only); contrast x U(0.5, 1.5)."""
    B, C = x.shape[:2]
    x = x + (_rand(B, x) - 0.5).view(B, 1, 1, 1)
    if C > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_rand(B, x) * 2).view(B, 1, 1, 1) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(B, x) + 0.5).view(B, 1, 1, 1) + mean


def erase(x: torch.Tensor, *, lo: float, hi: float, gate_prob: float) -> torch.Tensor:
    """One rectangle size per call, sides U[lo, hi] * H (W), random position per image; batch gated."""
    B, _, H, W = x.shape
    frac = torch.rand(2, device=x.device) * (hi - lo) + lo
    h = (frac[0] * H).round().long().clamp(1, H).expand(B)
    w = (frac[1] * W).round().long().clamp(1, W).expand(B)
    top = (torch.rand(B, device=x.device) * (H - h + 1)).floor().long()
    left = (torch.rand(B, device=x.device) * (W - w + 1)).floor().long()
    keep = _box_mask(x, top=top, left=left, h=h, w=w)
    return _gated(x, keep, gate_prob)


def stl_erase(x: torch.Tensor, *, gate_prob: float) -> torch.Tensor:
    """As erase, with sides randint(20, H/2 + 20) px inclusive (20..44 at 48x48), clipped to the image."""
    B, _, H, W = x.shape
    h = torch.randint(20, H // 2 + 21, (1,), device=x.device).clamp(max=H).expand(B)
    w = torch.randint(20, W // 2 + 21, (1,), device=x.device).clamp(max=W).expand(B)
    top = (torch.rand(B, device=x.device) * (H - h + 1)).floor().long()
    left = (torch.rand(B, device=x.device) * (W - w + 1)).floor().long()
    keep = _box_mask(x, top=top, left=left, h=h, w=w)
    return _gated(x, keep, gate_prob)


class DiffAugment(nn.Module):
    """aug(x) -> x: the ops of ``aug_cfg.policy`` in order (translation, cutout, color, erase, stl_erase)."""

    def __init__(
        self, aug_cfg
    ):  # aug_cfg: cfg.augment (policy, translation_ratio, cutout_ratio, gate_prob, erase_min/max)
        super().__init__()
        policy = list(aug_cfg.policy)
        bad = [op for op in policy if op not in OPS]
        if bad:
            raise ValueError(f"augment.policy: unknown op(s) {bad}; choose from {list(OPS)}")
        self.policy = policy
        self.translation_ratio = float(aug_cfg.translation_ratio)
        self.cutout_ratio = float(aug_cfg.cutout_ratio)
        self.gate_prob = float(aug_cfg.gate_prob)
        self.erase_min = float(aug_cfg.erase_min)
        self.erase_max = float(aug_cfg.erase_max)
        if self.erase_min > self.erase_max:
            raise ValueError("augment.erase_min must be <= augment.erase_max")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"DiffAugment expects (N, C, H, W) images, got shape {tuple(x.shape)}")
        for op in self.policy:
            if op == "translation":
                x = translation(x, ratio=self.translation_ratio)
            elif op == "cutout":
                x = cutout(x, ratio=self.cutout_ratio, gate_prob=self.gate_prob)
            elif op == "color":
                x = color(x)
            elif op == "erase":
                x = erase(x, lo=self.erase_min, hi=self.erase_max, gate_prob=self.gate_prob)
            elif op == "stl_erase":
                x = stl_erase(x, gate_prob=self.gate_prob)
        return x

    def extra_repr(self) -> str:
        return f"policy={self.policy}"
