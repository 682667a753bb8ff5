"""One prepared GPU benchmark: correctness and timing of the v2 CIFAR-10 training step in one go.

    python bench/gpu_bench.py --out $OUT            # on the GPU box (torch only: no ray/mlflow/pydantic)
    python bench/gpu_bench.py --smoke --out /tmp/x  # the same code path on a CPU, tiny sizes
    bash bench/gpu_device_check.sh                  # on a lent card: the CUDA tests, then this script

It imports only `transgan_lab.trainers` (torch alone) and reads resolved configs from
bench/configs/<preset>.json (written by `python bench/gpu_bench.py --write-configs` where the full
stack is installed). Steps, all in one process, side by side:
  1. measured bf16 matmul peak of this card (the MFU denominator);
  2. fast path vs baseline outputs on random inputs (G and D forward, bf16 vs fp32 naive);
  3. full D+G training step img/s: baseline (naive attention, fp32, eager, host EMA) vs the fast
     path eager (fused SDPA, bf16, fused Adam, on-device EMA), with torch.compile ("fast") and
     replayed from CUDA graphs ("graphed": train.cuda_graphs; eager with its reason where it cannot
     be captured, e.g. --smoke on a CPU); the speedup is the best mode's (graphed counts only where
     it replayed graphs); counted FLOPs of one step
     (torch.utils.flop_counter, attention included) -> model FLOP utilisation; peak memory;
  4. evaluation throughput: generating 50k images with G_ema (bf16);
  5. memory at the paper's batch for the STL-10 48x48 and CelebA 64x64 presets: peak memory of a
     bf16 eager training step without and with activation checkpointing (an out-of-memory is recorded).
Writes gpu_bench_<card>.json under --out (gpu_bench_cpu.json on a CPU) with the card's name, versions
and every number, after every step (a failing step is recorded under "errors" and the rest still
run; the exit status is then 1).
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from train_step import matmul_gflops, mode_patches, new_trainer, time_steps

from transgan_lab.trainers import hashing
from transgan_lab.trainers.models import build_discriminator, build_generator
from transgan_lab.trainers.schedule import images_per_step

REPO = Path(__file__).resolve().parents[1]

CONFIGS = REPO / "bench" / "configs"
PRESETS = ("cifar10-v2", "digits-tiny", "stl10-xl", "celeba64-xl")
MEMORY_PRESETS = ("stl10-xl", "celeba64-xl")
MODES = ("baseline", "bf16", "fast", "graphed")  # report keys: baseline, bf16_eager, fast, graphed


def write_configs() -> None:
    from transgan_lab.platform.config import load_config

    CONFIGS.mkdir(parents=True, exist_ok=True)
    for p in PRESETS:
        (CONFIGS / f"{p}.json").write_text(json.dumps(load_config(p).model_dump(mode="json"), indent=1))
        print(f"wrote {CONFIGS / (p + '.json')}")


def load_cfg(preset: str, **overrides):
    d = json.loads((CONFIGS / f"{preset}.json").read_text())
    for key, value in overrides.items():
        node = d
        *path, last = key.split(".")
        for part in path:
            node = node[part]
        node[last] = value
    return hashing.as_namespace(d)


def card_slug(card: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3': the report's file name part."""
    return re.sub(r"[^a-z0-9]+", "-", card.lower()).strip("-")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def output_agreement(cfg, device) -> dict:
    torch.manual_seed(0)
    G, D = build_generator(cfg).to(device).eval(), build_discriminator(cfg).to(device).eval()
    z = torch.randn(8, G.latent_dim, device=device)
    cond = () if getattr(D, "clusters", None) is None else (G.cells.cell(z),)  # model.d.pixel_clusters
    with torch.no_grad():
        with mode_patches("baseline"):
            g_ref = G(z).float()
            d_ref = D(g_ref, *cond).float()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            g_fast = G(z).float()
            d_fast = D(g_ref, *cond).float()
    rel = lambda a, b: float((a - b).norm() / b.norm().clamp_min(1e-12))  # noqa: E731
    return {"g_rel_err": rel(g_fast, g_ref), "d_rel_err": rel(d_fast, d_ref), "tolerance": 5e-2}


