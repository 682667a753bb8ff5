"""Sweep TransGAN on the embedded digits data: Ray Tune + Optuna + ASHA, every trial in MLflow.

    python experiments/sweep_digits.py --demo      # what `make demo` runs
    python experiments/sweep_digits.py --samples 20 --set train.kimg=60

Runs locally (its own Ray runtime) unless --address is given. Re-running the same --name resumes it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from transgan_lab.platform.experiments import parser, ray_address

# `make demo`: 4 trials of 10 kimg, two at a time on a 2-core machine -- long enough that the
# generators visibly learn (digits_fid falls far below an untrained G's ~2,700), short enough for
# minutes. Two evaluations per trial, so ASHA (grace 1 evaluation, halving) can stop the weaker
# half after their first one.
DEMO = [
    "name=demo",
    "train.kimg=10.24",
    "train.log_kimg=1.024",
    "train.eval_kimg=5.12",
    "train.checkpoint_kimg=5.12",
    "train.grid_kimg=5.12",
    "train.keep_last=2",
    "eval.n_fake=1000",
    "eval.batch=250",
    "resources.workers=1",
    "resources.cpus_per_worker=0.9",
    "sweep.num_samples=4",
    "sweep.grace_reports=1",
    "sweep.reduction_factor=2",
    "sweep.seed=0",
]


def main(argv=None) -> int:
    ap = parser(__doc__.splitlines()[0], preset="digits-tiny")
    ap.add_argument("--demo", action="store_true", help="the `make demo` sweep: 4 trials of 10 kimg, local runtime")
    ap.add_argument("--samples", type=int, help="number of trials (default: sweep.num_samples)")
    ap.add_argument("--name", help="sweep name; re-running the same name resumes it")
    args = ap.parse_args(argv)

    from transgan_lab.platform.config import ConfigError, load_config
    from transgan_lab.platform.sweep import print_results, run_sweep
    from transgan_lab.tracking_client import TrackingUnavailable

    if args.smoke:
        from transgan_lab.platform.experiments import SMOKE

        args.overrides = SMOKE + ["name=digits-smoke", "sweep.num_samples=3", "sweep.grace_reports=1"] + args.overrides
    elif args.demo:
        args.overrides = DEMO + args.overrides
    t0 = time.monotonic()
    try:
        cfg = load_config(args.preset, args.overrides)
        if args.demo:
            print(
                f"TransGAN Lab demo: {args.samples or cfg.sweep.num_samples} trials on the digits data "
                f"({cfg.train.kimg:g} kimg each), Optuna TPE + ASHA on {cfg.eval.primary}, tracked in MLflow "
                f"under {Path(args.out).resolve()}",
                flush=True,
            )
        result = run_sweep(
            cfg, out_root=args.out, name=args.name, space="digits", num_samples=args.samples, address=ray_address(args)
        )
    except (ConfigError, TrackingUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_results(result, cfg)
    m, s = divmod(int(time.monotonic() - t0), 60)
    print(f"\nsweep wall time: {m} min {s:02d} s")
    return 0 if result.best is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
