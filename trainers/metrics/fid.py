"""Fréchet distance between two Gaussians fitted to features, in float64.

d² = |mu1 - mu2|² + tr(S1 + S2 - 2 (S1 S2)^½)

The default route is a symmetric eigen-decomposition (seconds for 2048-d instead of minutes);
method="sqrtm" reproduces the TTUR reference code with scipy.linalg.sqrtm: when the product is
near-singular (non-finite result) a small multiple of the identity is added to both covariances,
and a complex result whose imaginary part is numerical noise is reduced to its real part. A large
imaginary part is an error, not something to paper over.
"""

from __future__ import annotations

import numpy as np


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), both float64."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"feature_stats needs an (N, D) array with N >= 2, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(
    mu1: np.ndarray,  # (D,) mean of the first set
    sigma1: np.ndarray,  # (D, D) covariance of the first set
    mu2: np.ndarray,  # (D,) mean of the second set
    sigma2: np.ndarray,  # (D, D) covariance of the second set
    *,
    eps: float = 1e-6,  # diagonal offset used only when the square root is not finite
    imag_atol: float = 1e-3,  # largest tolerated |imag| on the diagonal of the square root
    method: str = "eigh",  # "eigh": symmetric eigen route (fast); "sqrtm": scipy.linalg.sqrtm (TTUR reference)
) -> float:
    """Fréchet distance in float64 (see the module docstring)."""
    import scipy.linalg

    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"frechet_distance: shapes do not match: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    if method == "eigh":
        # tr((S1 S2)^1/2) = tr((S1^1/2 S2 S1^1/2)^1/2); the inner matrix is symmetric PSD, so the trace
        # is the sum of square roots of its eigenvalues. Rounding makes some zero eigenvalues slightly
        # negative (the analogue of sqrtm's tiny imaginary parts): those are clipped; a clearly negative
        # one means a covariance is not PSD and is an error.
        lam1, v1 = scipy.linalg.eigh(sigma1)
        root1 = (v1 * np.sqrt(np.clip(lam1, 0, None))) @ v1.T  # S1^1/2
        inner = root1 @ sigma2 @ root1
        lam = scipy.linalg.eigvalsh((inner + inner.T) / 2)
        scale = max(float(np.max(np.abs(lam))), 1e-300)
        if lam.min() < -1e-6 * scale or lam1.min() < -1e-6 * max(float(np.max(np.abs(lam1))), 1e-300):
            raise ValueError(
                "frechet_distance: a covariance is not positive semi-definite (negative eigenvalues); "
                "pass covariances of real feature sets"
            )
        tr_covmean = float(np.sqrt(np.clip(lam, 0, None)).sum())
        return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    if method != "sqrtm":
        raise ValueError(f"frechet_distance: method={method!r}; use 'eigh' or 'sqrtm'")
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        max_imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=imag_atol):
            raise ValueError(
                f"frechet_distance: the matrix square root has an imaginary component {max_imag:.3g} "
                "on its diagonal; the covariances are badly conditioned (too few samples for the "
                "feature dimension?)"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between two feature sets (N1, D) and (N2, D)."""
    mu1, s1 = feature_stats(features1)
    mu2, s2 = feature_stats(features2)
    return frechet_distance(mu1, s1, mu2, s2)
