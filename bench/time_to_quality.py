"""Time to quality on this machine: how fast a preset's EMA generator gets good, in training seconds.

Trains a preset in this process (the engine alone, no Ray, no tracking) and evaluates the EMA
generator every ``--eval-kimg`` (default: the run's length / 15). Each point of the curve records
digits_fid / digits_is against training seconds (evaluation, grids and checkpoints excluded; they
are reported separately as ``eval_seconds``), kimg and G updates. At the end the metric's
classifier labels 2,000 samples of the final EMA generator (class histogram: are all ten digits
there?) and a sample grid is saved, upscaled so each digit is 48 px.

    .venv/bin/python bench/time_to_quality.py                                  # the digits-tiny preset
    .venv/bin/python bench/time_to_quality.py --label old --preset bench/presets/digits-tiny-2026-11.yaml
    .venv/bin/python bench/time_to_quality.py --label lr --set optim.lr_g=1e-3 --out /tmp/ttq.json

Results are merged by label into ``--out`` (default ``bench/results/time_to_quality_cpu.json``),
and every run's learning curve is drawn into one PNG beside it. Speed depends on what else runs:
say so with ``--note``; run one benchmark at a time on a small machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as _platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from transgan_lab.platform.config import load_config
from transgan_lab.trainers.metrics.sampling import save_grid
from transgan_lab.trainers.schedule import total_steps
from transgan_lab.trainers.train import train

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "time_to_quality_cpu.json"
CALIBRATION = REPO / "bench" / "results" / "metrics_calibration_cpu.json"
N_CLASS_SAMPLES = 2000


class CurveReporter:
    """Keeps the evaluation points of the run (reports that carry a fresh evaluation)."""

    def __init__(self, *, primary: str, echo: bool):  # primary: cfg.eval.primary; echo: print each point
        self.points: list[dict] = []
        self.primary, self.echo = primary, echo
        self._maint = 0.0

    def report(self, metrics, checkpoint_dir=None, files=None) -> None:
        if not files or "protocols" not in files:
            return
        point = {k: metrics[k] for k in ("kimg", "g_updates", "train_s") if k in metrics}
        point.update({k: v for k, v in metrics.items() if k.startswith("digits_") or k in ("fid", "is", "kid")})
        point["eval_s"] = round(metrics["maintenance_s"] - self._maint, 2)  # this report's maintenance
        self._maint = metrics["maintenance_s"]
        point["img_per_s"] = round(metrics["img_per_s"], 1)
        point["train_s"] = round(point["train_s"], 1)
        self.points.append(point)
        if self.echo:
            extra = "  ".join(f"{k} {point[k]:.2f}" for k in point if k.startswith("digits_"))
            print(
                f"  {point['train_s']:7.1f} s  {point['kimg']:7.2f} kimg  {point['g_updates']:6d} G updates  "
                f"{extra}  ({point['img_per_s']:.0f} img/s)",
                flush=True,
            )


def class_histogram(run_dir: Path, cfg) -> dict:
    """The digits classifier's labels for N_CLASS_SAMPLES samples of the final EMA generator, and a grid."""
    from sklearn.datasets import load_digits

    from transgan_lab.trainers.checkpoint import latest_valid, load_checkpoint
    from transgan_lab.trainers.data import build_dataset
    from transgan_lab.trainers.metrics import digits as D
    from transgan_lab.trainers.metrics import score_parts
    from transgan_lab.trainers.metrics.evaluate import dataset_images
    from transgan_lab.trainers.metrics.inception import cache_root
    from transgan_lab.trainers.metrics.sampling import generate_range
    from transgan_lab.trainers.models import build_generator

    found, _ = latest_valid(run_dir / "checkpoints")
    _, state = load_checkpoint(found, names=["G_ema"])
    G = build_generator(cfg)
    G.load_state_dict(state["G_ema"])
    real = torch.cat(list(dataset_images(build_dataset(cfg.data))))
    net, _, _ = D.load_or_train(images=real, labels=load_digits().target.astype(np.int64), cache_dir=cache_root(cfg))
    images = generate_range(G, start=0, stop=N_CLASS_SAMPLES, seed=cfg.eval.seed, batch=500)
    counts = np.asarray(score_parts(D.digits_features(images, net)["logits"])["class_counts"])
    return {
        "n": N_CLASS_SAMPLES,
        "counts": counts.tolist(),
        "classes_present": int((counts > 0).sum()),
        "min_share": round(float(counts.min() / counts.sum()), 4),
        "checkpoint_step": int(found.name.split("-")[-1]),
        "images": images[:100],
    }


