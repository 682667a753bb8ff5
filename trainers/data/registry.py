"""The dataset registry: ``DATASETS`` (name -> builder of ``cfg.data``) and ``build_dataset``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transgan_lab.trainers.data.base import DatasetError, ImageDataset, dataset_root
from transgan_lab.trainers.data.celeba import CelebA
from transgan_lab.trainers.data.cifar import Cifar10
from transgan_lab.trainers.data.digits import Digits
from transgan_lab.trainers.data.folder import ImageFolder
from transgan_lab.trainers.data.stl10 import STL10


def _build_digits(cfg: Any) -> ImageDataset:
    return Digits(resolution=cfg.resolution, channels=cfg.channels, upscale=getattr(cfg, "upscale", "bilinear"))


def _file_builder(cls: type, default_root: str) -> Callable[[Any], ImageDataset]:
    def build(cfg: Any) -> ImageDataset:
        return cls(
            root=dataset_root(cfg, default_root),
            resolution=cfg.resolution,
            channels=cfg.channels,
            download=bool(getattr(cfg, "download", False)),
        )

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
