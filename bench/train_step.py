"""Full D+G training-step throughput: baseline vs fast path, side by side in one process.

    python bench/train_step.py [--presets digits-tiny,cifar10-s] [--rounds 3] [--steps 2]

Modes, all on the same model and data:
  baseline     the faithful reference: naive attention (materialised softmax(QK^T)V), fp32, eager,
               EMA copied to the host every G step (what the official code does); benchmark-only
  fp32         fused SDPA, fp32, eager, on-device foreach EMA
  fp32+compile fp32 with torch.compile of G and D (the GP pass stays eager: no double backward
               through compiled graphs); the fast path where bf16 is not native (precision=auto)
  bf16         fused SDPA, bf16 autocast, eager
  bf16+compile bf16 with torch.compile of G and D
Modes are interleaved round by round (this machine is shared and noisy) and each mode's median
img/s over rounds is reported with its ratio to the baseline. img/s counts real images shown to D.
CIFAR-sized presets use synthetic images of the right shape (the dataset cannot be downloaded here).
Writes JSON to bench/results/train_step_<device>.json with machine, versions and settings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from transgan_lab.trainers import step as step_module
from transgan_lab.trainers.data.base import ImageDataset
from transgan_lab.trainers.models import attention
from transgan_lab.trainers.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]

MODES = ("baseline", "fp32", "fp32+compile", "bf16", "bf16+compile")
# On a CPU the CIFAR-sized step runs at a quarter of the paper's batch (same model, same n_critic),
# so that the bf16 modes -- emulated, and 15-19x slower than fp32, on CPUs without native bf16 --
# finish (a bf16 cifar10-s step takes over four minutes there).
CPU_OVERRIDES = {"cifar10-s": ["optim.batch_d=8", "optim.batch_g=16"]}


class SyntheticImages(ImageDataset):
    """Fixed random images in [-1, 1] (uint8-quantised like real data), held in memory; a dataset as
    the engine expects one (``get_batch`` also serves the pixel clusters' k-means)."""

    name = "synthetic"

    def __init__(self, n: int, channels: int, resolution: int):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, channels, resolution, resolution), generator=g, dtype=torch.uint8)
        self.info = {"name": "synthetic", "n": n}

    def __len__(self) -> int:
        return len(self.images)


def naive_sdpa(q, k, v, attn_bias):
    """The official code's attention: q k^T * scale -> softmax -> @ v, all materialised in fp32."""
    q, k, v = q.float(), k.float(), v.float()
    logits = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if attn_bias is not None:
        logits = logits + attn_bias.float()
    return logits.softmax(-1) @ v


def host_ema(G_ema, G, beta):
    """EMA with a host-side copy of every parameter per G step, as the official code keeps it."""
    with torch.no_grad():
        for p_ema, p in zip(G_ema.parameters(), G.parameters()):
            host = p.detach().to("cpu", copy=True)
            p_ema.copy_((p_ema.cpu() * beta + host * (1 - beta)).to(p_ema.device))


@contextlib.contextmanager
def mode_patches(mode: str):
    saved = (attention.sdpa, step_module.update_ema)
    if mode == "baseline":
        attention.sdpa = naive_sdpa
        step_module.update_ema = host_ema  # the name trainers/step.py calls
    try:
        yield
    finally:
        attention.sdpa, step_module.update_ema = saved


def new_trainer(cfg, device, out: Path, *, synthetic: bool = True):
    """A training engine on in-memory synthetic images of the preset's shape (no dataset needed),
    or on the preset's own dataset with ``synthetic=False``."""
    data = (
        SyntheticImages(max(1024, 4 * cfg.optim.batch_d), cfg.data.channels, cfg.data.resolution) if synthetic else None
    )
    return Trainer(cfg, out_dir=out, device=device, dataset=data)


def make_trainer(cfg, mode: str, out: Path, device: str):
    cfg = cfg.model_copy(deep=True)
    cfg.train.precision = "bf16" if mode.startswith("bf16") else "fp32"
    cfg.train.compile = mode.endswith("compile")
    return new_trainer(cfg, device, out / mode, synthetic=cfg.data.dataset != "digits")  # digits: embedded, real


def time_steps(t, mode: str, steps: int) -> float:
    acc: dict = {}
    with mode_patches(mode):
        if t.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            t.step(acc)
        if acc:
            torch.stack([torch.as_tensor(v) for v in acc.values()]).sum().item()  # wait for the device
        if t.device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench_preset(preset: str, *, rounds: int, steps: int, warmup: int, modes, device: str, overrides) -> dict:
    from transgan_lab.platform.config import load_config

    if device == "cpu":
        overrides = CPU_OVERRIDES.get(preset, []) + list(overrides)
    cfg = load_config(preset, overrides)
    img_per_step = cfg.optim.n_critic * cfg.optim.batch_d
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {m: make_trainer(cfg, m, Path(tmp), device) for m in modes}
        for m, t in trainers.items():  # warm-up (and compilation) outside the timed rounds
            time_steps(t, m, warmup)
        times = {m: [] for m in modes}
        for _ in range(rounds):
            for m, t in trainers.items():
                times[m].append(time_steps(t, m, steps))
        for m in modes:
            med = statistics.median(times[m])
            results[m] = {"img_per_s": img_per_step * steps / med, "sec_per_step": med / steps, "rounds_s": times[m]}
    base = results.get("baseline", {}).get("img_per_s")
    for m in modes:
        results[m]["speedup_vs_baseline"] = results[m]["img_per_s"] / base if base else None
    return {
        "preset": preset,
        "overrides": list(overrides),
        "batch_d": cfg.optim.batch_d,
        "batch_g": cfg.optim.batch_g,
        "n_critic": cfg.optim.n_critic,
        "img_per_step": img_per_step,
        "modes": results,
    }


def matmul_gflops(device: str, n: int = 1024, reps: int = 5, dtypes=("fp32", "bf16")) -> dict:
    """This device's measured matmul rate per precision (GFLOP/s): what bounds each precision's step."""
    out = {}
    for name in dtypes:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[name]
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out[name] = 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9
    return out


def machine() -> dict:
    info = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="digits-tiny,cifar10-s")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2, help="steps per timed round")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override for every preset")
    ap.add_argument("--out", help="JSON path (default bench/results/train_step_<device>.json)")
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    report = {
        "benchmark": "train_step",
        "machine": machine(),
        "settings": vars(args),
        "matmul_gflops": matmul_gflops(args.device),
        "presets": [],
    }
    print("matmul GFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in report["matmul_gflops"].items()), flush=True)
    out = Path(
        args.out
        or REPO / "bench" / "results" / f"train_step_{'cuda' if args.device.startswith('cuda') else 'cpu'}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    for preset in args.presets.split(","):
        r = bench_preset(
            preset,
            rounds=args.rounds,
            steps=args.steps,
            warmup=args.warmup,
            modes=modes,
            device=args.device,
            overrides=args.overrides,
        )
        report["presets"].append(r)
        out.write_text(json.dumps(report, indent=1))  # after every preset: an interrupted run keeps what it measured
        for m, v in r["modes"].items():
            sp = v["speedup_vs_baseline"]
            print(
                f"{preset:>12} {m:>13}: {v['img_per_s']:8.1f} img/s  {v['sec_per_step']:.3f} s/step"
                + (f"  x{sp:.2f} vs baseline" if sp else ""),
                flush=True,
            )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
