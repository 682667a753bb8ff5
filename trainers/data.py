"""Datasets and the resumable, world-size-invariant data stream.

Every dataset yields float images in [-1, 1], CHW, without labels, at ``cfg.resolution`` with
``cfg.channels`` channels. They live behind one registry, ``DATASETS``; ``build_dataset(cfg.data)``
picks one. ``cfg`` is any object with the ``DataConfig`` attributes (``dataset, root, resolution,
channels, download, upscale``); this module never imports the config schema.

- ``digits``: scikit-learn's 1,797 real 8x8 handwritten digits (shipped inside scikit-learn, the
  embedded default), upscaled to the resolution (see ``upscale_digits``).
- ``cifar10``: the 50k train split from the "CIFAR-10 python version" pickle batches, read by a
  restricted unpickler (a tampered file cannot run code).
- ``stl10``: train + unlabeled (105k) from the binary format, memory-mapped, resized to the
  resolution (48 in the paper).
- ``celeba``: the aligned-and-cropped JPEGs, centre crop then resize (see ``CelebA``).
- ``folder``: any folder of png/jpg/jpeg/webp/bmp images, searched recursively.

Missing or damaged files raise ``DatasetError`` naming every expected path and how to get it.

``DataStream`` turns a dataset into an infinite stream of global batches whose order depends only
on (seed, position), never on the number of workers; see its docstring.
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DATASETS",
    "DataStream",
    "DatasetError",
    "ImageDataset",
    "build_dataset",
    "upscale_digits",
    "digits_images",
    "IMAGE_EXTENSIONS",
]


class DatasetError(ValueError):
    """Missing, truncated or inconsistent dataset files; the message says what and how to fix it."""


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

# ITU-R BT.601 luma, the weights of PIL's convert("L"): how RGB data becomes channels=1.
_LUMA = (0.299, 0.587, 0.114)


# ------------------------------------------------------------------------------------- helpers


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]; float tensors are already in [-1, 1]."""
    if x.dtype == torch.uint8:
        return x.float().div_(127.5).sub_(1.0)
    return x.float()


