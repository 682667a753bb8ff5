"""Where the fast training step's time goes on a card: the prepared profiling run (torch only).

    python bench/gpu_profile.py --out $OUT            # on the GPU box
    python bench/gpu_profile.py --smoke --out /tmp/x  # the same code path on a CPU, tiny preset

On the v2 CIFAR-10 preset, fast path eager (fused SDPA, bf16 autocast, fused Adam, on-device EMA),
all in one process, side by side:
  1. the step with and without the gradient penalty (loss.gp_weight=0), so the GP pass's share of
     the step is measured rather than guessed;
  2. the step at 1x and 4x the batch (D and G): if img/s grows with the batch, the step is bound
     by kernel launches and host work, not by the card's arithmetic;
  3. a torch.profiler trace of two steps: the top kernels and operators by device time, with the
     gradient-penalty pass, the D loss and the G loss marked as ranges.
Writes gpu_profile.json (and the top-operator table as gpu_profile_ops.txt) under --out.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from pathlib import Path

import torch
from gpu_bench import load_cfg, step_rate
from train_step import new_trainer

from transgan_lab.trainers import losses

REPO = Path(__file__).resolve().parents[1]


def trainer(cfg, device, out: Path):
    # bf16 on the card; fp32 on a CPU (--smoke), whose bf16 is emulated and ~10x slower
    cfg.train.precision, cfg.train.compile = ("bf16" if device.type == "cuda" else "fp32"), False
    return new_trainer(cfg, device, out)


def marked(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.profiler.record_function(name):
            return fn(*args, **kwargs)

    return wrapper


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="tiny preset, any device (code-path check)")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    preset = "digits-tiny" if args.smoke else "cifar10-v2"
    steps, warmup, rounds = (1, 0, 1) if args.smoke else (4, 2, 3)
    smoke = {"optim.n_critic": 1} if args.smoke else {}  # one D update per step: the code path, quickly
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "benchmark": "gpu_profile",
        "preset": preset,
        "smoke": args.smoke,
        "card": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "mode": "fast path eager (fused SDPA, bf16)",
        "runs": {},
    }
    t_start = time.perf_counter()

    def save():
        (out / "gpu_profile.json").write_text(json.dumps(report, indent=1))

    with tempfile.TemporaryDirectory() as tmp:
        variants = {"step": {}, "no_gp": {"loss.gp_weight": 0.0}}
        base = load_cfg(preset, **smoke)
        variants["batch_x4"] = {"optim.batch_d": 4 * base.optim.batch_d, "optim.batch_g": 4 * base.optim.batch_g}
        for name, over in variants.items():
            print(f"[{time.perf_counter() - t_start:6.1f} s] {name} {over}", flush=True)
            t = trainer(load_cfg(preset, **smoke, **over), device, Path(tmp) / name)
            r = step_rate(t, "bf16", steps=steps, warmup=warmup, rounds=rounds)
            r.update(
                batch_d=t.cfg.optim.batch_d, batch_g=t.cfg.optim.batch_g, gp_weight=t.cfg.loss.gp_weight, overrides=over
            )
            report["runs"][name] = r
            print(f"  {r['img_per_s']:.1f} img/s, {r['sec_per_step'] * 1e3:.1f} ms/step", flush=True)
            del t
            save()
        runs = report["runs"]
        report["gp_share_of_step"] = 1 - runs["no_gp"]["sec_per_step"] / runs["step"]["sec_per_step"]
        report["img_per_s_gain_at_4x_batch"] = runs["batch_x4"]["img_per_s"] / runs["step"]["img_per_s"]

        print(f"[{time.perf_counter() - t_start:6.1f} s] profiler", flush=True)
        t = trainer(load_cfg(preset, **smoke), device, Path(tmp) / "profiled")
        patches = {"gradient_penalty": "gradient_penalty", "d_loss": "d_loss (incl. GP)", "g_loss": "g_loss"}
        saved = {k: getattr(losses, k) for k in patches}
        for k, label in patches.items():
            setattr(losses, k, marked(label, saved[k]))
        try:
            step_rate(t, "bf16", steps=1, warmup=1, rounds=1)
            acts = [torch.profiler.ProfilerActivity.CPU] + (
                [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else []
            )
            with torch.profiler.profile(activities=acts) as prof:
                step_rate(t, "bf16", steps=2, warmup=0, rounds=1)
        finally:
            for k, fn in saved.items():
                setattr(losses, k, fn)
    key = "device_time_total" if device.type == "cuda" else "cpu_time_total"
    events = prof.key_averages()
    total = sum(getattr(e, "self_" + key) for e in events)
    top = sorted(events, key=lambda e: getattr(e, "self_" + key), reverse=True)[:30]
    report["total_self_us"] = total
    report["top_ops_by_self_time"] = [
        {
            "name": e.key,
            "self_us": getattr(e, "self_" + key),
            "share": getattr(e, "self_" + key) / total if total else None,
            "calls": e.count,
        }
        for e in top
    ]
    report["ranges_us"] = {e.key: getattr(e, key) for e in events if e.key in patches.values()}
    report["seconds"] = time.perf_counter() - t_start
    save()
    (out / "gpu_profile_ops.txt").write_text(
        events.table(sort_by="self_" + key, row_limit=40, max_name_column_width=60)
    )
    print(json.dumps({k: v for k, v in report.items() if k not in ("top_ops_by_self_time",)}, indent=1))
    for e in report["top_ops_by_self_time"][:15]:
        print(f"  {e['share']:6.1%} {e['self_us'] / 1e3:9.1f} ms  {e['calls']:6d}x  {e['name'][:90]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
