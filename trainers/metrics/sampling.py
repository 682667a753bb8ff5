"""Latents, generation and PNG output for evaluation and for people.

Sample i's latent is a function of (seed, i) only: latents come in fixed-size chunks of
`LATENT_CHUNK` rows, and chunk c is drawn from a torch.Generator seeded from (seed, c). Any rank
can therefore draw any index range without drawing the rest, and neither world size nor batch
size changes which z a sample gets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

LATENT_CHUNK = 256  # rows per independently seeded latent chunk (part of the sampling protocol)
LATENT_PROTOCOL = f"z_i ~ N(0, I) from torch.Generator seeded by (seed, i // {LATENT_CHUNK}), row i % {LATENT_CHUNK}"


def _chunk_seed(seed: int, chunk: int) -> int:
    # SeedSequence mixes (seed, chunk) into a well-spread 63-bit generator seed.
    return int(
        np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(chunk)]).generate_state(2, np.uint64)[0] >> np.uint64(1)
    )


def latents_range(start: int, stop: int, latent_dim: int, seed: int) -> torch.Tensor:
    """Latents of samples start..stop-1 -> (stop - start, latent_dim) float32 on CPU."""
    if not 0 <= start <= stop:
        raise ValueError(f"latents_range: need 0 <= start <= stop, got {start}, {stop}")
    out = []
    for chunk in range(start // LATENT_CHUNK, math.ceil(stop / LATENT_CHUNK)):
        g = torch.Generator().manual_seed(_chunk_seed(seed, chunk))
        z = torch.randn(LATENT_CHUNK, latent_dim, generator=g)  # (LATENT_CHUNK, latent_dim)
        lo = max(start - chunk * LATENT_CHUNK, 0)
        hi = min(stop - chunk * LATENT_CHUNK, LATENT_CHUNK)
        out.append(z[lo:hi])
    return torch.cat(out) if out else torch.zeros(0, latent_dim)


def latents(n: int, latent_dim: int, seed: int) -> torch.Tensor:
    """Latents of samples 0..n-1 -> (n, latent_dim)."""
    return latents_range(0, n, latent_dim, seed)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 as TransGAN's test.py does: x*127.5 + 127.5, clamp [0, 255], truncate."""
    return images.float().mul(127.5).add(127.5).clamp(0.0, 255.0).to(torch.uint8)


QUANTISATION = "uint8 = trunc(clamp(x*127.5 + 127.5, 0, 255)) (TransGAN test.py)"


@torch.no_grad()
def generate_range(
    G: torch.nn.Module,  # generator: G(z) -> (N, C, H, W) in about [-1, 1]
    *,
    start: int,  # first sample index
    stop: int,  # one past the last sample index
    seed: int,  # latent seed
    batch: int,  # generator batch size
    device: str | torch.device = "cpu",  # where G runs
) -> torch.Tensor:
    """Float images of samples start..stop-1 on CPU, (stop - start, C, H, W), G in eval mode."""
    was_training = G.training
    G.eval()
    try:
        out = []
        for lo in range(start, stop, batch):
            z = latents_range(lo, min(lo + batch, stop), G.latent_dim, seed).to(device)
            out.append(G(z).float().cpu())
        if not out:
            raise ValueError(f"generate_range: empty range {start}..{stop}")
        return torch.cat(out)
    finally:
        G.train(was_training)


def generate(
    G: torch.nn.Module,  # generator with .latent_dim
    n: int,  # number of samples
    seed: int,  # latent seed
    batch: int = 250,  # generator batch size
    device: str | torch.device = "cpu",  # where G runs
    *,
    as_uint8: bool = True,  # quantise (see to_uint8) or return the raw floats
) -> torch.Tensor:
    """Samples 0..n-1 -> (n, C, H, W) uint8 (or float) on CPU."""
    images = generate_range(G, start=0, stop=n, seed=seed, batch=batch, device=device)
    return to_uint8(images) if as_uint8 else images


