"""`eval --protocol official`: the official TransGAN evaluation beside ours, tested with stand-ins.

The Inception weights and the official statistics files (fid_stat/*.npz) cannot be downloaded
here. The weights are torch-fidelity's architecture with random weights (as in
test_metrics_inception.py); the statistics file is a random (mu, sigma) in the official format.
The numbers are a CODE-PATH CHECK ONLY: the protocol records weights_match_expected=false.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_metrics_inception import write_random_inception_weights
from test_official import our_models, run_import

from transgan_lab.platform.cli import main
from transgan_lab.platform.official import print_side_by_side
from transgan_lab.trainers.metrics import MetricsUnavailable, feature_stats, frechet_distance, inception_score
from transgan_lab.trainers.metrics import inception as inc
from transgan_lab.trainers.metrics.official import PROTOCOLS, protocol_for
from transgan_lab.trainers.metrics.sampling import QUANTISATION, generate


def stand_in_stats(path: Path, seed: int = 0) -> Path:
    """'mu' (2048,) and 'sigma' (2048, 2048), well conditioned, as the official np.savez files hold them."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(2048, 64)) * 0.1
    np.savez(path, mu=rng.normal(size=2048) * 0.05, sigma=a @ a.T + 1e-2 * np.eye(2048))
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The v2 fixture imported with a 12-image folder as its training data (our reference set)."""
    tmp = tmp_path_factory.mktemp("official-eval")
    images = tmp / "imgs"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(images / f"{i:02d}.png")
    weights = tmp / "weights" / inc.expected_weights()[0]
    write_random_inception_weights(weights)
    rc, out = run_import(
        tmp,
        "v2_cifar",
        None,
        "--set",
        "data.dataset=folder",
        "--set",
        f"data.root={images}",
        "--set",
        "eval.metrics=[fid,is,kid]",
        "--set",
        "eval.primary=fid",
        "--set",
        f"eval.cache_dir={tmp / 'cache'}",
    )
    assert rc == 0
    return {"out": out, "weights": weights, "stats": stand_in_stats(tmp / "fid_stats_cifar10_train.npz"), "tmp": tmp}


def test_protocol_table():
    p = protocol_for("cifar10-v2")
    assert (p.n_fake, p.stats_file, p.quantisation) == (50_000, "fid_stats_cifar10_train.npz", QUANTISATION)
    assert "sqrtm" in p.fid_sqrt and "6b85440" in p.name
    assert PROTOCOLS["cifar10-xl"].n_fake == 20_000 and PROTOCOLS["stl10-xl"].stats_file.startswith(
        "stl10_train_unlabeled"
    )
    with pytest.raises(MetricsUnavailable, match="STL-10 48x48 statistics"):
        protocol_for("celeba64-xl")
    with pytest.raises(MetricsUnavailable, match="no official TransGAN counterpart"):
        protocol_for("digits-tiny")


def test_missing_stats_file_says_what_to_put_where(imported, capsys):
    rc = main(["eval", str(imported["out"]), "--protocol", "official", "--n", "20"])
    err = capsys.readouterr().err
    expected = imported["tmp"] / "cache" / "official" / "fid_stats_cifar10_train.npz"
    assert rc == 2 and "Traceback" not in err and err.strip().count("\n") == 0, err
    assert "fid_stat/fid_stats_cifar10_train.npz" in err and str(expected) in err and "--official-stats" in err
    bad = imported["tmp"] / "bad.npz"
    np.savez(bad, mu=np.zeros(3), sigma=np.eye(3))
    rc = main(["eval", str(imported["out"]), "--protocol", "official", "--official-stats", str(bad)])
    assert rc == 2 and "are not pool_3 statistics" in capsys.readouterr().err


@pytest.fixture(scope="module")
def both(imported):
    """One `eval --protocol official --json` run (the official FID's sqrtm takes a minute on 2 cores)."""
    args = [
        "eval",
        str(imported["out"]),
        "--protocol",
        "official",
        "--n",
        "20",
        "--batch",
        "7",
        "--json",
        "--inception-weights",
        str(imported["weights"]),
        "--official-stats",
        str(imported["stats"]),
    ]
    out = io.StringIO()
    with pytest.warns(UserWarning, match="weights_match_expected=false"), contextlib.redirect_stdout(out):
        assert main(args) == 0
    return json.loads(out.getvalue())


@pytest.mark.slow
def test_eval_reports_both_protocols(both):
    assert set(both["metrics"]) == {"fid", "is", "kid"} and set(both["official"]) == {"fid", "is"}
    ours, official = both["metrics"]["fid"]["protocol"], both["official"]["fid"]["protocol"]
    assert ours["reference_split"] == "train (all 12 of 12 images)" and ours["n_fake"] == 20
    assert official["protocol"] == "official" and official["n_fake"] == 20
    assert official["stats_file"] == "fid_stats_cifar10_train.npz" and "sqrtm" in official["fid_sqrt"]
    assert "n_fake 20 instead of the official 50000" in official["deviations"]
    assert official["weights_match_expected"] is False and official["quantisation"] == QUANTISATION
    # the same 20 samples (same seed, same quantisation): IS agrees; FID differs by its reference
    assert both["official"]["is"]["value"] == pytest.approx(both["metrics"]["is"]["value"], rel=1e-9)
    assert both["metrics"]["fid"]["value"] != both["official"]["fid"]["value"]


@pytest.mark.slow
def test_official_values_equal_an_independent_computation(imported, both):
    cfg, models, _, _ = our_models(imported["out"])
    net = inc.load_extractor(imported["weights"])
    with torch.no_grad():
        pool, logits = net(generate(models["G_ema"], 20, cfg.eval.seed, 20))  # uint8 as the official test.py
    with np.load(imported["stats"]) as z:  # eigh here, sqrtm there: the two agree to ~1e-8 on these matrices
        fid = frechet_distance(z["mu"], z["sigma"], *feature_stats(pool.double().numpy()))
    assert both["official"]["fid"]["value"] == pytest.approx(fid, rel=1e-6)
    assert both["official"]["is"]["value"] == pytest.approx(inception_score(logits.numpy(), splits=10)[0], rel=1e-6)
    sha = hashlib.sha256(imported["stats"].read_bytes()).hexdigest()
    assert both["official"]["fid"]["protocol"]["stats_sha256"] == sha


@pytest.mark.slow
def test_side_by_side_text(both, capsys):
    print_side_by_side(both["metrics"], both["official"], protocol=protocol_for("cifar10-v2"), skipped=["kid"])
    lines = capsys.readouterr().out.splitlines()
    fid = next(line.split() for line in lines if line.split()[:1] == ["fid"])
    assert float(fid[1]) == pytest.approx(both["metrics"]["fid"]["value"], abs=1e-4)
    assert float(fid[2]) == pytest.approx(both["official"]["fid"]["value"], abs=1e-4)
    assert next(line.split() for line in lines if line.split()[:1] == ["kid"])[2] == "n/a"
    text = "\n".join(lines)
    assert "fid_stats_cifar10_train.npz" in text and "not in the official protocol: kid" in text
    assert "n_fake 20 instead of the official 50000" in text and "train (all 12 of 12 images)" in text
