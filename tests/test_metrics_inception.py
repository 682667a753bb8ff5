"""The standard (TF-Inception via torch-fidelity) path, end to end, with a RANDOM weights file.

The real weights cannot be downloaded here. The test builds torch-fidelity's own network
architecture without downloading anything, saves its randomly initialised state dict under the
file name torch-fidelity expects, and runs evaluate() through every step: load by path, quantise,
TF-exact resize, features, reference-statistics cache, FID/IS/KID. The numbers are a CODE-PATH
CHECK ONLY; they mean nothing about image quality (the protocol records weights_match_expected=false).
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import TinyG

from transgan_lab.trainers.metrics import MetricsUnavailable, evaluate, frechet_distance, inception_score
from transgan_lab.trainers.metrics import inception as inc
from transgan_lab.trainers.metrics.fid import feature_stats
from transgan_lab.trainers.metrics.sampling import generate


def _cfg(tmp_path, **eval_kw):
    ns = types.SimpleNamespace
    ev = dict(
        metrics=["fid", "is", "kid"],
        primary="fid",
        n_fake=10,
        batch=3,
        seed=3,
        inception_weights=None,
        cache_dir=str(tmp_path / "cache"),
    )
    ev.update(eval_kw)
    return ns(data=ns(dataset="digits", root=None, resolution=16, channels=1, upscale="bilinear"), eval=ns(**ev))


def write_random_inception_weights(path: Path) -> None:
    """torch-fidelity's FeatureExtractorInceptionV3 architecture, randomly initialised, saved to `path`.

    Its constructor builds the layers and then loads weights; the URL loader is replaced by one that
    stops the constructor right there, so nothing is downloaded and the built layers remain.
    """
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    class _Built(Exception):
        pass

    def _stop(*args, **kwargs):
        raise _Built

    net = fe.FeatureExtractorInceptionV3.__new__(fe.FeatureExtractorInceptionV3)
    original = fe.load_state_dict_from_url
    fe.load_state_dict_from_url = _stop
    try:
        torch.manual_seed(0)
        fe.FeatureExtractorInceptionV3.__init__(net, inc.EXTRACTOR_NAME, ["2048", "logits_unbiased"])
    except _Built:
        pass
    finally:
        fe.load_state_dict_from_url = original
    # PyTorch's default conv init shrinks activations ~10x per layer over Inception's depth (pool
    # features ~1e-8); He-normal keeps them O(1) so the statistics are well conditioned.
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    torch.nn.init.normal_(net.fc.weight, std=0.2)  # logits spread by a few units, so IS is not trivially 1
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)


def test_missing_weights_error_names_file_hash_and_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    name, sha_prefix, _ = inc.expected_weights()
    assert name == "weights-inception-2015-12-05-6726825d.pth" and sha_prefix == "6726825d"
    with pytest.raises(MetricsUnavailable) as e:
        evaluate(TinyG(), _cfg(tmp_path), metrics=["fid"])
    msg = str(e.value)
    assert name in msg and sha_prefix in msg
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints" / name) in msg and "eval.inception_weights" in msg
    # a configured path that does not exist is named as such
    with pytest.raises(MetricsUnavailable, match="configured path eval.inception_weights='/nowhere/w.pth'"):
        evaluate(TinyG(), _cfg(tmp_path, inception_weights="/nowhere/w.pth"), metrics=["is"])
    # unknown metric names list the known ones
    with pytest.raises(MetricsUnavailable, match="known metrics: \\['is', 'fid', 'kid', 'digits_is', 'digits_fid'\\]"):
        evaluate(TinyG(), _cfg(tmp_path), metrics=["fid50k"])


@pytest.mark.slow
def test_standard_path_end_to_end_with_random_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    weights = inc.default_weights_path()  # $TORCH_HOME/hub/checkpoints/<expected name>
    write_random_inception_weights(weights)
    cfg = _cfg(tmp_path)
    G = TinyG()
    n_real = 4

    with pytest.warns(UserWarning, match="weights_match_expected=false"):
        first = evaluate(G, cfg, n_real=n_real)
    # cache reused; samples 0..1 are the same z as in the first call (index-seeded latents)
    second = evaluate(G, cfg, metrics=["fid", "kid"], n_real=n_real, n_fake=2, batch=1)

    assert first["fid"]["info"]["reference_cache_hit"] is False
    assert second["fid"]["info"]["reference_cache_hit"] is True
    assert second["kid"]["info"]["reference_cache_hit"] is True
    for m in ("fid", "is", "kid"):
        assert np.isfinite(first[m]["value"])
    proto = first["fid"]["protocol"]
    assert proto["weights_sha256"] == inc.file_sha256(weights) and proto["weights_match_expected"] is False
    assert proto["weights_file"] == weights.name and proto["n_real"] == n_real and proto["n_fake"] == 10
    assert proto["reference_split"] == "train (first 4 of 1797 images)"
    assert "tensorflow1x" in proto["resize"] and proto["quantisation"].startswith("uint8")
    assert proto["versions"]["torch_fidelity"] == "0.4.0" and proto["seed"] == 3
    assert first["kid"]["protocol"]["subset_size"] == 4 and first["is"]["protocol"]["splits"] == 10
    assert len(list((tmp_path / "cache").glob("ref-inception-digits-16px-*.npz"))) == 1

    # Independent wiring check: torch-fidelity's network (the instance loaded from the file above)
    # called directly on uint8 RGB images quantised and replicated here by hand.
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from transgan_lab.trainers.data import build_dataset
    from transgan_lab.trainers.metrics.sampling import to_uint8

    net = inc.load_extractor(weights)
    assert type(net) is FeatureExtractorInceptionV3
    with torch.no_grad():
        real_u8 = to_uint8(build_dataset(cfg.data).get_batch(range(n_real))).repeat(1, 3, 1, 1)
        fake_u8 = generate(G, 10, cfg.eval.seed, 10).repeat(1, 3, 1, 1)
        real_pool, _ = net(real_u8)
        fake_pool, fake_logits = net(fake_u8)
    ref_stats = feature_stats(real_pool.double().numpy())
    fid = frechet_distance(*ref_stats, *feature_stats(fake_pool.double().numpy()))
    assert first["fid"]["value"] == pytest.approx(fid, rel=1e-4)
    fid2 = frechet_distance(*ref_stats, *feature_stats(fake_pool[:2].double().numpy()))
    assert second["fid"]["value"] == pytest.approx(fid2, rel=1e-4)  # from the cached reference
    # 10 fakes in 10 splits: one image per split, so IS is exactly 1 by definition; the logits must
    # still differ between images (IS over one split of all 10 > 1), or the check would test nothing
    assert first["is"]["value"] == pytest.approx(1.0, abs=1e-9)
    assert (
        inception_score(fake_logits.numpy(), splits=1)[0] > 1.0
    )  # random weights: nearly uniform predictions, so barely above 1
    assert first["is"]["value"] == pytest.approx(inception_score(fake_logits.numpy(), splits=10)[0], rel=1e-4)

    with capsys.disabled():
        print("\nCODE-PATH CHECK ONLY (randomly initialised Inception weights; not image quality):")
        for m in ("fid", "is", "kid"):
            print(f"  {m:4s} n_real=4 n_fake=10: {first[m]['value']:.6g}")
        print(f"  fid  n_real=4 n_fake=2 (cached reference): {second['fid']['value']:.6g}")
