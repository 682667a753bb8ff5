"""bench/time_to_quality.py end to end on a very short run: the curve, the keys the README quotes,
the class histogram, the step's cost and the figures (never its timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import time_to_quality  # bench/ is on pytest's pythonpath (pyproject.toml)

from transgan_lab.platform.config import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_time_to_quality_writes_curve_histogram_cost_and_figures(tmp_path):
    out = tmp_path / "ttq.json"
    cmd = [
        sys.executable,
        str(REPO / "bench" / "time_to_quality.py"),
        "--label",
        "smoke",
        "--out",
        str(out),
        "--set",
        "train.kimg=0.384",
        "--eval-kimg",
        "0.128",
        "--set",
        "eval.n_fake=200",
    ]
    env = {**os.environ, "TRANSGAN_LAB_TTQ_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    run = json.loads(out.read_text())["runs"]["smoke"]
    for key in ("final_digits_fid", "final_digits_is", "train_seconds", "g_updates"):
        assert key in run
    curve = run["curve"]
    o = load_config("digits-tiny").optim
    per_eval = 128 // (o.n_critic * o.batch_d)  # D sees n_critic batches per G update; an evaluation every 128 images
    assert [pt["g_updates"] for pt in curve] == [per_eval, 2 * per_eval, 3 * per_eval]
    assert all(a["train_s"] < b["train_s"] for a, b in zip(curve, curve[1:]))
    assert run["final_digits_fid"] == round(curve[-1]["digits_fid"], 2) > 0 and run["g_updates"] == 3 * per_eval
    hist = run["class_histogram"]
    assert len(hist["counts"]) == 10 and sum(hist["counts"]) == hist["n"] == 2000
    cost = run["step_cost"]
    assert cost["step_gflop"] > 0 and cost["matmul_gflops_fp32"] > 0 and cost["top_ops"]
    assert 0 < sum(o["share"] for o in cost["top_ops"]) <= 1.0 + 1e-6
    assert out.with_suffix(".png").stat().st_size > 0
    assert (tmp_path / "ttq_smoke_samples.png").stat().st_size > 0


def test_calibration_reference_reads_the_committed_calibration():
    ref = time_to_quality.calibration_reference()
    rows = {r["row"]: r for r in json.loads((REPO / "bench/results/metrics_calibration_cpu.json").read_text())["rows"]}
    assert ref["real_vs_real_digits_fid"] == round(rows["real-vs-real halves"]["digits_fid"], 1)
    shuffled = rows["real-all in random order (IS over 20 orders)"]
    assert ref["real_digits_is_random_order"] == round(shuffled["digits_is"], 2)
    # the floors the README quotes: real data scores far above an untrained generator
    assert ref["real_digits_is"] > ref["real_digits_is_random_order"] > 5
    assert ref["untrained_digits_tiny_fid"] > 50 * ref["real_vs_real_digits_fid"]


def test_a_renamed_calibration_row_stops_the_benchmark_before_it_trains(tmp_path, monkeypatch):
    committed = json.loads((REPO / "bench/results/metrics_calibration_cpu.json").read_text())
    for r in committed["rows"]:
        if r["row"] == "real-vs-real halves":
            r["row"] = "real vs real (renamed)"
    broken = tmp_path / "calibration.json"
    broken.write_text(json.dumps(committed))
    monkeypatch.setattr(time_to_quality, "CALIBRATION", broken)
    monkeypatch.setattr(time_to_quality, "train", lambda *a, **k: pytest.fail("trained before reading the calibration"))
    out = tmp_path / "ttq.json"
    with pytest.raises(SystemExit, match=r"real-vs-real halves.*rerun `python bench/metrics_calibration.py`"):
        time_to_quality.main(["--out", str(out), "--set", "train.kimg=0.384"])
    assert not out.exists()
    monkeypatch.setattr(time_to_quality, "CALIBRATION", tmp_path / "absent.json")
    with pytest.raises(SystemExit, match="absent.json is missing"):
        time_to_quality.main(["--out", str(out)])
