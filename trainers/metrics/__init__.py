"""Evaluation: standard IS/FID/KID (TF-Inception via torch-fidelity) and the offline digits metric.

Names: `fid`, `is`, `kid` are computed ONLY with torch-fidelity's port of the TF Inception
(inception-2015-12-05) weights; `digits_fid`, `digits_is` come from a small classifier trained on the
embedded digits data and are never called FID/IS. Every result is {"value", "protocol", "info"}.
"""


class MetricsUnavailable(RuntimeError):
    """A metric cannot be computed here; the message says what is missing and how to fix it."""


from .evaluate import KNOWN_METRICS, evaluate  # noqa: E402  (after MetricsUnavailable: submodules import it)
from .fid import feature_stats, frechet_distance  # noqa: E402
from .inception_score import inception_score, score_parts  # noqa: E402
from .kid import kernel_inception_distance, mmd2_unbiased  # noqa: E402

__all__ = [
    "MetricsUnavailable",
    "KNOWN_METRICS",
    "evaluate",
    "feature_stats",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "mmd2_unbiased",
    "score_parts",
]
