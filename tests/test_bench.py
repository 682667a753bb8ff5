"""The benchmarks' correctness side (never their timings): the fast path agrees with the faithful
baseline, and the prepared GPU script and the CPU step benchmark run end to end and write JSON.

`bench/gpu_bench.py --smoke` runs the GPU script's whole code path (matmul peak, agreement,
baseline vs fast and graphed step, FLOP count, generation, memory with and without activation
checkpointing) on this CPU with the tiny preset, and `bench/gpu_profile.py --smoke` the profiling run's; the card
itself is exercised only where a GPU is lent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gpu_bench  # bench/ is on pytest's pythonpath (pyproject.toml)
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str, report: Path) -> dict:
    """Run bench/<script> with these arguments in a fresh process; its JSON report, parsed."""
    p = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args], capture_output=True, text=True, timeout=900, cwd=REPO
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(report.read_text())


@pytest.mark.parametrize("preset", gpu_bench.PRESETS)
def test_bench_configs_are_the_presets_as_resolved_today(preset):
    """The GPU machine has no pydantic/yaml stack, so the benchmarks read presets from
    bench/configs/*.json; a preset edited without refreshing them would benchmark a stale recipe."""
    from transgan_lab.platform.config import load_config

    stored = json.loads((gpu_bench.CONFIGS / f"{preset}.json").read_text())
    assert stored == load_config(preset).model_dump(mode="json"), (
        f"bench/configs/{preset}.json is stale: run `python bench/gpu_bench.py --write-configs`"
    )


@pytest.mark.parametrize("preset", ["digits-tiny", "cifar10-v2"])  # v2: relative bias and window-free 32x32
def test_fast_path_matches_baseline_within_bf16_tolerance(preset):
    """G and D outputs on random latents: naive fp32 attention (the baseline) vs fused SDPA under
    bf16 autocast (the fast path). bf16 keeps 8 bits of mantissa, so a relative error of a few
    1e-3 is expected; it must be non-zero (bf16 really ran) and below the 5e-2 tolerance."""
    from transgan_lab.platform.config import load_config
    from transgan_lab.trainers import hashing

    cfg = hashing.as_namespace(load_config(preset).model_dump(mode="json"))
    r = gpu_bench.output_agreement(cfg, torch.device("cpu"))
    print(preset, r)
    for key in ("g_rel_err", "d_rel_err"):
        assert 0 < r[key] < r["tolerance"], (key, r)


@pytest.mark.slow
def test_gpu_script_smoke_writes_the_full_report(tmp_path):
    rep = run_bench("gpu_bench.py", "--smoke", "--out", str(tmp_path), report=tmp_path / "gpu_bench_cpu.json")
    assert rep["errors"] == {}
    assert rep["smoke"] and rep["card"] == "cpu" and rep["preset"] == "digits-tiny"
    assert rep["matmul_peak_bf16_tflops"] > 0 and rep["step_flops"] > 0
    # train.cuda_graphs on a CPU: the graphed mode ran the eager step and says why
    graphs = rep["graphed"]["cuda_graphs"]
    assert not graphs["captured"] and graphs["replays"] == 0 and "CUDA device" in graphs["fallback"]
    assert rep["best_mode"] in ("bf16_eager", "fast")  # a graphed mode that ran eagerly is no candidate
    assert rep["speedup"] == rep[rep["best_mode"]]["img_per_s"] / rep["baseline"]["img_per_s"]
    for mode in ("baseline", "bf16_eager", "fast", "graphed"):
        # (MFU is against the bf16 matmul peak: on a card it is < 1; on a CPU without native bf16
        # that peak is the emulated rate, so only its sign is checked here)
        assert rep[mode]["img_per_s"] > 0 and rep[mode]["mfu"] > 0
    assert rep["agreement"]["g_rel_err"] < rep["agreement"]["tolerance"]
    assert rep["eval_generation"]["n_images"] == 512
    # the memory step on the tiny preset at its own batch: both variants train (peak memory itself is
    # only measured on a card; the saving is asserted in tests/test_train.py)
    mem = rep["memory"]["digits-tiny"]
    own = gpu_bench.load_cfg("digits-tiny").optim
    assert set(rep["memory"]) == {"digits-tiny"} and (mem["batch_d"], mem["batch_g"]) == (own.batch_d, own.batch_g)
    assert mem["plain"]["ok"] and mem["checkpointed"]["ok"] and mem["plain"]["img_per_s"] > 0


@pytest.mark.slow
def test_train_step_benchmark_writes_json(tmp_path):
    out = tmp_path / "ts.json"
    rep = run_bench(
        "train_step.py",
        "--presets",
        "digits-tiny",
        "--modes",
        "baseline,fp32",
        "--rounds",
        "1",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--set",
        "optim.n_critic=1",
        "--out",
        str(out),
        report=out,
    )
    (preset,) = rep["presets"]
    batch = gpu_bench.load_cfg("digits-tiny").optim.batch_d
    assert preset["preset"] == "digits-tiny" and preset["img_per_step"] == batch  # n_critic 1: one real batch per step
    assert set(preset["modes"]) == {"baseline", "fp32"}
    assert preset["modes"]["baseline"]["speedup_vs_baseline"] == 1.0
    assert all(m["img_per_s"] > 0 for m in preset["modes"].values())
    assert rep["machine"]["cpu_capability"]


@pytest.mark.slow
def test_gpu_profile_smoke_measures_gp_share_batch_scaling_and_top_ops(tmp_path):
    """bench/gpu_profile.py's code path on this CPU (fp32, tiny preset, one D update per step)."""
    rep = run_bench("gpu_profile.py", "--smoke", "--out", str(tmp_path), report=tmp_path / "gpu_profile.json")
    runs = rep["runs"]
    assert set(runs) == {"step", "no_gp", "batch_x4"} and all(r["img_per_s"] > 0 for r in runs.values())
    assert runs["batch_x4"]["batch_d"] == 4 * runs["step"]["batch_d"]
    # the GP share is a timing, so only what it compares is checked: the trainer of the no-GP run
    # had the penalty off, the other one on
    assert runs["no_gp"]["gp_weight"] == 0.0 < runs["step"]["gp_weight"] and "gp_share_of_step" in rep
    names = [op["name"] for op in rep["top_ops_by_self_time"]]
    assert any(n in ("aten::mm", "aten::addmm", "aten::bmm") for n in names[:5]), names[:5]
    # the marked passes were seen, and the GP pass lies inside the D loss
    assert 0 < rep["ranges_us"]["gradient_penalty"] < rep["ranges_us"]["d_loss (incl. GP)"]
    assert "Self CPU" in (tmp_path / "gpu_profile_ops.txt").read_text()
