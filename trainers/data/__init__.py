"""Datasets and the resumable, world-size-invariant data stream.

Every dataset yields float images in [-1, 1], CHW, without labels, at ``cfg.resolution`` with
``cfg.channels`` channels. They live behind one registry, ``DATASETS``; ``build_dataset(cfg.data)``
picks one. ``cfg`` is any object with the ``DataConfig`` attributes (``dataset, root, resolution,
channels, download, upscale``); this package never imports the config schema.

    base.py          ``ImageDataset``, ``DatasetError``, pixel helpers (unit range, grey, resize)
    digits.py        ``digits``: scikit-learn's 1,797 real 8x8 digits (the embedded default), upscaled
                     by the one digits resize (``upscale_digits``, ``digits_images``)
    cifar.py         ``cifar10``: the 50k train split, read by a restricted unpickler
    stl10.py         ``stl10``: train + unlabeled (105k), memory-mapped, resized (48 in the paper)
    image_files.py   file-backed datasets: decode, centre crop, resize, on threads
    celeba.py        ``celeba``: the aligned-and-cropped JPEGs, centre crop then resize
    folder.py        ``folder``: any folder of png/jpg/jpeg/webp/bmp images, searched recursively
    download.py      ``data.download=true`` for CIFAR-10 and STL-10 (md5-checked)
    registry.py      ``DATASETS`` and ``build_dataset``
    stream.py        ``DataStream``: infinite global batches whose order depends only on (seed,
                     position), never on the number of workers

Missing or damaged files raise ``DatasetError`` naming every expected path and how to get it.
"""

from transgan_lab.trainers.data.base import IMAGE_EXTENSIONS, DatasetError, ImageDataset
from transgan_lab.trainers.data.cifar import load_cifar_batch
from transgan_lab.trainers.data.digits import digits_images, upscale_digits
from transgan_lab.trainers.data.download import DOWNLOADS
from transgan_lab.trainers.data.registry import DATASETS, build_dataset
from transgan_lab.trainers.data.stream import DataStream

__all__ = [
    "DATASETS",
    "DOWNLOADS",
    "IMAGE_EXTENSIONS",
    "DataStream",
    "DatasetError",
    "ImageDataset",
    "build_dataset",
    "digits_images",
    "load_cifar_batch",
    "upscale_digits",
]