def _grey(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float -> (N, 1, H, W) BT.601 luma."""
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Float (N, C, H, W) -> (N, C, size, size), bilinear, antialiased when shrinking.

    ``antialias=True`` widens the bilinear kernel to the source footprint when downscaling (the
    same filter as PIL's and torchvision's ``Resize`` on images), so 96 -> 48 averages 4x4 areas
    instead of sampling every other pixel and aliasing.
    """
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp_(0, 255).to(torch.uint8)


def _derive_seed(*parts: Any) -> int:
    """A 63-bit seed from the parts, identical in every process and on every platform."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _root(cfg: Any, default: str) -> Path:
    root = getattr(cfg, "root", None)
    return Path(root if root else default).expanduser()


# Where data.download=true fetches from: dataset -> (url, archive file name, md5 of the archive).
DOWNLOADS: dict[str, tuple[str, str, str]] = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a"),
    "stl10": ("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "stl10_binary.tar.gz",
              "91f7769df0f17e558f3565bffb0c7dfb"),
}


def _download(kind: str, root: Path, how: str) -> None:
    """Fetch, md5-check and extract ``DOWNLOADS[kind]`` into root with torchvision's helper;
    a DatasetError (not a traceback) when the network or the archive fails."""
    url, filename, md5 = DOWNLOADS[kind]
    try:
        from torchvision.datasets.utils import download_and_extract_archive
    except ImportError as e:  # pragma: no cover - torchvision is pinned
        raise DatasetError(f"{kind}: data.download=true needs torchvision ({e}); {how}") from None
    try:
        root.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(url, download_root=str(root), filename=filename, md5=md5)
    except (OSError, RuntimeError, tarfile.TarError) as e:
        why = (
            f"the archive failed its md5 check (expected {md5}); delete {root / filename} and try again"
            if isinstance(e, RuntimeError) else "the network may be unavailable"
        )
        raise DatasetError(f"{kind}: downloading {url} into {root} failed ({type(e).__name__}: {e}); {why}. {_sentence(how)}") from None


def _sentence(text: str) -> str:
    """First letter upper case, the rest untouched (str.capitalize would lower-case paths)."""
    return text[:1].upper() + text[1:]


def _archive_hint(root: Path, kind: str) -> str | None:
    """If the archive was downloaded but not extracted, say how to extract it."""
    archive = root / DOWNLOADS[kind][1]
    if archive.is_file():
        return (f"found the archive {archive} but not its contents: extract it with `tar -xzf {archive} -C {root}`, "
                "or set data.download=true (checks its md5, then extracts it)")
    return None


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
            return _to_unit(self.images[idx])
        return torch.stack([self[int(i)] for i in indices])

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.name}: index {i} out of range for {len(self)} images")
        return self.get_batch([i % len(self)])[0]


# ------------------------------------------------------------------------------------ digits


def upscale_digits(x: torch.Tensor, *, resolution: int, upscale: str = "bilinear") -> torch.Tensor:
    """Digits in [0, 1], (N, 1, 8, 8) -> (N, 1, resolution, resolution) in [0, 1].

    The filter is part of the data: on the digits metric, nearest instead of bilinear upscaling of
    the *same* real digits moves the score by ~87 (reference/digits-calibration.md), so real images,
    reference statistics and anything compared with them must come through this one function.

    - ``align_corners=False``: half-pixel centres, so each 8x8 pixel covers an exact
      (resolution/8)^2 block and the image is not shifted (the convention of PIL, OpenCV and
      ``tf.image.resize``); the resolution must be a multiple of 8 for that.
    - ``antialias=False`` on purpose: antialiasing only changes a filter when *shrinking*; every
      digits path enlarges 8 -> resolution, where bilinear gives the same result either way (max
      difference 1e-7) but bicubic does not: torch's antialiased bicubic switches to PIL's kernel
      (a = -0.5) from the standard a = -0.75 (values differ by up to 0.08). We keep the plain,
      widely reproduced kernels and say so in the protocol.
    - bicubic overshoots near edges, so the result is clamped to [0, 1].
    - ``nearest`` uses ``nearest-exact`` (pixel centres; identical to ``nearest`` for the
      integer factors used here).
    """
    if upscale not in ("bilinear", "bicubic", "nearest"):
        raise DatasetError(f"data.upscale={upscale!r}: choose bilinear, bicubic or nearest")
    if resolution == x.shape[-1]:
        return x.clone()
    if upscale == "nearest":
        y = F.interpolate(x, size=(resolution, resolution), mode="nearest-exact")
    else:
        y = F.interpolate(x, size=(resolution, resolution), mode=upscale, align_corners=False, antialias=False)
    return y.clamp_(0.0, 1.0)


def digits_images(*, resolution: int, channels: int = 1, upscale: str = "bilinear") -> torch.Tensor:
    """All 1,797 scikit-learn digits as float (1797, channels, resolution, resolution) in [-1, 1]."""
    if resolution % 8:
        raise DatasetError(
            f"data.resolution={resolution} for digits: the 8x8 digits are upscaled by a whole factor, so "
            "the resolution must be a multiple of 8 (16 or 32 in the presets)"
        )
    if channels not in (1, 3):
        raise DatasetError(f"data.channels={channels}: use 1 (grey) or 3 (the grey digit repeated as RGB)")
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DatasetError(f"digits: scikit-learn is needed for the embedded digits ({e}); pip install scikit-learn") from None
    raw = load_digits().images  # (1797, 8, 8) float64, integer values 0..16
    x = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32)).div_(16.0).unsqueeze(1)  # (N, 1, 8, 8)
    x = upscale_digits(x, resolution=resolution, upscale=upscale)
    x = x.mul_(2.0).sub_(1.0)
    if channels == 3:
        x = x.repeat(1, 3, 1, 1).contiguous()  # (N, 3, R, R): the grey digit on all three channels
    return x


class Digits(ImageDataset):
    """scikit-learn's ``load_digits``: 1,797 real 8x8 digits (values 0..16), upscaled, in memory."""

    name = "digits"

    def __init__(self, *, resolution: int, channels: int, upscale: str):
        self.images = digits_images(resolution=resolution, channels=channels, upscale=upscale)
        self.info = {"dataset": "digits", "split": "all", "count": len(self.images), "source_size": 8,
                     "resize": f"{upscale}-x{resolution // 8} align_corners=False antialias=False",
                     "resolution": resolution, "channels": channels}

    def __len__(self) -> int:
        return self.images.shape[0]


# ----------------------------------------------------------------------------------- CIFAR-10

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
        raise DatasetError(f"{path} is truncated or corrupt ({e}); delete it and extract cifar-10-python.tar.gz again") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise DatasetError(
            f"{path} is truncated or corrupt ({type(e).__name__}: {e}); delete it and extract cifar-10-python.tar.gz again"
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
        how = _archive_hint(root, "cifar10") or how
        missing = [n for n in _CIFAR_TRAIN if not (base / n).is_file()]
        if missing and download:
            _download("cifar10", root, how)
            base = root / _CIFAR_DIR
            missing = [n for n in _CIFAR_TRAIN if not (base / n).is_file()]
        if missing:
            raise DatasetError(
                f"cifar10: expected {', '.join(str(base / n) for n in _CIFAR_TRAIN)} (the 'CIFAR-10 python "
                f"version' archive, extracted); missing: {', '.join(missing)}. {_sentence(how)}"
            )
        x = torch.from_numpy(np.concatenate([load_cifar_batch(base / n) for n in _CIFAR_TRAIN]))  # (N, 3, 32, 32)
        if channels == 1 or resolution != 32:
            chunks = []
            for c in x.split(4096):
                c = c.float()
                c = _grey(c) if channels == 1 else c
                chunks.append(_uint8(_resize(c, resolution)))
            x = torch.cat(chunks)
        self.images = x.contiguous()
        self.info = {"dataset": "cifar10", "split": "train", "count": len(x), "source_size": 32,
                     "colour": "rgb" if channels == 3 else "grey-bt601-from-rgb",
                     "resize": "none" if resolution == 32 else "bilinear-antialias",
                     "resolution": resolution, "channels": channels}

    def __len__(self) -> int:
        return self.images.shape[0]


# ------------------------------------------------------------------------------------- STL-10

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
        how = _archive_hint(root, "stl10") or how
        missing = [n for n in _STL_FILES if not (base / n).is_file()]
        if missing and download:
            _download("stl10", root, how)
            base = root / _STL_DIR
            missing = [n for n in _STL_FILES if not (base / n).is_file()]
        if missing:
            raise DatasetError(
                f"stl10: expected {' and '.join(str(base / n) for n in _STL_FILES)} (the binary version, "
                f"uint8 N x 3 x 96 x 96); missing: {', '.join(missing)}. {_sentence(how)}"
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
        self.info = {"dataset": "stl10", "split": "train+unlabeled", "count": int(self.offsets[-1]),
                     "colour": "rgb" if channels == 3 else "grey-bt601-from-rgb",
                     "source_size": 96, "resize": "bilinear-antialias", "resolution": resolution,
                     "channels": channels}

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
            x = _grey(x)
        x = _resize(x, self.resolution)
        return x.div_(127.5).sub_(1.0).clamp_(-1.0, 1.0).contiguous()


# ---------------------------------------------------------------------------- image folders


def _load_image(path: Path, *, resolution: int, channels: int, kind: str, how: str) -> torch.Tensor:
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
        raise DatasetError(f"{kind}: cannot read {path} ({type(e).__name__}: {e}); the file is truncated or not an image. {how}") from None
    t = torch.from_numpy(a.copy())
    t = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
    return _to_unit(t)


class _FileImages(ImageDataset):
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
        return _load_image(self.files[i], resolution=self.resolution, channels=self.channels, kind=self.kind, how=self.how)

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


class CelebA(_FileImages):
    """CelebA aligned-and-cropped faces (``img_align_celeba/*.jpg``, 202,599 images of 178x218).

    Centre crop to the largest square — 178x178 on the real images, cutting 20 rows above and
    below — then bilinear resize (antialiased) to the resolution, 64 in the paper. 178 keeps the
    whole face with hair and chin and drops no columns, and it is the square that the common
    ``Resize(64) + CenterCrop(64)`` pipeline of 64x64 GAN work ends up with; tighter crops (140,
    108) give another image distribution and other FIDs, so the crop goes into ``info``.
    """

    name = "celeba"

    def __init__(self, *, root: Path, resolution: int, channels: int, download: bool):
        folder = root if root.name == "img_align_celeba" else root / "img_align_celeba"
        how = (
            "CelebA is distributed through Google Drive, which refuses scripted downloads once its quota is "
            "used up, so it is not downloaded automatically: get img_align_celeba.zip ('Align&Cropped Images') "
            f"from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and unzip it so that {folder}/000001.jpg exists"
        )
        files = sorted(p for p in folder.glob("*.jpg")) if folder.is_dir() else []
        if not files:
            extra = " (data.download=true cannot fetch it)" if download else ""
            raise DatasetError(f"celeba: expected the aligned JPEGs {folder}/000001.jpg ... {folder}/202599.jpg; "
                               f"found none{extra}. {how}")
        super().__init__(files=files, resolution=resolution, channels=channels, kind="celeba", how=how)
        self.info = {"dataset": "celeba", "split": "all", "count": len(files), "crop": "centre-square-178",
                     "colour": "rgb" if channels == 3 else "grey-bt601-from-rgb",
                     "resize": "bilinear-antialias", "resolution": resolution, "channels": channels}


class ImageFolder(_FileImages):
    """Every png/jpg/jpeg/webp/bmp under the root (recursive, sorted), centre-cropped to a square
    (so any aspect ratio works without distortion) and resized bilinearly to the resolution."""

    name = "folder"

    def __init__(self, *, root: Path, resolution: int, channels: int, download: bool):
        how = f"put image files ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) under {root} (subfolders are searched)"
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()) if root.is_dir() else []
        if not files:
            where = "does not exist" if not root.is_dir() else "holds no images"
            extra = "; a plain folder has nothing to download" if download else ""
            raise DatasetError(f"folder: expected image files under {root}, but it {where}{extra}. {_sentence(how)}")
        super().__init__(files=files, resolution=resolution, channels=channels, kind="folder", how=how)
        self.info = {"dataset": "folder", "root": str(root), "count": len(files), "crop": "centre-square",
                     "resize": "bilinear-antialias", "resolution": resolution, "channels": channels}


# ---------------------------------------------------------------------------------- registry


def _build_digits(cfg: Any) -> ImageDataset:
    return Digits(resolution=cfg.resolution, channels=cfg.channels, upscale=getattr(cfg, "upscale", "bilinear"))


def _file_builder(cls: type, default_root: str) -> Callable[[Any], ImageDataset]:
    def build(cfg: Any) -> ImageDataset:
        return cls(root=_root(cfg, default_root), resolution=cfg.resolution, channels=cfg.channels,
                   download=bool(getattr(cfg, "download", False)))

    build.__doc__ = cls.__doc__
    return build


# name -> builder(cfg.data) -> ImageDataset
DATASETS: dict[str, Callable[[Any], ImageDataset]] = {
    "digits": _build_digits,
    "cifar10": _file_builder(Cifar10, "data/cifar10"),
    "stl10": _file_builder(STL10, "data/stl10"),
    "celeba": _file_builder(CelebA, "data/celeba"),
    "folder": _file_builder(ImageFolder, "data/folder"),
}


def build_dataset(data_cfg: Any) -> ImageDataset:
    """The dataset ``data_cfg.dataset`` (float CHW images in [-1, 1]); DatasetError on bad input."""
    name = getattr(data_cfg, "dataset", None)
    if name not in DATASETS:
        raise DatasetError(f"data.dataset={name!r}: unknown dataset; choose one of {', '.join(DATASETS)}")
    res, ch = getattr(data_cfg, "resolution", None), getattr(data_cfg, "channels", None)
    if not isinstance(res, int) or res < 8:
        raise DatasetError(f"data.resolution={res!r}: give the square image side in pixels (>= 8)")
    if ch not in (1, 3):
        raise DatasetError(f"data.channels={ch!r}: use 1 (grey; RGB data is converted with BT.601 luma) or 3 (RGB)")
    ds = DATASETS[name](data_cfg)
    ds.workers = int(getattr(data_cfg, "loader_workers", 0))
    return ds


# -------------------------------------------------------------------------------- the stream


class DataStream:
    """Infinite stream of global batches, resumable and identical for any number of ranks.

    The global order is the concatenation of per-epoch permutations, each drawn from
    (seed, epoch) with a ``torch.Generator``. Global batch k is positions
    ``[k * global_batch, (k + 1) * global_batch)`` of that order; it runs across epoch boundaries
    without dropping or repeating images. Rank r returns rows
    ``[r * global_batch / world_size, (r + 1) * global_batch / world_size)`` of it, so the ranks'
    batches concatenated in rank order are the same global batch for every world size.
    Horizontal flips are decided per (seed, epoch, dataset index), so they too are independent of
    world size and survive resume. ``state_dict()`` is ``{"position": images consumed globally,
    ...}``; ``load_state_dict`` continues with exactly the next batch.

    In-memory datasets are indexed directly (their tensor is moved to ``device`` once); file-backed
    ones are decoded in one background thread, ``prefetch`` batches ahead (results depend only on
    the position, so prefetching does not change them).
    """

    def __init__(
        self,
        dataset: ImageDataset,
        *,
        global_batch: int,  # images per global batch, summed over ranks
        seed: int,  # order and flips are functions of (seed, epoch, index)
        rank: int = 0,  # this worker's rank
        world_size: int = 1,  # number of data-parallel ranks
        hflip: bool = False,  # random horizontal flips (photos; never digits)
        device: str | torch.device = "cpu",  # where next_batch() puts its tensor
        prefetch: int = 2,  # batches decoded ahead for file-backed datasets (0 = none)
    ):
        n = len(dataset)
        if n < 1:
            raise DatasetError("DataStream: the dataset is empty")
        if global_batch < 1 or world_size < 1 or global_batch % world_size:
            raise ValueError(
                f"DataStream: global_batch={global_batch} must be a positive multiple of world_size={world_size} "
                "(each rank takes an equal slice)"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"DataStream: rank={rank} must be in [0, world_size={world_size})")
        self.dataset, self.n = dataset, n
        self.global_batch, self.seed, self.rank, self.world_size = global_batch, int(seed), rank, world_size
        self.local_batch = global_batch // world_size
        self.hflip, self.device = hflip, torch.device(device)
        self.position = 0  # images consumed globally (all ranks), i.e. global_batch x batches served
        self._epochs: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._epochs_lock = threading.Lock()  # the prefetch thread and the caller share the cache
        images = getattr(dataset, "images", None)  # any dataset holding an (N, C, H, W) tensor is indexed directly
        self._store = images.to(self.device) if images is not None else None
        self._prefetch = 0 if self._store is not None else max(0, int(prefetch))
        self._pool: ThreadPoolExecutor | None = None
        self._queue: deque[tuple[int, Future]] = deque()

    # -- order -----------------------------------------------------------------------------
    def _epoch_tables(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(permutation, flip flags by dataset index) of one epoch; a few epochs are cached."""
        with self._epochs_lock:
            return self._epoch_tables_locked(epoch)

    def _epoch_tables_locked(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        tables = self._epochs.get(epoch)
        if tables is None:
            g = torch.Generator().manual_seed(_derive_seed("order", self.seed, epoch))
            perm = torch.randperm(self.n, generator=g)
            flips = None
            if self.hflip:
                g = torch.Generator().manual_seed(_derive_seed("hflip", self.seed, epoch))
                flips = torch.randint(0, 2, (self.n,), generator=g, dtype=torch.uint8).bool()
            if len(self._epochs) >= 3:
                self._epochs.pop(min(self._epochs))
            tables = self._epochs[epoch] = (perm, flips)
        return tables

    def indices(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Dataset indices and flip flags of global positions [start, start + count)."""
        idx = torch.empty(count, dtype=torch.long)
        flip = torch.zeros(count, dtype=torch.bool)
        j = 0
        while j < count:
            epoch, off = divmod(start + j, self.n)
            take = min(count - j, self.n - off)
            perm, flips = self._epoch_tables(epoch)
            idx[j:j + take] = perm[off:off + take]
            if flips is not None:
                flip[j:j + take] = flips[idx[j:j + take]]
            j += take
        return idx, flip

    def _local(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.indices(position + self.rank * self.local_batch, self.local_batch)

    def _load(self, position: int) -> torch.Tensor:
        idx, flip = self._local(position)
        x = self.dataset.get_batch(idx)  # (local_batch, C, H, W) float in [-1, 1]
        if flip.any():
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if self.device.type == "cuda":
            x = x.pin_memory()
        return x

    # -- API -------------------------------------------------------------------------------
    def next_batch(self) -> torch.Tensor:
        """This rank's rows of the next global batch: (global_batch / world_size, C, H, W)."""
        pos = self.position
        if self._store is not None:
            idx, flip = self._local(pos)
            x = _to_unit(self._store[idx.to(self.device)])
            if flip.any():
                x = torch.where(flip.to(self.device).view(-1, 1, 1, 1), x.flip(-1), x)
        elif self._prefetch:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datastream")
            while self._queue and self._queue[0][0] != pos:  # stale after load_state_dict
                self._queue.popleft()[1].cancel()
            while len(self._queue) < self._prefetch + 1:
                nxt = self._queue[-1][0] + self.global_batch if self._queue else pos
                self._queue.append((nxt, self._pool.submit(self._load, nxt)))
            x = self._queue.popleft()[1].result().to(self.device, non_blocking=True)
        else:
            x = self._load(pos).to(self.device)
        self.position = pos + self.global_batch
        return x

    def __iter__(self):
        while True:
            yield self.next_batch()

    @property
    def epoch(self) -> int:
        """Completed passes over the dataset (global): position // len(dataset)."""
        return self.position // self.n

    @property
    def epoch_progress(self) -> float:
        """Epochs as a float, e.g. 2.5 halfway through the third pass."""
        return self.position / self.n

    def state_dict(self) -> dict:
        return {"position": int(self.position), "seed": self.seed, "dataset_len": self.n, "hflip": bool(self.hflip)}

    def load_state_dict(self, sd: dict) -> None:
        """Continue at ``sd["position"]``; refuses a state from another seed or dataset size."""
        if int(sd.get("seed", self.seed)) != self.seed:
            raise ValueError(f"DataStream state has seed {sd['seed']}, this stream {self.seed}: the order would differ")
        if int(sd.get("dataset_len", self.n)) != self.n:
            raise ValueError(
                f"DataStream state was saved on a dataset of {sd['dataset_len']} images, this one has {self.n}: "
                "resuming would not continue the same order; use the same data"
            )
        self.position = int(sd["position"])
        while self._queue:
            self._queue.popleft()[1].cancel()

    def close(self) -> None:
        """Stop the prefetch thread (also happens at interpreter exit)."""
        while self._queue:
            self._queue.popleft()[1].cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> "DataStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
