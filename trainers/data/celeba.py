"""``celeba``: the aligned-and-cropped JPEGs, centre crop then resize."""

from __future__ import annotations

from pathlib import Path

from transgan_lab.trainers.data.base import DatasetError
from transgan_lab.trainers.data.image_files import FileImages


class CelebA(FileImages):
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
            raise DatasetError(
                f"celeba: expected the aligned JPEGs {folder}/000001.jpg ... {folder}/202599.jpg; "
                f"found none{extra}. {how}"
            )
        super().__init__(files=files, resolution=resolution, channels=channels, kind="celeba", how=how)
        self.info = {
            "dataset": "celeba",
            "split": "all",
            "count": len(files),
            "crop": "centre-square-178",
            "colour": "rgb" if channels == 3 else "grey-bt601-from-rgb",
            "resize": "bilinear-antialias",
            "resolution": resolution,
            "channels": channels,
        }