def _as_hwc_uint8(image: torch.Tensor) -> np.ndarray:
    if image.dtype != torch.uint8:
        image = to_uint8(image)
    arr = image.cpu().numpy().transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def save_png(images: torch.Tensor, path: str | os.PathLike) -> list[str]:
    """Write one image (C, H, W) to `path`, or a batch (N, C, H, W) to path-with-index files."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if images.dim() == 3:
        Image.fromarray(_as_hwc_uint8(images)).save(path)
        return [str(path)]
    paths = []
    for i, img in enumerate(images):
        p = path.with_name(f"{path.stem}-{i:05d}{path.suffix or '.png'}")
        Image.fromarray(_as_hwc_uint8(img)).save(p)
        paths.append(str(p))
    return paths


GRID_MIN_PX = 48  # grids show every sample at least this many pixels wide, so a person can read it


def make_grid(images: torch.Tensor, nrow: int, *, pad: int = 2, min_px: int = GRID_MIN_PX) -> torch.Tensor:
    """(N, C, H, W) -> one uint8 grid image (C', rows, cols), ``nrow`` samples per row, black padding.

    Samples smaller than ``min_px`` are enlarged by a whole factor with nearest-neighbour (every
    generated pixel stays a visible square: no smoothing that would flatter or blur the samples)."""
    from torchvision.utils import make_grid as tile

    x = images if images.dtype == torch.uint8 else to_uint8(images)
    scale = max(1, math.ceil(min_px / max(1, min(x.shape[-2:]))))
    if scale > 1:
        x = x.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)  # (N, C, H*s, W*s)
    return tile(x, nrow=max(1, min(nrow, x.shape[0])), padding=pad, pad_value=0)


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int = 8, *, min_px: int = GRID_MIN_PX) -> str:
    """Write images (N, C, H, W) as one grid PNG with ``nrow`` images per row, each >= ``min_px`` wide."""
    save_png(make_grid(images, nrow, min_px=min_px), path)
    return str(path)


@torch.no_grad()
def interpolate(
    G: torch.nn.Module,  # generator with .latent_dim
    k: int,  # number of points along each path, ends included
    seed: int,  # latent seed (paths run between consecutive latents of this seed)
    *,
    paths: int = 4,  # number of interpolation paths
    device: str | torch.device = "cpu",  # where G runs
) -> torch.Tensor:
    """Spherical interpolation between pairs of latents -> float images (paths * k, C, H, W)."""
    if k < 2:
        raise ValueError(f"interpolate: k={k}; give at least 2 points (the two ends)")
    z = latents(2 * paths, G.latent_dim, seed)  # (2*paths, latent_dim)
    z0, z1 = z[0::2], z[1::2]
    t = torch.linspace(0, 1, k)
    cos = (torch.nn.functional.normalize(z0, dim=1) * torch.nn.functional.normalize(z1, dim=1)).sum(1).clamp(-1, 1)
    omega = torch.arccos(cos)[:, None, None]  # (paths, 1, 1)
    so = torch.sin(omega)
    tt = t[None, :, None]  # (1, k, 1)
    slerp = (torch.sin((1 - tt) * omega) / so) * z0[:, None] + (torch.sin(tt * omega) / so) * z1[:, None]
    lerp = (1 - tt) * z0[:, None] + tt * z1[:, None]
    zz = torch.where(so.abs() < 1e-6, lerp, slerp).reshape(paths * k, -1)  # (paths*k, latent_dim)
    was_training = G.training
    G.eval()
    try:
        return G(zz.to(device)).float().cpu()
    finally:
        G.train(was_training)


def write_samples(
    G: torch.nn.Module,  # the EMA generator
    *,
    n: int,  # number of single-image PNGs
    seed: int,  # latent seed; the same seed gives the same images
    out_dir: str | os.PathLike,  # output folder (created)
    grid: bool = False,  # also write grid.png of the n samples
    interpolate_k: int = 0,  # >= 2: also write interpolation.png (4 paths x k points)
    batch: int = 250,  # generator batch size
    device: str | torch.device = "cpu",  # where G runs
) -> list[str]:
    """Write sample PNGs (sample-00000.png ...), optionally grid.png and interpolation.png; return paths."""
    if n < 1:
        raise ValueError(f"write_samples: n={n}; give at least 1 sample")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = generate(G, n, seed, batch, device)
    paths = save_png(images, out / "sample.png")
    if grid:
        paths.append(save_grid(images, out / "grid.png", nrow=max(1, int(math.ceil(math.sqrt(n))))))
    if interpolate_k:
        inter = interpolate(G, interpolate_k, seed, device=device)
        paths.append(save_grid(inter, out / "interpolation.png", nrow=interpolate_k))
    return paths


__all__: Sequence[str] = [
    "LATENT_CHUNK",
    "latents",
    "latents_range",
    "to_uint8",
    "generate",
    "generate_range",
    "save_png",
    "make_grid",
    "save_grid",
    "interpolate",
    "write_samples",
]
