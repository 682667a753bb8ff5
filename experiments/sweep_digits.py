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

# `make demo`: 4 trials of the preset's recipe around its own point (space "demo"), two at a time
# with one thread each on a 2-core machine, up to 80 kimg each. Short runs learn sooner with a
# smaller batch (a GAN learns per G update, and the CPU's img/s barely changes), so the demo's
# trials use batch 16: 80 kimg is 2,500 G updates at n_critic 2 (digits_fid ~87 at 72 kimg,
# measured with bench/time_to_quality.py). An evaluation every 16 kimg; ASHA (grace one
# evaluation, reduction 4) lets a trial past 16 kimg only when it is the best there so far, so
# one or two trials train long while the others are tried. The sweep stops after 11 minutes
# whatever happens (a bound for the demo's wall time, not something real sweeps need). The
# preset's latent cells pay off only after ~150 kimg, so the demo's short trials train without them.
DEMO = [
    "name=demo",
    "model.g.latent_classes=0",
    "model.d.pixel_clusters=0",
    "optim.batch_d=16",
    "optim.batch_g=16",
    "train.kimg=80",
    "train.log_kimg=4",
    "train.eval_kimg=16",
    "train.checkpoint_kimg=32",
    "train.grid_kimg=16",
    "train.keep_last=2",
    "resources.workers=1",
    "resources.cpus_per_worker=0.9",
    "sweep.max_concurrent=2",
    "sweep.num_samples=4",
    "sweep.grace_reports=1",
    "sweep.reduction_factor=4",
    "sweep.time_budget_min=11",
    "sweep.seed=0",
]


def main(argv=None) -> int:
    ap = parser(__doc__.splitlines()[0], preset="digits-tiny")
    ap.add_argument(
        "--demo", action="store_true", help="the `make demo` sweep: 4 trials of up to 80 kimg, local runtime"
    )
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
            cfg,
            out_root=args.out,
            name=args.name,
            space="demo" if args.demo else "digits",
            num_samples=args.samples,
            address=ray_address(args),
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
