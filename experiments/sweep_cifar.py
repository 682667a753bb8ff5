"""Sweep TransGAN on CIFAR-10 on a Ray cluster (the user's entry point).

    ray up cluster.yaml
    ray submit cluster.yaml experiments/sweep_cifar.py -- --samples 32
    python experiments/sweep_cifar.py --smoke      # the same path on the embedded digits data, locally

On a cluster the script joins it (ray.init(address="auto")); Ray storage must then be shared
(`--set tracking.storage_path=s3://bucket/transgan`) and MLflow a server
(`--set tracking.uri=http://<head>:5000`). Every trial is a Ray Train run of resources.workers
GPUs; trials run as many at a time as the cluster's GPUs allow. Re-running the same --name
resumes the sweep (finished trials kept, unfinished ones continue from their checkpoints).
"""

from __future__ import annotations

import os
import sys
import time

# Everything else comes from the installed package: `ray submit` copies only this file to the head.
from transgan_lab.platform.experiments import SMOKE, parser, ray_address


def main(argv=None) -> int:
    ap = parser(__doc__.splitlines()[0], preset="cifar10-s")
    ap.add_argument("--space", default=None, help="search space in platform/sweep/spaces.py (default: cifar)")
    ap.add_argument("--samples", type=int, help="number of trials (default: sweep.num_samples)")
    ap.add_argument("--name", help="sweep name; re-running the same name resumes it")
    args = ap.parse_args(argv)

    from transgan_lab.platform.config import ConfigError, load_config
    from transgan_lab.platform.sweep import print_results, run_sweep
    from transgan_lab.tracking_client import TrackingUnavailable

    preset, space, overrides = args.preset, args.space or "cifar", list(args.overrides)
    if args.smoke:  # same script, same code path, tiny digits trials on this machine
        preset, space = "digits-tiny", args.space or "digits"
        overrides = (
            SMOKE
            + ["name=cifar-smoke", "sweep.num_samples=3", "sweep.grace_reports=1", "sweep.objectives=[img_per_s]"]
            + overrides
        )
    if os.environ.get("TRANSGAN_LAB_STORAGE_PATH"):
        # Shared Ray storage named by the cluster config (cluster.yaml sets it on every node); --set wins.
        overrides = [f"tracking.storage_path={os.environ['TRANSGAN_LAB_STORAGE_PATH']}"] + overrides
    t0 = time.monotonic()
    try:
        cfg = load_config(preset, overrides)
        result = run_sweep(
            cfg, out_root=args.out, name=args.name, space=space, num_samples=args.samples, address=ray_address(args)
        )
    except (ConfigError, TrackingUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_results(result, cfg)
    print(f"\nsweep wall time: {time.monotonic() - t0:.0f} s")
    return 0 if result.best is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
