"""Kernel Inception Distance: unbiased MMD² with the cubic polynomial kernel, over random subsets.

k(x, y) = (x·y / D + 1)^3. For subsets X (m) and Y (n):
MMD²_u = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (n(n-1)) - 2 sum_{i,j} k(x_i, y_j) / (mn)
The reported value is the mean over subsets (and the std), computed in float64.
"""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray, *, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """(x·y / D + coef0)^degree for rows of x (M, D) and y (N, D) -> (M, N)."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, *, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD² between feature sets x (m, D) and y (n, D)."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"mmd2_unbiased needs at least 2 samples per set, got {m} and {n}")
    k_xx = polynomial_kernel(x, x, degree=degree, coef0=coef0)
    k_yy = polynomial_kernel(y, y, degree=degree, coef0=coef0)
    k_xy = polynomial_kernel(x, y, degree=degree, coef0=coef0)
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float(sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * k_xy.sum() / (m * n))


def kernel_inception_distance(
    features_real: np.ndarray,  # (N_real, D)
    features_fake: np.ndarray,  # (N_fake, D)
    *,
    subsets: int = 100,  # number of random subsets
    subset_size: int = 1000,  # samples per subset (capped at the smaller set size)
    seed: int = 0,  # subset selection RNG
    degree: int = 3,  # polynomial kernel degree
    coef0: float = 1.0,  # polynomial kernel offset
) -> tuple[float, float, int]:
    """Return (mean, std, subset_size actually used) of MMD² over random subsets."""
    xr = np.asarray(features_real, dtype=np.float64)
    xf = np.asarray(features_fake, dtype=np.float64)
    size = min(subset_size, xr.shape[0], xf.shape[0])
    if size < 2:
        raise ValueError(
            f"kernel_inception_distance needs at least 2 samples per set, got {xr.shape[0]} and {xf.shape[0]}"
        )
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        r = xr[rng.choice(xr.shape[0], size, replace=False)]
        f = xf[rng.choice(xf.shape[0], size, replace=False)]
        values.append(mmd2_unbiased(r, f, degree=degree, coef0=coef0))
    return float(np.mean(values)), float(np.std(values)), size
