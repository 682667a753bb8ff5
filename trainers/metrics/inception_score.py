"""Inception Score: exp(E_x KL(p(y|x) || p(y))), averaged over splits (mean ± std).

Computed in float64 from logits (the classifier's unnormalised outputs). Splits are contiguous
slices of the sample order (samples are i.i.d. by construction, so no shuffle is needed); the std
is the population std over splits, as the improved-GAN reference code reports it.
"""

from __future__ import annotations

import numpy as np


def _log_softmax(x: np.ndarray) -> np.ndarray:
    """log p(y|x) per row from float64 logits, shifted by the row maximum for stability."""
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def inception_score(
    logits: np.ndarray,  # (N, K) unnormalised class scores
    *,
    splits: int = 10,  # number of contiguous splits
) -> tuple[float, float]:
    """Return (mean, std) of the per-split scores."""
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"inception_score needs (N, K) logits, got shape {x.shape}")
    n = x.shape[0]
    if splits < 1 or n < splits:
        raise ValueError(
            f"inception_score: {n} samples cannot be cut into {splits} splits; give at least {splits} samples"
        )
    log_p = _log_softmax(x)  # (N, K)
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        p_s, log_p_s = p[lo:hi], log_p[lo:hi]
        log_marginal = np.log(p_s.mean(axis=0, keepdims=True))  # (1, K)
        kl = (p_s * (log_p_s - log_marginal)).sum(axis=1)  # (n_split,)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def score_parts(
    logits: np.ndarray,  # (N, K) unnormalised class scores
    *,
    confident: float = 0.9,  # a sample counts as confidently classified at this top-class probability
) -> dict:
    """Why an Inception Score is what it is, over all N samples at once (no splits):
    IS ~ exp(H(y) - E_x[H(y|x)]). ``h_marginal`` (of at most ln K) falls when classes are unevenly
    drawn or missing, ``h_conditional`` rises when samples are ambiguous to the classifier;
    ``class_counts`` is the histogram of the classifier's labels."""
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"score_parts needs (N, K) logits with N >= 1, got shape {x.shape}")
    log_p = _log_softmax(x)
    p = np.exp(log_p)
    marginal = p.mean(axis=0)
    h_marginal = float(-(marginal * np.log(np.where(marginal > 0, marginal, 1.0))).sum())
    h_conditional = float(-(p * log_p).sum(axis=1).mean())
    return {
        "class_counts": np.bincount(p.argmax(axis=1), minlength=x.shape[1]).tolist(),
        "h_marginal": h_marginal,
        "h_max": float(np.log(x.shape[1])),
        "h_conditional": h_conditional,
        "is_all": float(np.exp(h_marginal - h_conditional)),
        "confident_share": float((p.max(axis=1) >= confident).mean()),
        "confident_at": confident,
    }
