"""The official TransGAN evaluation protocols, computed beside ours.

The official repository reports FID only, and two different ways:

- v2 (``test.py`` at 6b85440, the path behind the v2 numbers): ``num_eval_imgs`` samples (50k for
  CIFAR-10) from unseeded ``np.random.normal`` latents, quantised as ``x*127.5 + 127.5``, clamped
  to [0, 255], cast to uint8 (truncation), through TF's inception-2015-12-05 graph (pool_3), and
  compared with a precomputed statistics file from its ``fid_stat/`` folder (TTUR's CIFAR-10
  training-set statistics, 'mu' and 'sigma') with ``scipy.linalg.sqrtm``. Its IS code (improved-GAN,
  10 splits over the same uint8 samples) is commented out; it is computed here as that code
  defines it.
- v1 (``test.py`` at 7e5fa2d -> ``functions.validate`` -> ``utils/torch_fid_score.get_fid``):
  20k samples for CIFAR-10 and STL-10, unquantised ``(x+1)/2`` floats into pytorch-fid's Inception
  port, the same ``fid_stat/`` files, and a float32 Newton-Schulz square root on the GPU.

Ours (``evaluate``) differs in the reference: the features of the training split computed here by
the same extractor, instead of statistics someone computed elsewhere with TF. Where this module
cannot follow the official code (the extractor takes uint8 only; no TF here), the protocol record
lists the deviation. KID is not part of either official protocol (the statistics files hold no
features to compute it from).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import MetricsUnavailable
from . import inception as _inc
from .fid import feature_stats, frechet_distance
from .inception_score import inception_score
from .sampling import LATENT_PROTOCOL, QUANTISATION, generate_range, to_uint8

OFFICIAL_METRICS = ("fid", "is")
_TTUR = "TTUR's precomputed statistics ('mu', 'sigma' of TF inception-2015-12-05 pool_3)"
_V2 = "TransGAN v2 test.py (VITA-Group/TransGAN@6b85440)"
_V1 = "TransGAN v1 test.py -> functions.validate -> utils/torch_fid_score.get_fid (VITA-Group/TransGAN@7e5fa2d)"
_V1_DEVIATIONS = (
    "quantised to uint8 as the v2 test.py: the v1 code fed unquantised floats, the extractor here takes uint8 only",
    "extractor: torch-fidelity's port of the TF graph; the v1 code used pytorch-fid's port of the same graph",
    "FID square root: scipy sqrtm in float64; the v1 code used 50 Newton-Schulz iterations in float32",
)


@dataclass(frozen=True)
class OfficialProtocol:
    name: str  # which official code path
    n_fake: int  # the official script's --num_eval_imgs
    stats_file: str  # file name in the official fid_stat/ folder
    stats_source: str  # what that file holds
    quantisation: str  # what the official code fed the Inception network
    fid_sqrt: str  # how it took the matrix square root
    is_protocol: str  # its (unused) IS definition
    latents: str  # how it drew z
    deviations: tuple[str, ...] = ()  # where this implementation does not follow it


PROTOCOLS: dict[str, OfficialProtocol] = {
    "cifar10-v2": OfficialProtocol(
        name=_V2,
        n_fake=50_000,
        stats_file="fid_stats_cifar10_train.npz",
        stats_source=f"{_TTUR}, CIFAR-10 train split (50k)",
        quantisation=QUANTISATION,
        fid_sqrt="scipy.linalg.sqrtm (TTUR calculate_frechet_distance)",
        is_protocol="improved-GAN IS, 10 splits over the uint8 samples (commented out in test.py)",
        latents="np.random.normal, unseeded (not reproducible)",
        deviations=(
            "extractor: torch-fidelity's TF1-exact port of the TF graph (no TensorFlow here)",
            f"latents: {LATENT_PROTOCOL} (same distribution, reproducible)",
        ),
    ),
    "cifar10-xl": OfficialProtocol(
        name=_V1,
        n_fake=20_000,
        stats_file="fid_stats_cifar10_train.npz",
        stats_source=f"{_TTUR}, CIFAR-10 train split (50k)",
        quantisation="none: (x+1)/2 floats",
        fid_sqrt="Newton-Schulz, 50 iterations, float32",
        is_protocol="not computed by the v1 code (10 splits here)",
        latents="np.random.normal, unseeded",
        deviations=_V1_DEVIATIONS,
    ),
    "stl10-xl": OfficialProtocol(
        name=_V1,
        n_fake=20_000,
        stats_file="stl10_train_unlabeled_fid_stats_48.npz",
        stats_source=f"{_TTUR}, STL-10 train+unlabeled at 48x48",
        quantisation="none: (x+1)/2 floats",
        fid_sqrt="Newton-Schulz, 50 iterations, float32",
        is_protocol="not computed by the v1 code (10 splits here)",
        latents="np.random.normal, unseeded",
        deviations=_V1_DEVIATIONS,
    ),
}
# Presets with an official model but no usable official protocol, and why.
NO_PROTOCOL = {
    "celeba64-xl": "the official CelebA-64 test script passes --dataset stl10, so it compares 64x64 CelebA samples "
    "with the STL-10 48x48 statistics; that number measures nothing, so there is no official protocol "
    "to reproduce (use ours)",
}


def protocol_for(preset: str | None) -> OfficialProtocol:
    if preset in PROTOCOLS:
        return PROTOCOLS[preset]
    if preset in NO_PROTOCOL:
        raise MetricsUnavailable(f"no official evaluation protocol for {preset}: {NO_PROTOCOL[preset]}")
    raise MetricsUnavailable(
        f"preset {preset!r} has no official TransGAN counterpart, so there is no official "
        f"protocol; presets with one: {', '.join(sorted(PROTOCOLS))}"
    )


def default_stats_path(cfg: Any, protocol: OfficialProtocol) -> Path:
    """<eval cache>/official/<file name>: where the official statistics file is looked for by default."""
    return _inc.cache_root(cfg) / "official" / protocol.stats_file


def load_official_stats(path: Path, protocol: OfficialProtocol) -> tuple[np.ndarray, np.ndarray, dict]:
    """(mu (2048,), sigma (2048, 2048), record) from the official statistics file, or MetricsUnavailable."""
    path = Path(path)
    if not path.is_file():
        raise MetricsUnavailable(
            f"the official protocol ({protocol.name}) compares with the official fid_stat/{protocol.stats_file} "
            f"({protocol.stats_source}) and it is not at {path}. Copy that file from a clone of VITA-Group/TransGAN "
            f"(its fid_stat/ folder; TTUR publishes the same CIFAR-10 file) to {path}, or pass --official-stats PATH"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            mu, sigma = np.asarray(z["mu"], np.float64), np.asarray(z["sigma"], np.float64)
    except (KeyError, ValueError, OSError) as exc:
        raise MetricsUnavailable(
            f"{path} is not a statistics file with arrays 'mu' and 'sigma' ({exc}); "
            f"use the official fid_stat/{protocol.stats_file}"
        ) from None
    if mu.shape != (2048,) or sigma.shape != (2048, 2048):
        raise MetricsUnavailable(
            f"{path}: 'mu' {mu.shape} and 'sigma' {sigma.shape} are not pool_3 statistics "
            "((2048,) and (2048, 2048)); use the official file"
        )
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return mu, sigma, {"stats_file": path.name, "stats_sha256": sha}


def evaluate_official(
    G: Any,  # the EMA generator (G(z) -> images in about [-1, 1]; has .latent_dim)
    cfg: Any,  # experiment config (cfg.eval: seed, inception_weights, cache_dir)
    *,
    protocol: OfficialProtocol,  # from protocol_for(preset)
    stats_path: str | Path | None = None,  # the official statistics file; default default_stats_path
    metrics: tuple[str, ...] = OFFICIAL_METRICS,  # subset of OFFICIAL_METRICS
    n_fake: int | None = None,  # default: the official count (another count is recorded as a deviation)
    batch: int | None = None,  # generator batch (does not change the value)
    device: Any = "cpu",  # where G and the extractor run
) -> dict[str, dict]:
    """{"fid"|"is": {"value", "protocol", "info"}} under the official protocol, single process."""
    bad = [m for m in metrics if m not in OFFICIAL_METRICS]
    if bad or not metrics:
        raise MetricsUnavailable(
            f"the official protocol defines {', '.join(OFFICIAL_METRICS)} only, not {bad or metrics}"
        )
    n = int(n_fake if n_fake is not None else protocol.n_fake)
    if n < 10:
        raise MetricsUnavailable(f"the official protocol needs at least 10 samples (10 IS splits), got {n}")
    batch = int(batch if batch is not None else cfg.eval.batch)
    seed = int(cfg.eval.seed)
    mu_r = sigma_r = None
    record: dict = {}
    if "fid" in metrics:
        mu_r, sigma_r, record = load_official_stats(Path(stats_path or default_stats_path(cfg, protocol)), protocol)
    weights = _inc.resolve_weights(cfg)
    extractor = _inc.load_extractor(weights, device)
    pools, logits = [], []
    for lo in range(0, n, 1000):  # chunks keep memory flat for 50k samples
        images = generate_range(G, start=lo, stop=min(lo + 1000, n), seed=seed, batch=batch, device=device)
        f = _inc.inception_features(to_uint8(images), extractor, batch=min(batch, 64), device=device)
        pools.append(f["pool"])
        logits.append(f["logits"])
    deviations = list(protocol.deviations)
    if n != protocol.n_fake:
        deviations.append(f"n_fake {n} instead of the official {protocol.n_fake}")
    proto = {
        "protocol": "official",
        **asdict(protocol),
        "deviations": deviations,
        "n_fake": n,
        "seed": seed,
        "extractor": f"torch-fidelity {_inc.EXTRACTOR_NAME} (TF inception-2015-12-05 port)",
        **_inc.weights_record(weights),
        "resize": _inc.RESIZE,
    }
    out: dict[str, dict] = {}
    if "fid" in metrics:
        mu_f, s_f = feature_stats(np.concatenate(pools))
        value = frechet_distance(mu_r, sigma_r, mu_f, s_f, method="sqrtm")
        out["fid"] = {
            "value": value,
            "protocol": {**proto, "metric": "fid", "feature": _inc.FEATURE_POOL, **record},
            "info": {},
        }
    if "is" in metrics:
        mean, std = inception_score(np.concatenate(logits), splits=10)
        out["is"] = {
            "value": mean,
            "protocol": {**proto, "metric": "is", "feature": _inc.FEATURE_LOGITS, "splits": 10},
            "info": {"std": std},
        }
    return out
