"""FD / IS / KID against independent computations (numbers, not smoke)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from transgan_lab.trainers.metrics import (
    feature_stats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    mmd2_unbiased,
    score_parts,
)


def _random_gaussian_stats(rng, d):
    a = rng.standard_normal((d, d))
    b = rng.standard_normal((d, d))
    return (
        rng.standard_normal(d),
        a @ a.T / d + 0.1 * np.eye(d),
        rng.standard_normal(d) + 0.5,
        b @ b.T / d + 0.1 * np.eye(d),
    )


@pytest.mark.parametrize("d", [1, 8, 64, 160])
def test_frechet_distance_matches_independent_symmetric_route(d):
    rng = np.random.default_rng(d)
    mu1, s1, mu2, s2 = _random_gaussian_stats(rng, d)
    # Independent route (the TTUR reference): scipy.linalg.sqrtm of the non-symmetric product S1 S2.
    tr_sqrt = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)
    got = frechet_distance(mu1, s1, mu2, s2)
    assert abs(got - expected) / abs(expected) < 1e-6, (got, expected)
    assert frechet_distance(mu1, s1, mu2, s2, method="sqrtm") == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_low_rank_covariances_agree():
    # fewer samples than dimensions (singular covariances), as in tiny evaluations
    rng = np.random.default_rng(5)
    a, b = np.abs(rng.standard_normal((6, 40))), np.abs(rng.standard_normal((9, 40))) + 0.1
    sa, sb = feature_stats(a), feature_stats(b)
    assert frechet_distance(*sa, *sb) == pytest.approx(frechet_distance(*sa, *sb, method="sqrtm"), rel=1e-6)


def test_frechet_distance_closed_forms():
    # 1-D Gaussians: (m1 - m2)^2 + (sd1 - sd2)^2
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0, rel=1e-12)
    # identical distributions -> 0; commuting diagonal covariances -> sum (sqrt a - sqrt b)^2
    mu = np.arange(5.0)
    assert abs(frechet_distance(mu, np.eye(5), mu, np.eye(5))) < 1e-10
    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 1.0, 9.0])
    expected = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_from_samples_and_bad_shapes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 3))
    y = rng.standard_normal((4000, 3)) * 2.0 + 1.0
    mu1, s1 = feature_stats(x)
    assert s1.dtype == np.float64 and s1.shape == (3, 3)
    np.testing.assert_allclose(s1, np.cov(x.T), rtol=1e-12)
    # population value: 3 * 1^2 + 3 * (1 - 2)^2 = 6; sampling error at n=4000 is a few percent
    assert frechet_distance(mu1, s1, *feature_stats(y)) == pytest.approx(6.0, rel=0.1)
    with pytest.raises(ValueError, match="shapes do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_inception_score_matches_hand_computation():
    logits = np.array(
        [[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0], [1.0, -2.0, 0.0], [0.0, 0.0, 0.0], [4.0, 1.0, 1.0]]
    )
    # by hand, 2 splits of 3 rows: softmax, marginal, mean KL, exp
    scores = []
    for rows in (logits[:3], logits[3:]):
        p = [[math.exp(v) / sum(math.exp(u) for u in row) for v in row] for row in rows]
        marg = [sum(pi[k] for pi in p) / len(p) for k in range(3)]
        kl = [sum(pi[k] * math.log(pi[k] / marg[k]) for k in range(3)) for pi in p]
        scores.append(math.exp(sum(kl) / len(kl)))
    mean, std = inception_score(logits, splits=2)
    assert mean == pytest.approx(sum(scores) / 2, rel=1e-12)
    assert std == pytest.approx(abs(scores[0] - scores[1]) / 2, rel=1e-9)


def test_inception_score_extremes():
    k = 10
    confident = np.full((100, k), -50.0)
    confident[np.arange(100), np.arange(100) % k] = 50.0  # each split: every class equally often, certain
    mean, std = inception_score(confident, splits=10)
    assert mean == pytest.approx(k, rel=1e-9) and std < 1e-9
    assert inception_score(np.zeros((20, k)), splits=10)[0] == pytest.approx(1.0, abs=1e-12)  # uniform -> 1
    with pytest.raises(ValueError, match="cannot be cut into 10 splits"):
        inception_score(np.zeros((5, k)), splits=10)


def test_score_parts_by_hand_and_against_the_one_split_score():
    logits = np.array(
        [[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0], [1.0, -2.0, 0.0], [0.0, 0.0, 0.0], [4.0, 1.0, 1.0]]
    )
    p = [[math.exp(v) / sum(math.exp(u) for u in row) for v in row] for row in logits]
    marg = [sum(pi[k] for pi in p) / len(p) for k in range(3)]
    h_y = -sum(m * math.log(m) for m in marg)
    h_yx = sum(-sum(v * math.log(v) for v in pi) for pi in p) / len(p)
    parts = score_parts(logits, confident=0.7)
    assert parts["h_marginal"] == pytest.approx(h_y, rel=1e-12) and parts["h_max"] == pytest.approx(math.log(3))
    assert parts["h_conditional"] == pytest.approx(h_yx, rel=1e-12)
    # the uniform row [0, 0, 0] is labelled by argmax's first index, like any tie
    assert parts["class_counts"] == [4, 1, 1]
    assert parts["confident_share"] == pytest.approx(4 / 6) and parts["confident_at"] == 0.7  # rows 0, 2, 3, 5
    # IS over all samples at once = exp(H(y) - E_x H(y|x))
    assert parts["is_all"] == pytest.approx(inception_score(logits, splits=1)[0], rel=1e-12)
    one_class = np.tile([20.0, 0.0, 0.0], (4, 1))  # one class drawn, with certainty
    assert score_parts(one_class)["class_counts"] == [4, 0, 0] and score_parts(one_class)["h_marginal"] < 1e-3
    with pytest.raises(ValueError, match="score_parts needs"):
        score_parts(np.zeros(3))


def test_mmd2_unbiased_matches_double_loop():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((7, 4)), rng.standard_normal((9, 4)) + 0.3
    k = lambda a, b: (a @ b / 4 + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(9)) / (7 * 9)
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_subsets():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((50, 6)), rng.standard_normal((40, 6)) + 1.0
    # a subset as large as the smaller set: for y it is a permutation, so every subset's value equals
    # mmd2 on (that x-subset, y); with x also complete it is exact
    mean, std, size = kernel_inception_distance(x[:40], y, subsets=3, subset_size=1000, seed=0)
    assert size == 40 and mean == pytest.approx(mmd2_unbiased(x[:40], y), rel=1e-9) and std < 1e-9
    # same distribution -> unbiased estimate near 0; shifted -> clearly positive
    same = kernel_inception_distance(
        rng.standard_normal((400, 6)), rng.standard_normal((400, 6)), subsets=20, subset_size=100
    )
    shifted = kernel_inception_distance(x, y, subsets=20, subset_size=30)
    assert abs(same[0]) < 0.05 and shifted[0] > 0.5
