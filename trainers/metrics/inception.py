"""Standard TF-Inception features through torch-fidelity, plus the on-disk caches every metric uses.

The network is torch-fidelity's `FeatureExtractorInceptionV3` (a port of TF's
inception-2015-12-05 graph), loaded from a local weights file only: `cfg.eval.inception_weights`, or
`$TORCH_HOME/hub/checkpoints/<file name torch-fidelity expects>`. Missing file -> MetricsUnavailable
naming the file, its expected hash and where to put it; there is no download and no fallback.
Inputs are uint8 images; the extractor resizes them to 299x299 with its TF1-exact bilinear resize.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import MetricsUnavailable

EXTRACTOR_NAME = "inception-v3-compat"  # torch-fidelity's registry name for this network
FEATURE_POOL = "2048"  # pool_3 features: FID and KID
FEATURE_LOGITS = "logits_unbiased"  # IS logits (as torch-fidelity's ISC)
RESIZE = "torch-fidelity interpolate_bilinear_2d_like_tensorflow1x to 299x299 (TF1-exact)"


# ------------------------------------------------------------------------------------ caching


def cache_root(cfg: Any) -> Path:
    """cfg.eval.cache_dir, else $TRANSGAN_LAB_CACHE, else ~/.cache/transgan_lab (created)."""
    path = getattr(cfg.eval, "cache_dir", None) or os.environ.get("TRANSGAN_LAB_CACHE") or "~/.cache/transgan_lab"
    root = Path(path).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    """np.savez to a temp file in the same folder, then os.replace: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def key_digest(parts: dict) -> str:
    """Short stable hash of a dict of plain values (cache keys)."""
    text = repr(sorted((k, repr(v)) for k, v in parts.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_features(
    *,
    cache_dir: Path,  # cache folder
    stem: str,  # readable file name prefix
    key: dict,  # everything the features depend on
    compute: Callable[[], dict[str, np.ndarray]],  # returns named (N, D) arrays when not cached
) -> tuple[dict[str, np.ndarray], bool, Path]:
    """Load named feature arrays from the cache or compute and store them; returns (arrays, hit, path)."""
    path = cache_dir / f"{stem}-{key_digest(key)}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}, True, path
        except (OSError, ValueError) as exc:  # damaged file: recompute, replace atomically
            warnings.warn(f"reference cache {path} unreadable ({exc}); recomputing")
    arrays = compute()
    atomic_save_npz(path, **arrays)
    return arrays, False, path


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """Full sha256 of a file (memoised per path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


# ----------------------------------------------------------------------------- weights file


def expected_weights() -> tuple[str, str, str]:
    """(file name, expected sha256 prefix, URL) read from the installed torch-fidelity source."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
    except ImportError as exc:  # pragma: no cover - torch-fidelity is a pinned dependency
        raise MetricsUnavailable(
            f"torch-fidelity is not importable ({exc}); install the pinned version: pip install torch-fidelity==0.4.0"
        ) from exc
    name = URL_INCEPTION_V3.rsplit("/", 1)[-1]
    m = re.search(r"-([a-f0-9]{6,})\.", name)  # torch.hub's convention: <name>-<sha256 prefix>.<ext>
    return name, (m.group(1) if m else ""), URL_INCEPTION_V3


def default_weights_path() -> Path:
    """$TORCH_HOME/hub/checkpoints/<expected name> (torch.hub's own cache location)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / expected_weights()[0]


def resolve_weights(cfg: Any) -> Path:
    """The Inception weights file to use, or MetricsUnavailable saying what to put where."""
    name, sha_prefix, url = expected_weights()
    configured = getattr(cfg.eval, "inception_weights", None)
    path = Path(configured).expanduser() if configured else default_weights_path()
    if path.is_file():
        return path
    where = (
        f"the configured path eval.inception_weights={configured!r}"
        if configured
        else f"{default_weights_path()} (torch hub cache; $TORCH_HOME/hub/checkpoints/)"
    )
    raise MetricsUnavailable(
        f"the standard metrics (fid, is, kid) need torch-fidelity's TF-Inception weights file "
        f"'{name}' (expected sha256 starting with {sha_prefix}, torch.hub naming) and it is not at {where}. "
        f"Download it where the network allows from {url} and copy it to {default_weights_path()}, "
        f"or set eval.inception_weights to its path. Offline alternative: the digits_fid / digits_is metrics."
    )


def weights_record(path: Path) -> dict:
    """Protocol fields for a weights file: its hash and whether it matches torch-fidelity's name hash."""
    name, sha_prefix, _ = expected_weights()
    sha = file_sha256(path)
    match = bool(sha_prefix) and sha.startswith(sha_prefix)
    if not match:
        warnings.warn(
            f"Inception weights {path} have sha256 {sha[:16]}..., not the expected prefix {sha_prefix} of "
            f"'{name}'; the protocol records weights_match_expected=false, so these numbers never merge "
            "with standard ones"
        )
    return {
        "weights_file": path.name,
        "weights_sha256": sha,
        "weights_expected_sha256_prefix": sha_prefix,
        "weights_match_expected": match,
    }


# ------------------------------------------------------------------------------- extractor

_EXTRACTORS: dict[tuple[str, str], torch.nn.Module] = {}


def load_extractor(path: Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """torch-fidelity's FeatureExtractorInceptionV3 with weights from `path` (memoised)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    key = (file_sha256(path), str(device))
    if key not in _EXTRACTORS:
        try:
            net = FeatureExtractorInceptionV3(
                EXTRACTOR_NAME, [FEATURE_POOL, FEATURE_LOGITS], feature_extractor_weights_path=str(path)
            )
        except (RuntimeError, KeyError, OSError) as exc:
            raise MetricsUnavailable(
                f"could not load the Inception weights {path} into torch-fidelity's network ({exc}); "
                f"the file must be torch-fidelity's '{expected_weights()[0]}'"
            ) from exc
        _EXTRACTORS[key] = net.to(device).eval()
    return _EXTRACTORS[key]


@torch.no_grad()
def inception_features(
    images: torch.Tensor,  # (N, C, H, W) uint8, C in {1, 3}
    extractor: torch.nn.Module,  # from load_extractor
    *,
    batch: int = 64,  # images per forward pass
    device: str | torch.device = "cpu",  # where the extractor lives
) -> dict[str, np.ndarray]:
    """{'pool': (N, 2048) float32, 'logits': (N, 1008) float32} for uint8 images."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"inception_features needs (N, 1|3, H, W) uint8 images, got {tuple(images.shape)} {images.dtype}"
        )
    if images.shape[0] == 0:
        return {"pool": np.zeros((0, 2048), np.float32), "logits": np.zeros((0, 1008), np.float32)}
    pools, logits = [], []
    for lo in range(0, images.shape[0], batch):
        x = images[lo : lo + batch].to(device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey -> RGB by replication
        pool, logit = extractor(x.contiguous())
        pools.append(pool.float().cpu())
        logits.append(logit.float().cpu())
    return {"pool": torch.cat(pools).numpy(), "logits": torch.cat(logits).numpy()}
