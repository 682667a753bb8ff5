"""``stl10``: train + unlabeled (105k) from the binary format, memory-mapped, resized to the
resolution (48 in the paper)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from transgan_lab.trainers.data.base import DatasetError, ImageDataset, resize_square, sentence, to_grey
from transgan_lab.trainers.data.download import archive_hint, download_archive

_STL_DIR = "stl10_binary"
_STL_FILES = ("train_X.bin", "unlabeled_X.bin")  # 5,000 + 100,000 images
_STL_BYTES = 3 * 96 * 96


class STL10(ImageDataset):
    """STL-10 train + unlabeled (105k 96x96 RGB), memory-mapped, resized on access (48 in the paper).

    Each image in the binary files is three 96x96 planes stored column-major; rows are read from
    the memory map per batch, so the 2.7 GB unlabeled file is never loaded at once.
    """

    name = "stl10"

    def __init__(self, *, root: Path, resolution: int, channels: int, download: bool):
        base = root / _STL_DIR if not (root / _STL_FILES[0]).exists() else root
        how = (
            f"download stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/ and extract it into {root}, "
            "or set data.download=true where the network allows"
        )
        how = archive_hint(root, "stl10") or how
        missing = [n for n in _STL_FILES if not (base / n).is_file()]
        if missing and download:
            download_archive("stl10", root, how)
            base = root / _STL_DIR
            missing = [n for n in _STL_FILES if not (base / n).is_file()]
        if missing:
            raise DatasetError(
                f"stl10: expected {' and '.join(str(base / n) for n in _STL_FILES)} (the binary version, "
                f"uint8 N x 3 x 96 x 96); missing: {', '.join(missing)}. {sentence(how)}"
            )
        self.maps: list[np.memmap] = []
        for n in _STL_FILES:
            size = (base / n).stat().st_size
            if size == 0 or size % _STL_BYTES:
                raise DatasetError(
                    f"stl10: {base / n} has {size} bytes, not a whole number of 96x96x3 images ({_STL_BYTES} bytes "
                    f"each): the file is truncated; delete it and extract stl10_binary.tar.gz again"
                )
            self.maps.append(np.memmap(base / n, dtype=np.uint8, mode="r", shape=(size // _STL_BYTES, _STL_BYTES)))
        self.offsets = np.cumsum([0] + [len(m) for m in self.maps])
        self.resolution, self.channels = resolution, channels
        self.info = {
            "dataset": "stl10",
            "split": "train+unlabeled",
            "count": int(self.offsets[-1]),
            "colour": "rgb" if channels == 3 else "grey-bt601-from-rgb",
            "source_size": 96,
            "resize": "bilinear-antialias",
            "resolution": resolution,
            "channels": channels,
        }

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def get_batch(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        idx = np.asarray(torch.as_tensor(indices, dtype=torch.long).numpy())
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"stl10: index out of range for {len(self)} images")
        rows = np.empty((len(idx), _STL_BYTES), dtype=np.uint8)
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        for f, m in enumerate(self.maps):
            sel = np.nonzero(which == f)[0]
            if sel.size:
                local = idx[sel] - self.offsets[f]
                order = np.argsort(local, kind="stable")  # read the memory map in file order
                rows[sel[order]] = m[local[order]]
        # (N, 3*96*96) -> (N, 3, 96, 96) as stored (column-major: [c, x, y]) -> (N, 3, y, x)
        x = torch.from_numpy(rows).view(-1, 3, 96, 96).transpose(2, 3).float()
        if self.channels == 1:
            x = to_grey(x)
        x = resize_square(x, self.resolution)
        return x.div_(127.5).sub_(1.0).clamp_(-1.0, 1.0).contiguous()