def step_flops(t) -> int:
    """FLOPs of one full step (forward, backward and the GP double backward, attention included),
    counted per aten op with torch's FLOP formulas. FlopCounterMode itself cannot be used: its
    module tracker breaks torch.autograd.grad, which the gradient penalty needs."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                Count.total += formula(*args, **kwargs, out_val=out)
            return out

    with Count():
        t.step({})
    return int(Count.total)


def step_rate(t, mode: str, *, steps: int, warmup: int, rounds: int) -> dict:
    """Median seconds per step (and img/s) over `rounds` timed rounds of `steps` device-synchronised
    steps each, after `warmup` untimed steps; `mode` picks the attention and EMA (train_step.mode_patches)."""
    time_steps(t, mode, warmup)
    times = [time_steps(t, mode, steps) / steps for _ in range(rounds)]
    sec = statistics.median(times)
    return {"sec_per_step": sec, "img_per_s": images_per_step(t.cfg) / sec, "rounds_s": times}


def time_mode(cfg, mode: str, device, *, steps: int, warmup: int, rounds: int, out: Path) -> dict:
    """mode: "baseline" (naive attention, fp32, eager, host EMA), "bf16" (the fast path, eager),
    "fast" (the fast path with torch.compile; compiled only on a GPU) or "graphed" (the fast path
    replayed from CUDA graphs; its warm-up covers the graph's warm-up steps and capture)."""
    cfg.train.precision = "fp32" if mode == "baseline" else "bf16"
    cfg.train.compile = mode == "fast" and device.type == "cuda"
    cfg.train.cuda_graphs = mode == "graphed"
    held_mb = 0.0
    if device.type == "cuda":  # peak memory of this trainer alone: what earlier steps left allocated is subtracted
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        held_mb = torch.cuda.memory_allocated(device) / 2**20
    t = new_trainer(cfg, device, out / mode)
    g = t.graphed
    if g is not None:  # untimed: the graph's uncaptured warm-up steps and its capture
        warmup = max(warmup, g.warmup_steps + 1)
    r = step_rate(t, mode, steps=steps, warmup=warmup, rounds=rounds)
    if mode == "graphed":
        r["cuda_graphs"] = {
            "captured": bool(g is not None and g.active and g.replays > 0),
            "captures": g.captures if g is not None else 0,
            "replays": g.replays if g is not None else 0,
            "fallback": t.cuda_graphs_fallback or (g.failure if g is not None else None),
        }
    r["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 - held_mb if device.type == "cuda" else None
    return {**r, "trainer": t}


def eval_throughput(cfg, device, n: int, batch: int) -> dict:
    G = build_generator(cfg).to(device).eval()
    gen = torch.Generator().manual_seed(0)
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        for i in range(0, n, batch):
            z = torch.randn(min(batch, n - i), G.latent_dim, generator=gen).to(device, non_blocking=True)
            imgs = G(z)
            ((imgs.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8))
    sync(device)
    dt = time.perf_counter() - t0
    return {"n_images": n, "seconds": dt, "img_per_s": n / dt}


def memory_at_paper_batch(preset: str, device, out: Path, **overrides) -> dict:
    """Peak memory of one bf16 training step (eager: no compile time, and an upper bound on the
    compiled step's memory), without and with activation checkpointing."""
    res = {}
    for ac in (False, True):
        cfg = load_cfg(preset, **overrides)
        cfg.train.activation_checkpointing = ac
        key = "checkpointed" if ac else "plain"
        try:
            r = time_mode(cfg, "bf16", device, steps=1, warmup=1, rounds=1, out=out / f"{preset}-{key}")
            r.pop("trainer")
            res[key] = {"ok": True, **r}
        except torch.OutOfMemoryError as e:
            res[key] = {"ok": False, "error": f"out of memory: {str(e).splitlines()[0]}"}
        if device.type == "cuda":
            torch.cuda.empty_cache()
    res["batch_d"], res["batch_g"] = cfg.optim.batch_d, cfg.optim.batch_g
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on any device (code-path check)")
    ap.add_argument("--write-configs", action="store_true", help="refresh bench/configs/*.json (needs the full stack)")
    args = ap.parse_args(argv)
    if args.write_configs:
        write_configs()
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    preset = "digits-tiny" if args.smoke else "cifar10-v2"
    steps, warmup, rounds = (1, 1, 1) if args.smoke else (5, 3, 3)
    # --smoke: one D update per step (the code path, quickly: bf16 is emulated on most CPUs)
    smoke = {"optim.n_critic": 1} if args.smoke else {}
    report: dict = {
        "benchmark": "gpu_bench",
        "preset": preset,
        "smoke": args.smoke,
        "device": str(device),
        "card": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "errors": {},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report_name = f"gpu_bench_{card_slug(report['card'])}.json"
    t_start = time.perf_counter()

    def section(name: str, fn):
        """Run one step of the benchmark; a failure is recorded and the others still run. The JSON
        is rewritten after every step, so a run cut off by a time limit keeps what it measured."""
        print(f"[{time.perf_counter() - t_start:6.1f} s] {name} ...", flush=True)
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - recorded in the report, which the caller checks
            report["errors"][name] = f"{type(e).__name__}: {e}"
            print(f"  FAILED: {report['errors'][name]}", flush=True)
        (out / report_name).write_text(json.dumps(report, indent=1, default=str))

    n, reps = (1024, 5) if args.smoke else (8192, 50)
    section(
        "matmul_peak",
        lambda: report.update(
            matmul_peak_bf16_tflops=matmul_gflops(str(device), n, reps, dtypes=("bf16",))["bf16"] / 1e3
        ),
    )
    section("agreement", lambda: report.update(agreement=output_agreement(load_cfg(preset), device)))
    tmp = Path(tempfile.mkdtemp())

    def timings():
        for mode in MODES:
            r = time_mode(load_cfg(preset, **smoke), mode, device, steps=steps, warmup=warmup, rounds=rounds, out=tmp)
            trainer = r.pop("trainer")
            if mode == "baseline":
                report["step_flops"] = step_flops(trainer)
            r["mfu"] = report["step_flops"] / r["sec_per_step"] / (report["matmul_peak_bf16_tflops"] * 1e12)
            r["speedup_vs_baseline"] = r["img_per_s"] / report["baseline"]["img_per_s"] if "baseline" in report else 1.0
            report["bf16_eager" if mode == "bf16" else mode] = r
            print(f"  {mode}: {r['img_per_s']:.1f} img/s, MFU {r['mfu']:.3f}, peak {r['peak_mem_mb']} MB", flush=True)
            if "cuda_graphs" in r:
                print(f"  graphed: {r['cuda_graphs']}", flush=True)
        # the best of the fast modes; the graphed one only where it replayed graphs (else it was the eager step)
        fast_modes = ["bf16_eager", "fast"] + (["graphed"] if report["graphed"]["cuda_graphs"]["captured"] else [])
        best = max(fast_modes, key=lambda k: report[k]["img_per_s"])
        report["best_mode"] = best
        report["speedup"] = report[best]["img_per_s"] / report["baseline"]["img_per_s"]

    section("step_timing", timings)
    section(
        "eval_generation",
        lambda: report.update(
            eval_generation=eval_throughput(load_cfg(preset), device, 512 if args.smoke else 50_000, 500)
        ),
    )
    report["memory"] = {}
    for p in ("digits-tiny",) if args.smoke else MEMORY_PRESETS:
        section(f"memory:{p}", lambda p=p: report["memory"].update({p: memory_at_paper_batch(p, device, tmp, **smoke)}))
    shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {k: v for k, v in report.items() if k not in ("baseline", "bf16_eager", "fast", "graphed")},
            indent=1,
            default=str,
        )
    )
    if "speedup" in report:
        best = report["best_mode"]
        print(f"speedup x{report['speedup']:.2f} ({best}); MFU {best} {report[best]['mfu']:.3f}")
    print(f"wrote {out / report_name}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
