"""evaluate(G, cfg) -> {metric: {"value", "protocol", "info"}}: one entry point for every metric.

Generation is split by sample index across ranks (sample i's latent depends on (eval.seed, i)
only), each rank extracts features for its slice, features are gathered to rank 0 (padded
all_gather, works on gloo and NCCL), rank 0 computes the numbers, and the result (or the error) is
broadcast so every rank returns the same dict or raises the same error. No rank is left waiting.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from transgan_lab import metric_registry

from . import MetricsUnavailable
from . import digits as _digits
from . import inception as _inc
from .fid import feature_stats, frechet_distance
from .inception_score import inception_score, score_parts
from .kid import kernel_inception_distance
from .sampling import LATENT_PROTOCOL, QUANTISATION, generate_range, to_uint8

STANDARD = metric_registry.eval_metrics(metric_registry.TF_INCEPTION)  # is, fid, kid
DIGITS = metric_registry.eval_metrics(metric_registry.DIGITS_CLASSIFIER)  # digits_is, digits_fid
KNOWN_METRICS = metric_registry.EVAL_METRICS
IS_SPLITS = 10
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000


# ---------------------------------------------------------------------------- training data


def training_dataset(data_cfg: Any):
    """The training split exactly as the training pipeline builds it (trainers.data.build_dataset)."""
    from transgan_lab.trainers.data import DatasetError, build_dataset

    try:
        return build_dataset(data_cfg)
    except DatasetError as exc:
        raise MetricsUnavailable(f"reference images unavailable: {exc}") from exc


def dataset_images(ds: Any, stop: int | None = None, *, chunk: int = 1000):
    """Yield (n, C, H, W) float batches in [-1, 1] of dataset rows 0..stop-1, in order."""
    stop = len(ds) if stop is None else min(stop, len(ds))
    for lo in range(0, stop, chunk):
        yield ds.get_batch(range(lo, min(lo + chunk, stop)))


def _data_key(data_cfg: Any) -> dict:
    return {k: getattr(data_cfg, k, None) for k in ("dataset", "root", "resolution", "channels", "upscale")}


def _versions() -> dict:
    import scipy

    try:
        import torch_fidelity

        tf_version = torch_fidelity.__version__
    except ImportError:  # pragma: no cover
        tf_version = None
    return {
        "torch": torch.__version__,
        "torch_fidelity": tf_version,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


# -------------------------------------------------------------------------------- distributed


def _dist() -> tuple[bool, Any]:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized(), dist


def _comm_device(dist: Any) -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _all_ok(local_error: str | None, use_dist: bool, dist: Any) -> None:
    """Every rank learns whether any rank failed; all raise the first error together."""
    if use_dist:
        errors: list = [None] * dist.get_world_size()
        dist.all_gather_object(errors, local_error)
        first = next((e for e in errors if e), None)
    else:
        first = local_error
    if first:
        raise MetricsUnavailable(first) if not first.startswith("!") else RuntimeError(first[1:])


def _encode(exc: BaseException) -> str:
    # MetricsUnavailable travels as its message; anything else is marked so it is re-raised as RuntimeError.
    return str(exc) if isinstance(exc, MetricsUnavailable) else f"!{type(exc).__name__}: {exc}"


def _gather_rows(local: np.ndarray, n_per_rank: int, n_total: int, use_dist: bool, dist: Any) -> np.ndarray | None:
    """Concatenate every rank's (n_i, D) rows in rank order on rank 0 (None on the others)."""
    if not use_dist:
        return local
    dev = _comm_device(dist)
    padded = torch.zeros(n_per_rank, local.shape[1], dtype=torch.float32, device=dev)  # equal sizes for all_gather
    padded[: local.shape[0]] = torch.from_numpy(local).to(dev)
    parts = [torch.empty_like(padded) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, padded)
    if dist.get_rank() != 0:
        return None
    return torch.cat([p.cpu() for p in parts]).numpy()[:n_total]  # rank r holds rows r*n_per_rank...


# ----------------------------------------------------------------------------------- evaluate