def step_cost(cfg, *, steps: int = 4) -> dict:
    """Where one training step's time goes on this machine: its counted FLOPs (forward, backward and
    penalty double backward, attention included), the fp32 matmul rate of these threads, and the
    profiler's top operators over a few steps (on a throw-away trainer with the run's config)."""
    from gpu_bench import step_flops
    from torch.profiler import ProfilerActivity, profile
    from train_step import matmul_gflops

    from transgan_lab.trainers.models.attention import math_sdpa
    from transgan_lab.trainers.trainer import Trainer

    with tempfile.TemporaryDirectory(prefix="tgl-ttq-cost-") as tmp:
        t = Trainer(cfg, out_dir=tmp, device="cpu")
        acc: dict = {}
        for _ in range(2):  # warm-up
            t.step(acc)
        with math_sdpa():  # attention as counted matmuls (the same FLOPs as the fused kernel)
            flops = [step_flops(t) for _ in range(max(1, cfg.loss.reg_every))]  # a lazy penalty every k-th
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(steps):
                t.step(acc)
            sec = (time.perf_counter() - t0) / steps
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    top = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
    step_gflop = sum(flops) / len(flops) / 1e9
    rate = matmul_gflops("cpu", dtypes=("fp32",))["fp32"]
    return {
        "step_gflop": round(step_gflop, 3),
        "profiled_sec_per_step": round(sec, 4),
        "achieved_gflops": round(step_gflop / sec, 1),
        "matmul_gflops_fp32": round(rate, 1),
        "flop_utilisation": round(step_gflop / sec / rate, 3),
        "top_ops": [
            {
                "op": e.key,
                "share": round(e.self_cpu_time_total / total, 3),
                "ms_per_step": round(e.self_cpu_time_total / 1000 / steps, 2),
            }
            for e in top
        ],
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    # One colour per run (the default cycle repeats after 10 runs).
    colours = plt.get_cmap("tab20").colors
    for i, (label, run) in enumerate(results["runs"].items()):
        pts = run["curve"]
        minutes = [p["train_s"] / 60 for p in pts]
        style = dict(marker="o", ms=3, label=label, color=colours[i % len(colours)])
        axes[0].plot(minutes, [p["digits_fid"] for p in pts], **style)
        axes[1].plot(minutes, [p["digits_is"] for p in pts], **style)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("digits_fid (lower is better; log scale)")
    axes[1].set_ylabel("digits_is (higher is better; 10 classes)")
    floor = results.get("reference", {})
    if "real_vs_real_digits_fid" in floor:
        axes[0].axhline(floor["real_vs_real_digits_fid"], color="grey", ls=":", lw=1, label="real vs real")
    if "real_digits_is" in floor:
        axes[1].axhline(floor["real_digits_is"], color="grey", ls=":", lw=1, label="real digits")
    if "real_digits_is_random_order" in floor:
        axes[1].axhline(floor["real_digits_is_random_order"], color="grey", ls="--", lw=1, label="real, random order")
    for ax in axes:
        ax.set_xlabel("training minutes on this machine (evaluation excluded)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Time to quality: EMA generator on the digits data")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def calibration_reference(path: Path | None = None) -> dict:
    """The floors the curves are drawn against, from bench/metrics_calibration.py's results (same
    metric and protocol): real vs real digits_fid, the real data's digits_is (in the dataset's order
    and in random order) and the untrained generator's digits_fid. Read before training, so a
    missing or renamed row stops the benchmark at once, not after its run."""
    path = path or CALIBRATION
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `python bench/metrics_calibration.py` first")
    rows = {r["row"]: r for r in json.loads(path.read_text())["rows"]}
    wanted = {  # key: (row, column, decimals; None rounds to an int)
        "real_vs_real_digits_fid": ("real-vs-real halves", "digits_fid", 1),
        "real_digits_is": ("real-all (IS of the real data)", "digits_is", 2),
        "real_digits_is_random_order": ("real-all in random order (IS over 20 orders)", "digits_is", 2),
        "untrained_digits_tiny_fid": ("untrained G (digits-tiny, torch.manual_seed(0))", "digits_fid", None),
    }
    missing = [row for row, key, _ in wanted.values() if (rows.get(row) or {}).get(key) is None]
    if missing:
        raise SystemExit(
            f"{path} has no value for the rows {missing}: rerun `python bench/metrics_calibration.py` "
            "(its row names must match calibration_reference in bench/time_to_quality.py)"
        )
    return {name: round(rows[row][key], nd) for name, (row, key, nd) in wanted.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="digits-tiny", help="preset name or YAML path (default: digits-tiny)")
    ap.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)"
    )
    ap.add_argument("--label", help="name of this run in the results (default: the preset's name)")
    ap.add_argument("--eval-kimg", type=float, help="evaluate every this many kimg (default: train.kimg / 15)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="results JSON; runs are merged by label")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    ap.add_argument("--keep", help="keep the run folder here instead of a temporary one")
    args = ap.parse_args(argv)

    cfg = load_config(args.preset, args.overrides)
    eval_kimg = args.eval_kimg if args.eval_kimg is not None else round(cfg.train.kimg / 15, 3)
    label = args.label or cfg.name
    reference = calibration_reference()
    with tempfile.TemporaryDirectory(prefix="tgl-ttq-") as tmp:
        cache = Path(tmp) / "cache"
        cfg = load_config(
            args.preset,
            args.overrides
            + [f"train.eval_kimg={eval_kimg}", f"eval.cache_dir={os.environ.get('TRANSGAN_LAB_TTQ_CACHE', cache)}"],
        )
        run_dir = Path(args.keep) if args.keep else Path(tmp) / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        print(
            f"[{label}] {cfg.train.kimg:g} kimg = {total_steps(cfg)} G updates, evaluation every {eval_kimg:g} kimg, "
            f"{torch.get_num_threads()} threads",
            flush=True,
        )
        reporter = CurveReporter(primary=cfg.eval.primary, echo=True)
        t0 = time.perf_counter()
        result = train(cfg, reporter, out_dir=run_dir, progress=False)
        wall = time.perf_counter() - t0
        hist = class_histogram(run_dir, cfg)
        grid_images = hist.pop("images")
        cost = step_cost(cfg)

    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    results["reference"] = reference
    last = reporter.points[-1]
    results["runs"][label] = {
        "preset": args.preset,
        "overrides": args.overrides,
        "status": result["status"],
        "final_digits_fid": round(last["digits_fid"], 2),
        "final_digits_is": round(last["digits_is"], 3),
        "best_digits_fid": round(min(p["digits_fid"] for p in reporter.points), 2),
        "train_seconds": round(result["train_s"], 1),
        "eval_seconds": round(result["maintenance_s"], 1),
        "wall_seconds": round(wall, 1),
        "g_updates": result["g_updates"],
        "kimg": round(result["kimg"], 3),
        "img_per_s": round(result["nimg"] / max(result["train_s"], 1e-9), 1),
        "n_fake": cfg.eval.n_fake,
        "class_histogram": hist,
        # the run's own rate: G updates per training second x counted FLOPs of a step
        "achieved_gflops": round(cost["step_gflop"] * result["g_updates"] / max(result["train_s"], 1e-9), 1),
        "step_cost": cost,
        "curve": reporter.points,
        "config": cfg.model_dump(mode="json"),
        "machine": {
            "cpu": _platform.processor() or _platform.machine(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "note": args.note,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out.with_suffix(".png"))
    save_grid(grid_images, out.with_name(f"{out.stem}_{label}_samples.png"), nrow=10)
    r = results["runs"][label]
    print(
        f"[{label}] final digits_fid {r['final_digits_fid']:.1f}  digits_is {r['final_digits_is']:.2f}  after "
        f"{r['train_seconds']:.0f} s of training ({r['g_updates']} G updates, {r['kimg']:g} kimg, "
        f"{r['img_per_s']:.0f} img/s); "
        f"evaluation {r['eval_seconds']:.0f} s; classes {hist['counts']}"
    )
    print(
        f"[{label}] one step = {cost['step_gflop']:.2f} GFLOP: {r['achieved_gflops']:.0f} GFLOP/s in the run, "
        f"{cost['achieved_gflops']:.0f} profiled, vs {cost['matmul_gflops_fp32']:.0f} GFLOP/s fp32 matmul; top ops: "
        + ", ".join(f"{o['op']} {o['share']:.0%}" for o in cost["top_ops"][:5])
    )
    print(f"wrote {out}, {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
