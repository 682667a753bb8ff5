"""``data.download=true``: fetch, md5-check and extract the CIFAR-10 and STL-10 archives; and the
hint for an archive that was downloaded but not extracted."""

from __future__ import annotations

import tarfile
from pathlib import Path

from transgan_lab.trainers.data.base import DatasetError, sentence

# Where data.download=true fetches from: dataset -> (url, archive file name, md5 of the archive).
DOWNLOADS: dict[str, tuple[str, str, str]] = {
    "cifar10": (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    ),
    "stl10": (
        "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
        "stl10_binary.tar.gz",
        "91f7769df0f17e558f3565bffb0c7dfb",
    ),
}


def download_archive(kind: str, root: Path, how: str) -> None:
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
            if isinstance(e, RuntimeError)
            else "the network may be unavailable"
        )
        raise DatasetError(
            f"{kind}: downloading {url} into {root} failed ({type(e).__name__}: {e}); {why}. {sentence(how)}"
        ) from None


def archive_hint(root: Path, kind: str) -> str | None:
    """If the archive was downloaded but not extracted, say how to extract it."""
    archive = root / DOWNLOADS[kind][1]
    if archive.is_file():
        return (
            f"found the archive {archive} but not its contents: extract it with `tar -xzf {archive} -C {root}`, "
            "or set data.download=true (checks its md5, then extracts it)"
        )
    return None