def evaluate(
    G: torch.nn.Module,  # the EMA generator: G(z) -> (N, C, H, W) in about [-1, 1]; has .latent_dim
    cfg: Any,  # experiment config (reads cfg.data, cfg.eval)
    *,
    metrics: list[str] | None = None,  # names from KNOWN_METRICS; default cfg.eval.metrics
    n_fake: int | None = None,  # generated samples; default cfg.eval.n_fake
    batch: int | None = None,  # generator batch; default cfg.eval.batch (does not change the value)
    device: str | torch.device = "cpu",  # where G and the feature networks run
    rank: int = 0,  # this process's rank (taken from torch.distributed when it is initialised)
    world_size: int = 1,  # number of ranks (taken from torch.distributed when it is initialised)
    n_real: int | None = None,  # reference subset: the first n_real training images; None = all
) -> dict[str, dict]:
    """Compute metrics; every rank returns the same {name: {"value", "protocol", "info"}}."""
    names = list(metrics if metrics is not None else cfg.eval.metrics)
    unknown = [m for m in names if m not in KNOWN_METRICS]
    if unknown or not names:
        raise MetricsUnavailable(f"unknown metric(s) {unknown or names}; known metrics: {list(KNOWN_METRICS)}")
    use_dist, dist = _dist()
    if use_dist:
        rank, world_size = dist.get_rank(), dist.get_world_size()
    n = int(n_fake if n_fake is not None else cfg.eval.n_fake)
    batch = int(batch if batch is not None else cfg.eval.batch)
    seed = int(cfg.eval.seed)
    if n < 2 or batch < 1:
        raise MetricsUnavailable(f"evaluate: need n_fake >= 2 and batch >= 1, got n_fake={n}, batch={batch}")
    want_std = [m for m in names if m in STANDARD]
    want_dig = [m for m in names if m in DIGITS]
    t0 = time.perf_counter()

    # 1. Resources. Rank 0 prepares (trains/caches the digits classifier), the others then load it.
    state: dict[str, Any] = {}

    def prepare() -> None:
        root = _inc.cache_root(cfg)
        state["root"] = root
        if want_std:
            state["weights"] = _inc.resolve_weights(cfg)
            state["weights_record"] = _inc.weights_record(state["weights"])
            state["extractor"] = _inc.load_extractor(state["weights"], device)
        if want_dig:
            _digits.check_digits_config(cfg)
            from sklearn.datasets import load_digits

            real = torch.cat(list(dataset_images(training_dataset(cfg.data))))  # (1797, C, R, R)
            labels = load_digits().target.astype(np.int64)
            if real.shape[0] != labels.shape[0]:
                raise MetricsUnavailable(f"digits training set has {real.shape[0]} images, expected {labels.shape[0]}")
            state["digits_real"] = real
            state["digits_net"], state["digits_record"], state["digits_cache_hit"] = _digits.load_or_train(
                images=real, labels=labels, cache_dir=root
            )

    for turn in ((0,), tuple(range(1, world_size))):
        err = None
        if rank in turn:
            try:
                prepare()
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
                err = _encode(exc)
        _all_ok(err, use_dist, dist)

    # 2. This rank's slice of samples -> features.
    n_per_rank = math.ceil(n / world_size)
    lo, hi = min(rank * n_per_rank, n), min((rank + 1) * n_per_rank, n)
    local: dict[str, np.ndarray] = {}
    err = None
    try:
        if hi > lo:
            images = generate_range(G, start=lo, stop=hi, seed=seed, batch=batch, device=device)  # (hi-lo, C, H, W)
        else:
            images = torch.zeros(0, cfg.data.channels, cfg.data.resolution, cfg.data.resolution)
        if images.shape[-1] != cfg.data.resolution or images.shape[1] != cfg.data.channels:
            raise MetricsUnavailable(
                f"generator output {tuple(images.shape[1:])} does not match data (channels={cfg.data.channels}, "
                f"resolution={cfg.data.resolution}); evaluate the generator of this config"
            )
        if want_std:
            f = _inc.inception_features(to_uint8(images), state["extractor"], batch=min(batch, 64), device=device)
            local["inc_pool"], local["inc_logits"] = f["pool"], f["logits"]
        if want_dig:
            f = _digits.digits_features(images, state["digits_net"])
            local["dig_feat"], local["dig_logits"] = f["feat"], f["logits"]
    except Exception as exc:  # noqa: BLE001
        err = _encode(exc)
    _all_ok(err, use_dist, dist)
    t_generate = time.perf_counter() - t0

    # 3. Gather to rank 0, compute there, broadcast the result (or the error).
    gathered = {k: _gather_rows(v, n_per_rank, n, use_dist, dist) for k, v in sorted(local.items())}
    result: dict | None = None
    err = None
    if rank == 0:
        try:
            result = _compute(cfg, gathered, state, names, n=n, seed=seed, n_real=n_real, world_size=world_size)
            for r in result.values():
                r["info"]["generate_and_extract_s"] = round(t_generate, 3)
                r["info"]["total_s"] = round(time.perf_counter() - t0, 3)
        except Exception as exc:  # noqa: BLE001
            err = _encode(exc)
    if use_dist:
        box = [(result, err)]
        dist.broadcast_object_list(box, src=0)
        result, err = box[0]
    if err:
        raise MetricsUnavailable(err) if not err.startswith("!") else RuntimeError(err[1:])
    return result


