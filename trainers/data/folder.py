"""``folder``: any folder of png/jpg/jpeg/webp/bmp images, searched recursively."""

from __future__ import annotations

from pathlib import Path

from transgan_lab.trainers.data.base import IMAGE_EXTENSIONS, DatasetError, sentence
from transgan_lab.trainers.data.image_files import FileImages


class ImageFolder(FileImages):
    """Every png/jpg/jpeg/webp/bmp under the root (recursive, sorted), centre-cropped to a square
    (so any aspect ratio works without distortion) and resized bilinearly to the resolution."""

    name = "folder"

    def __init__(self, *, root: Path, resolution: int, channels: int, download: bool):
        how = f"put image files ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) under {root} (subfolders are searched)"
        files = (
            sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if root.is_dir()
            else []
        )
        if not files:
            where = "does not exist" if not root.is_dir() else "holds no images"
            extra = "; a plain folder has nothing to download" if download else ""
            raise DatasetError(f"folder: expected image files under {root}, but it {where}{extra}. {sentence(how)}")
        super().__init__(files=files, resolution=resolution, channels=channels, kind="folder", how=how)
        self.info = {
            "dataset": "folder",
            "root": str(root),
            "count": len(files),
            "crop": "centre-square",
            "resize": "bilinear-antialias",
            "resolution": resolution,
            "channels": channels,
        }
