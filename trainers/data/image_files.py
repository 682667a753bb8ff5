"""Datasets of image files, decoded on access: open, centre-crop to a square, resize with PIL
(CelebA and image folders)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from transgan_lab.trainers.data.base import DatasetError, ImageDataset, to_unit


def load_image(path: Path, *, resolution: int, channels: int, kind: str, how: str) -> torch.Tensor:
    """Open, centre crop to the largest square, resize with PIL bilinear (antialiased when shrinking).

    channels=1 decodes to grey with PIL's ``convert("L")`` (BT.601 luma); 3 converts any mode
    (grey, palette, RGBA: alpha dropped) to RGB.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")  # forces a full decode: truncation shows here
            w, h = im.size
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            im = im.crop((left, top, left + s, top + s))
            if s != resolution:
                im = im.resize((resolution, resolution), Image.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise DatasetError(
            f"{kind}: cannot read {path} ({type(e).__name__}: {e}); the file is truncated or not an image. {how}"
        ) from None
    t = torch.from_numpy(a.copy())
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
    return to_unit(t)


class FileImages(ImageDataset):
    """A sorted list of image files decoded on access (``DataStream`` prefetches in a thread).

    ``workers`` > 1 (``data.loader_workers``, set by ``build_dataset``) decodes a batch's files on
    that many threads; they gain as far as PIL releases the GIL while decoding and resizing
    (bench/data_decode.py measures it). Each image depends only on its file, so the batch is the
    same for any number of workers.
    """

    def __init__(self, *, files: list[Path], resolution: int, channels: int, kind: str, how: str):
        self.files, self.resolution, self.channels, self.kind, self.how = files, resolution, channels, kind, how
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.files)

    def _decode(self, i: int) -> torch.Tensor:
        return load_image(
            self.files[i], resolution=self.resolution, channels=self.channels, kind=self.kind, how=self.how
        )

    def get_batch(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(indices, dtype=torch.long).tolist()
        if self.workers > 1 and len(idx) > 1:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"{self.kind}-decode")
            images = list(self._pool.map(self._decode, idx))  # in order; the first failure is raised here
        else:
            images = [self._decode(i) for i in idx]
        out = torch.empty(len(idx), self.channels, self.resolution, self.resolution)
        for j, im in enumerate(images):
            out[j] = im
        return out