def _compute(
    cfg: Any, feats: dict, state: dict, names: list[str], *, n: int, seed: int, n_real: int | None, world_size: int
) -> dict[str, dict]:
    out: dict[str, dict] = {}
    base = {
        "data": _data_key(cfg.data),
        "n_fake": n,
        "seed": seed,
        "latents": LATENT_PROTOCOL,
        "quantisation": QUANTISATION,
        "stats_dtype": "float64",
        "features_dtype": "float32",
        "versions": _versions(),
    }

    def reference(stem: str, key: dict, features_fn) -> tuple[dict, bool, int, int]:
        def compute() -> dict:
            ds = training_dataset(cfg.data)
            parts = [features_fn(x) for x in dataset_images(ds, n_real)]
            arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            return {**arrays, "n_total": np.array(len(ds))}

        ref_key = {**_data_key(cfg.data), **key, "n_real": n_real, "quantisation": QUANTISATION}
        arrays, hit, _ = _inc.cached_features(cache_dir=state["root"], stem=stem, key=ref_key, compute=compute)
        n_total = int(arrays.pop("n_total"))
        n_used = next(iter(arrays.values())).shape[0]
        return arrays, hit, n_used, n_total

    def split_text(n_used: int, n_total: int) -> str:
        return f"train ({'all' if n_used == n_total else 'first'} {n_used} of {n_total} images)"

    if any(m in STANDARD for m in names):
        wrec = state["weights_record"]
        key = {"extractor": f"torch-fidelity {_inc.EXTRACTOR_NAME}", "weights_sha256": wrec["weights_sha256"]}
        std_proto = {
            **base,
            "extractor": f"torch-fidelity {_inc.EXTRACTOR_NAME} (TF inception-2015-12-05 port)",
            **wrec,
            "resize": _inc.RESIZE,
        }
        need_ref = any(m in ("fid", "kid") for m in names)
        if need_ref:
            ref, hit, n_used, n_total = reference(
                f"ref-inception-{cfg.data.dataset}-{cfg.data.resolution}px",
                key,
                lambda real: _inc.inception_features(
                    to_uint8(real), state["extractor"], batch=64, device=next(state["extractor"].parameters()).device
                ),
            )
            std_proto.update({"n_real": n_used, "reference_split": split_text(n_used, n_total)})
            info = {"reference_cache_hit": hit}
        else:
            info = {}
        if "fid" in names:
            mu_r, s_r = feature_stats(ref["pool"])
            mu_f, s_f = feature_stats(feats["inc_pool"])
            out["fid"] = {
                "value": frechet_distance(mu_r, s_r, mu_f, s_f),
                "protocol": {**std_proto, "metric": "fid", "feature": _inc.FEATURE_POOL},
                "info": dict(info),
            }
        if "kid" in names:
            mean, std, size = kernel_inception_distance(
                ref["pool"], feats["inc_pool"], subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=seed
            )
            out["kid"] = {
                "value": mean,
                "protocol": {
                    **std_proto,
                    "metric": "kid",
                    "feature": _inc.FEATURE_POOL,
                    "kernel": "(x.y/D + 1)^3, unbiased MMD^2",
                    "subsets": KID_SUBSETS,
                    "subset_size": size,
                },
                "info": {**info, "std": std},
            }
        if "is" in names:
            mean, std = inception_score(feats["inc_logits"], splits=IS_SPLITS)
            proto = {k: v for k, v in std_proto.items() if k not in ("n_real", "reference_split")}
            out["is"] = {
                "value": mean,
                "protocol": {
                    **proto,
                    "metric": "is",
                    "feature": _inc.FEATURE_LOGITS,
                    "splits": IS_SPLITS,
                    "split_order": "contiguous",
                },
                "info": {"std": std, "parts": score_parts(feats["inc_logits"])},
            }

    if any(m in DIGITS for m in names):
        drec = state["digits_record"]
        dig_proto = {
            **base,
            "extractor": drec["classifier"],
            **drec,
            "resize": "none (classifier runs at data resolution)",
            "channels": "grey (RGB -> channel mean)",
        }
        info = {"classifier_cache_hit": state["digits_cache_hit"]}
        if "digits_fid" in names:
            key = {"extractor": drec["classifier"], "weights_sha256": drec["classifier_sha256"]}
            ref, hit, n_used, n_total = reference(
                f"ref-digits-{cfg.data.resolution}px",
                key,
                lambda real: {"feat": _digits.digits_features(real, state["digits_net"])["feat"]},
            )
            mu_r, s_r = feature_stats(ref["feat"])
            mu_f, s_f = feature_stats(feats["dig_feat"])
            out["digits_fid"] = {
                "value": frechet_distance(mu_r, s_r, mu_f, s_f),
                "protocol": {
                    **dig_proto,
                    "metric": "digits_fid",
                    "feature": "penultimate (64-d)",
                    "n_real": n_used,
                    "reference_split": split_text(n_used, n_total),
                },
                "info": {**info, "reference_cache_hit": hit},
            }
        if "digits_is" in names:
            mean, std = inception_score(feats["dig_logits"], splits=IS_SPLITS)
            out["digits_is"] = {
                "value": mean,
                "protocol": {
                    **dig_proto,
                    "metric": "digits_is",
                    "feature": "logits (10)",
                    "splits": IS_SPLITS,
                    "split_order": "contiguous",
                },
                "info": {**info, "std": std, "parts": score_parts(feats["dig_logits"])},
            }
    for name in out:
        out[name]["info"]["world_size"] = world_size
    return {m: out[m] for m in names}
