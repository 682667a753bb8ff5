"""Ray overhead of a sweep trial: the time a trial spends outside the training engine.

    python bench/ray_overhead.py [--kimg 1.024,4.096] [--preset digits-tiny]

For each training length, a one-trial sweep runs through the whole stack (Tune trial driver actor,
Ray Train controller and worker, TuneReportCallback, Ray checkpoint upload to storage, MLflow
parent and child runs in a local SQLite store) in one Ray runtime started up front. The engine
records its own wall time inside `train()` (setup, steps, evaluations, grids, checkpoint writes:
the work a run does anyway); the rest of `run_sweep`'s wall time is overhead: actor and process
start, result reporting, checkpoint upload, MLflow logging, Tune bookkeeping, the sweep's own
setup and final table. That is an upper bound on the per-trial share (the sweep setup is paid once
per sweep, not per trial).

Two lengths split the overhead into a fixed part and a part per report (linear fit), which gives
the share for a 10-minute trial with the same report cadence. Writes
bench/results/ray_overhead_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

for _k, _v in {
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}.items():
    os.environ.setdefault(_k, _v)

TEN_MINUTES = 600.0


def one_sweep(cfg, out: Path, name: str) -> dict:
    from transgan_lab.platform.sweep import run_sweep

    t0, w0 = time.perf_counter(), time.time()
    res = run_sweep(cfg, out_root=out, name=name, num_samples=1, progress=False)
    wall, w1 = time.perf_counter() - t0, time.time()
    (status,) = list((out / "sweeps" / name).rglob("status.json"))
    engine = json.loads(status.read_text())
    reports = sum(1 for _ in status.with_name("metrics.jsonl").open())
    assert res.table["status"].tolist() == ["TERMINATED"], res.table
    return {
        "sweep_wall_s": wall,
        "engine_wall_s": engine["wall_s"],
        "overhead_s": wall - engine["wall_s"],
        "before_engine_s": engine["started_at"] - w0,
        "after_engine_s": w1 - (engine["started_at"] + engine["wall_s"]),
        "reports": reports,
        "steps": engine["step"],
        "kimg": engine["kimg"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="digits-tiny")
    ap.add_argument("--kimg", default="1.024,4.096", help="two training lengths (kimg)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    ap.add_argument("--out", help="JSON path (default bench/results/ray_overhead_cpu.json)")
    args = ap.parse_args(argv)

    import ray
    import torch
    from train_step import machine

    from transgan_lab.platform.config import load_config
    from transgan_lab.platform.ray_train import init_ray

    lengths = [float(k) for k in args.kimg.split(",")]
    if len(lengths) != 2 or lengths[0] >= lengths[1]:
        ap.error("--kimg takes two increasing lengths, e.g. 0.512,1.536")
    report = {"benchmark": "ray_overhead", "machine": machine(), "settings": vars(args), "runs": []}
    with tempfile.TemporaryDirectory(prefix="tglo-", dir="/tmp") as tmp:
        os.environ.setdefault("RAY_TMPDIR", str(Path(tmp) / "ray"))
        init_ray(num_cpus=os.cpu_count())
        try:
            # One unrecorded sweep first: the MLflow store's schema, first imports and Ray's worker
            # pool are paid once per sweep or machine, not per trial.
            warm = load_config(
                args.preset,
                [
                    "train.kimg=0.256",
                    "train.log_kimg=0.256",
                    "eval.n_fake=100",
                    f"tracking.uri=sqlite:///{Path(tmp) / 'mlflow.db'}",
                    *args.overrides,
                ],
            )
            one_sweep(warm, Path(tmp) / "warm", "overhead-warmup")
            for i, kimg in enumerate(lengths):
                cfg = load_config(
                    args.preset,
                    [
                        "resources.workers=1",
                        f"resources.cpus_per_worker={max(1, (os.cpu_count() or 2) - 1)}",
                        "train.log_kimg=0.512",
                        "train.eval_kimg=2.048",
                        "train.checkpoint_kimg=1.024",
                        "train.grid_kimg=2.048",
                        "eval.n_fake=500",
                        *args.overrides,
                        f"train.kimg={kimg}",
                        f"tracking.uri=sqlite:///{Path(tmp) / 'mlflow.db'}",
                    ],
                )
                r = one_sweep(cfg, Path(tmp) / f"out{i}", f"overhead-{i}")
                r["share"] = r["overhead_s"] / r["sweep_wall_s"]
                report["runs"].append(r)
                print(
                    f"{kimg:6.3f} kimg: sweep {r['sweep_wall_s']:6.1f} s, engine {r['engine_wall_s']:6.1f} s, "
                    f"overhead {r['overhead_s']:5.1f} s ({100 * r['share']:.1f}%: "
                    f"{r['before_engine_s']:.1f} s before the "
                    f"engine starts, {r['after_engine_s']:.1f} s after it ends), {r['reports']} reports",
                    flush=True,
                )
        finally:
            ray.shutdown()
    a, b = report["runs"]
    per_report = max(0.0, (b["overhead_s"] - a["overhead_s"]) / max(1, b["reports"] - a["reports"]))
    fixed = max(0.0, a["overhead_s"] - per_report * a["reports"])
    engine_s_per_report = (b["engine_wall_s"] - a["engine_wall_s"]) / max(1, b["reports"] - a["reports"])
    reports_10 = TEN_MINUTES / engine_s_per_report if engine_s_per_report > 0 else 0.0
    overhead_10 = fixed + per_report * reports_10
    report["fit"] = {
        "fixed_s": fixed,
        "per_report_s": per_report,
        "engine_s_per_report": engine_s_per_report,
        "reports_in_10_min": reports_10,
        "overhead_10_min_s": overhead_10,
        "share_10_min": overhead_10 / (TEN_MINUTES + overhead_10),
        "target_share": 0.05,
    }
    print(
        f"fixed {fixed:.1f} s + {per_report:.2f} s per report -> a 10-minute trial ({reports_10:.0f} reports) "
        f"spends {overhead_10:.1f} s outside training: {100 * report['fit']['share_10_min']:.1f}% (target 5%)"
    )
    out = Path(
        args.out or REPO / "bench" / "results" / f"ray_overhead_{'cuda' if torch.cuda.is_available() else 'cpu'}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
