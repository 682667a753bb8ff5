"""The offline digits metric and the sampling helpers, on the real embedded digits data."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import TinyG

from transgan_lab.trainers.data import build_dataset
from transgan_lab.trainers.metrics import MetricsUnavailable, evaluate, sampling


class RealDigitsG(torch.nn.Module):
    """Returns real training digits picked by a hash of z: a 'perfect' generator for the metric."""

    def __init__(self, data_cfg):
        super().__init__()
        self.latent_dim = 8
        self.register_buffer("images", build_dataset(data_cfg).get_batch(range(1797)))

    def forward(self, z):
        idx = (z[:, 0].abs() * 1e6).long() % self.images.shape[0]
        return self.images[idx]


def digits_cfg(channels=1, **eval_kw):
    ns = types.SimpleNamespace
    ev = dict(
        metrics=["digits_fid", "digits_is"],
        primary="digits_fid",
        n_fake=1000,
        batch=250,
        seed=0,
        inception_weights=None,
        cache_dir=None,
    )  # cache: $TRANSGAN_LAB_CACHE (session scratch, conftest)
    ev.update(eval_kw)
    return ns(data=ns(dataset="digits", root=None, resolution=16, channels=channels, upscale="bilinear"), eval=ns(**ev))


def test_batch_size_independence_and_protocol():
    cfg = digits_cfg()
    a = evaluate(TinyG(), cfg, batch=50)
    b = evaluate(TinyG(), cfg, batch=500)
    for m in ("digits_fid", "digits_is"):
        assert b[m]["value"] == pytest.approx(a[m]["value"], rel=1e-4)
    assert b["digits_fid"]["info"]["classifier_cache_hit"] is True
    assert b["digits_fid"]["info"]["reference_cache_hit"] is True
    p = a["digits_fid"]["protocol"]
    assert p["n_real"] == 1797 and p["n_fake"] == 1000 and p["reference_split"] == "train (all 1797 of 1797 images)"
    assert len(p["classifier_sha256"]) == 64 and p["classifier_holdout_accuracy"] > 0.95
    assert p["versions"]["torch"] == torch.__version__ and p["data"]["upscale"] == "bilinear"
    assert a["digits_fid"]["protocol"]["classifier_sha256"] == b["digits_is"]["protocol"]["classifier_sha256"]
    # names never say fid/is alone
    assert set(a) == {"digits_fid", "digits_is"} and a["digits_fid"]["protocol"]["metric"] == "digits_fid"


def test_metric_separates_real_digits_from_noise():
    cfg = digits_cfg(n_fake=1797)
    real = evaluate(RealDigitsG(cfg.data), cfg)
    noise = evaluate(TinyG(), cfg)
    # real digits resampled with replacement: near the real-vs-real floor (~10 at this n); noise: thousands
    assert real["digits_fid"]["value"] < 60, real["digits_fid"]["value"]
    assert noise["digits_fid"]["value"] > 1000, noise["digits_fid"]["value"]
    assert real["digits_is"]["value"] > 8.5 and noise["digits_is"]["value"] < 5
    # what the score is made of: real digits are all ten classes, near-evenly, and unambiguous
    rp, npart = real["digits_is"]["info"]["parts"], noise["digits_is"]["info"]["parts"]
    assert sum(rp["class_counts"]) == 1797 and min(rp["class_counts"]) > 100
    assert rp["h_max"] - rp["h_marginal"] < 0.02 and rp["h_conditional"] < 0.1 and rp["confident_share"] > 0.9
    assert npart["h_conditional"] > 0.4 and npart["confident_share"] < 0.5
    assert rp["is_all"] == pytest.approx(real["digits_is"]["value"], rel=0.05)  # one split vs the mean of 10


def test_rgb_generator_is_scored_as_grey():
    cfg1, cfg3 = digits_cfg(channels=1, n_fake=200), digits_cfg(channels=3, n_fake=200)

    class Rgb(TinyG):
        def forward(self, z):
            return super().forward(z).repeat(1, 3, 1, 1)  # the same grey image on three channels

    a, b = evaluate(TinyG(), cfg1), evaluate(Rgb(), cfg3)
    assert b["digits_fid"]["value"] == pytest.approx(a["digits_fid"]["value"], rel=1e-6)
    assert b["digits_fid"]["protocol"]["classifier_sha256"] == a["digits_fid"]["protocol"]["classifier_sha256"]


def test_digits_metric_refuses_other_datasets_and_wrong_shapes():
    cfg = digits_cfg()
    cfg.data.dataset = "cifar10"
    with pytest.raises(MetricsUnavailable, match="only for data.dataset='digits'"):
        evaluate(TinyG(), cfg)
    with pytest.raises(MetricsUnavailable, match="does not match data"):
        evaluate(TinyG(resolution=32), digits_cfg(n_fake=10))


def test_latents_depend_only_on_seed_and_index():
    full = sampling.latents(700, 5, seed=11)
    assert torch.equal(sampling.latents_range(100, 600, 5, seed=11), full[100:600])
    assert torch.equal(sampling.latents_range(255, 257, 5, seed=11), full[255:257])
    assert not torch.equal(sampling.latents(10, 5, seed=12), full[:10])
    assert sampling.latents(0, 5, 1).shape == (0, 5)


def test_write_samples_pngs_grid_interpolation(tmp_path):
    G = TinyG()
    paths = sampling.write_samples(G, n=5, seed=4, out_dir=tmp_path / "a", grid=True, interpolate_k=6)
    again = sampling.write_samples(G, n=5, seed=4, out_dir=tmp_path / "b")
    names = [p.rsplit("/", 1)[-1] for p in paths]
    assert names[:5] == [f"sample-{i:05d}.png" for i in range(5)] and names[5:] == ["grid.png", "interpolation.png"]
    first = np.asarray(Image.open(paths[0]))
    assert first.shape == (16, 16) and first.dtype == np.uint8
    assert np.array_equal(first, np.asarray(Image.open(again[0])))  # same seed, same image
    expected = sampling.to_uint8(G(sampling.latents(1, 8, 4)))[0, 0].numpy()
    assert np.array_equal(first, expected)
    grid = np.asarray(Image.open(paths[5]))
    cell = 3 * 16 + 2  # each 16 px sample drawn 3x (>= sampling.GRID_MIN_PX), 2 px padding
    assert grid.shape == (2 + 2 * cell, 2 + 3 * cell, 3)  # 5 images, 3 per row; grey tiled as RGB
    assert np.array_equal(grid[2:50, 2:50, 0], first.repeat(3, axis=0).repeat(3, axis=1))  # nearest, whole factor
    inter = np.asarray(Image.open(paths[6]))
    assert inter.shape == (2 + 4 * cell, 2 + 6 * cell, 3)  # 4 paths x 6 points
    ends = sampling.interpolate(G, 6, 4)
    z = sampling.latents(8, 8, 4)
    torch.testing.assert_close(ends[0], G(z[:1])[0], atol=1e-5, rtol=0)  # path 0 starts at z_0
    torch.testing.assert_close(ends[5], G(z[1:2])[0], atol=1e-5, rtol=0)  # and ends at z_1
