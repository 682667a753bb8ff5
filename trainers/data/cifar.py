"""``cifar10``: the 50k train split from the "CIFAR-10 python version" pickle batches, read by a
restricted unpickler (a tampered file cannot run code)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transgan_lab.trainers.data.base import DatasetError, ImageDataset, resize_square, sentence, to_grey, to_uint8
from transgan_lab.trainers.data.download import archive_hint, download_archive

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


def _numpy_reconstruct() -> Callable:
    return np.ndarray.__reduce__(np.zeros(1, np.uint8))[0]


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists/strings/numbers and numpy arrays, nothing else.

    A pickle names the callables it wants run; a tampered file could name ``os.system``. This one
    resolves only the names numpy array reconstruction needs (``_reconstruct``, ``ndarray``,
    ``dtype``, and ``_frombuffer`` for files re-saved with protocol 5) and refuses the rest.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),  # how the original (Python 2) files name it
        ("numpy._core.multiarray", "_reconstruct"),  # numpy >= 2
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only numpy arrays, lists and strings"
            )
        if name == "_reconstruct":
            return _numpy_reconstruct()
        if name == "_frombuffer":
            return np.ndarray.__reduce_ex__(np.zeros(1, np.uint8), 5)[0]
        return getattr(np, name)


def load_cifar_batch(path: Path) -> np.ndarray:
    """One CIFAR-10 python batch -> uint8 (N, 3, 32, 32). Raises DatasetError if damaged."""
    try:
        with open(path, "rb") as f:
            # Python 2 wrote these files; latin1 maps its byte strings 1:1 (numpy expects this).
            obj = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        if "refusing" in str(e):
            raise DatasetError(
                f"{path} is not a plain CIFAR-10 batch ({e}); it may have been tampered with: delete it and "
                "download the 'CIFAR-10 python version' archive again"
            ) from None
        raise DatasetError(
            f"{path} is truncated or corrupt ({e}); delete it and extract cifar-10-python.tar.gz again"
        ) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise DatasetError(
            f"{path} is truncated or corrupt ({type(e).__name__}: {e}); "
            "delete it and extract cifar-10-python.tar.gz again"
        ) from None
    data = obj.get("data", obj.get(b"data")) if isinstance(obj, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DatasetError(
            f"{path}: expected a dict whose 'data' is a uint8 array of shape (N, 3072) (the CIFAR-10 python "
            f"format), got {type(data).__name__} {shape}; re-extract cifar-10-python.tar.gz"
        )
    return data.reshape(-1, 3, 32, 32)  # rows are 1024 R, then 1024 G, then 1024 B values, row-major


class Cifar10(ImageDataset):
    """CIFAR-10 train split (50k), in memory as one uint8 tensor.

    RGB data: ``channels=1`` converts to grey (BT.601 luma, like PIL's ``convert("L")``).
    A resolution other than 32 resizes once at load (bilinear, antialiased when shrinking).
    """

    name = "cifar10"

    def __init__(self, *, root: Path, resolution: int, channels: int, download: bool):
        base = root / _CIFAR_DIR if not (root / _CIFAR_TRAIN[0]).exists() else root
        how = (
            f"download the 'CIFAR-10 python version' archive (cifar-10-python.tar.gz) from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html and extract it into {root}, or set data.download=true "
            "where the network allows"
        )
        how = archive_hint(root, "cifar10") or how
        missing = [n for n in _CIFAR_TRAIN if not (base / n).is_file()]
        if missing and download:
            download_archive("cifar10", root, how)
            base = root / _CIFAR_DIR
            missing = [n for n in _CIFAR_TRAIN if not (base / n).is_file()]
        if missing:
            raise DatasetError(
                f"cifar10: expected {', '.join(str(base / n) for n in _CIFAR_TRAIN)} (the 'CIFAR-10 python "
                f"version' archive, extracted); missing: {', '.join(missing)}. {sentence(how)}"
            )
        x = torch.from_numpy(np.concatenate([load_cifar_batch(base / n) for n in _CIFAR_TRAIN]))  # (N, 3, 32, 32)
        if channels == 1 or resolution != 32:
            chunks = []
            for c in x.split(4096):
                c = c.float()
                c = to_grey(c) if channels == 1 else c
                chunks.append(to_uint8(resize_square(c, resolution)))
            x = torch.cat(chunks)
        self.images = x.contiguous()
        self.info = {
            "dataset": "cifar10",
            "split": "train",
            "count": len(x),
            "source_size": 32,
            "colour": "rgb" if channels == 3 else "grey-bt601-from-rgb",
            "resize": "none" if resolution == 32 else "bilinear-antialias",
            "resolution": resolution,
            "channels": channels,
        }

    def __len__(self) -> int:
        return self.images.shape[0]
