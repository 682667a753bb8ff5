"""What every dataset shares: ``ImageDataset`` (float CHW images in [-1, 1]), ``DatasetError``, and
the pixel helpers (uint8 <-> [-1, 1], BT.601 grey, the one antialiased resize)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


class DatasetError(ValueError):
    """Missing, truncated or inconsistent dataset files; the message says what and how to fix it."""


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

# ITU-R BT.601 luma, the weights of PIL's convert("L"): how RGB data becomes channels=1.
_LUMA = (0.299, 0.587, 0.114)


# ------------------------------------------------------------------------------------- helpers


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]; float tensors are already in [-1, 1]."""
    if x.dtype == torch.uint8:
        return x.float().div_(127.5).sub_(1.0)
    return x.float()


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float -> (N, 1, H, W) BT.601 luma."""
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """Float (N, C, H, W) -> (N, C, size, size), bilinear, antialiased when shrinking.

    ``antialias=True`` widens the bilinear kernel to the source footprint when downscaling (the
    same filter as PIL's and torchvision's ``Resize`` on images), so 96 -> 48 averages 4x4 areas
    instead of sampling every other pixel and aliasing.
    """
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp_(0, 255).to(torch.uint8)


def dataset_root(cfg: Any, default: str) -> Path:
    root = getattr(cfg, "root", None)
    return Path(root if root else default).expanduser()


def sentence(text: str) -> str:
    """First letter upper case, the rest untouched (str.capitalize would lower-case paths)."""
    return text[:1].upper() + text[1:]


# ------------------------------------------------------------------------------- base class


class ImageDataset(torch.utils.data.Dataset):
    """Images as float (C, H, W) tensors in [-1, 1]; ``get_batch`` loads many at once.

    ``images`` is set (a uint8 or float (N, C, H, W) tensor) when the whole dataset is in memory;
    ``DataStream`` then indexes it directly (on the training device), otherwise it calls
    ``get_batch`` from a background thread. ``info`` describes the data for metric protocols.
    ``workers`` (``data.loader_workers``) is how many threads a file-decoding dataset uses per batch.
    """

    name: str = ""
    images: torch.Tensor | None = None
    info: dict
    workers: int = 0

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def __len__(self) -> int:
        raise NotImplementedError

    def get_batch(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float in [-1, 1] for these dataset indices, in this order."""
        if self.images is not None:
            idx = torch.as_tensor(indices, dtype=torch.long)
            return to_unit(self.images[idx])
        return torch.stack([self[int(i)] for i in indices])

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.name}: index {i} out of range for {len(self)} images")
        return self.get_batch([i % len(self)])[0]
