"""Run the variants of one paper study as Ray Train runs tagged ``transgan.study``/``transgan.variant``.

Each variant is a preset plus overrides; each (variant, seed) is one tracked training run with a
deterministic name, so re-running a study skips nothing and duplicates nothing: an interrupted run
resumes from its Ray checkpoint, a finished one returns at once. `transgan-lab table <study>`
turns the runs into the paper's table.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from transgan_lab.platform.experiments import SMOKE, parser, ray_address

Variant = tuple[str, str, list[str]]  # (row label, preset, overrides)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def main(
    study: str,
    description: str,
    variants: list[Variant],
    smoke_variants: list[Variant],
    argv: Sequence[str] | None = None,
) -> int:
    ap = parser(description, preset="(per variant)")
    ap.add_argument(
        "--seeds", type=int, default=1, help="runs per variant with seeds 0..N-1 (mean +- std in the table)"
    )
    ap.add_argument("--only", action="append", default=[], metavar="LABEL", help="run only this variant (repeatable)")
    ap.add_argument("--dry-run", action="store_true", help="validate and list the runs, start nothing")
    args = ap.parse_args(argv)

    from transgan_lab.platform.config import ConfigError, load_config
    from transgan_lab.platform.ray_train import run_name, run_train_ray
    from transgan_lab.tracking_client import TrackingUnavailable

    chosen = smoke_variants if args.smoke else variants
    if args.only:
        chosen = [v for v in chosen if v[0] in args.only]
        if not chosen:
            print(
                f"error: --only {args.only} matches no variant of {study}; choose from "
                f"{[v[0] for v in (smoke_variants if args.smoke else variants)]}",
                file=sys.stderr,
            )
            return 2
    runs = []
    try:  # every config is validated before the first run starts
        for label, preset, overrides in chosen:
            for seed in range(args.seeds):
                base = (SMOKE if args.smoke else []) + overrides
                cfg = load_config(preset, base + [f"name={study}-{slug(label)}", f"seed={seed}"] + args.overrides)
                runs.append((label, cfg))
    except ConfigError as e:
        print(f"error: {study} variant {label!r}: {e}", file=sys.stderr)
        return 2
    for label, cfg in runs:
        print(f"[{study}] {label:<28} seed {cfg.seed}  {run_name(cfg)}", flush=True)
    if args.dry_run:
        return 0
    t0 = time.monotonic()
    failed = []
    for i, (label, cfg) in enumerate(runs, 1):
        print(f"[{study}] run {i}/{len(runs)}: {label} (seed {cfg.seed})", flush=True)
        try:
            result = run_train_ray(
                cfg, out_root=args.out, address=ray_address(args), tags={"study": study, "variant": label}
            )
        except TrackingUnavailable as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        metric = cfg.eval.primary
        value = result["metrics"].get(metric, float("nan"))
        print(f"[{study}] {label}: {result['status']}, {metric} {value:.4g}", flush=True)
        if result["status"] != "finished":
            failed.append(label)
    print(
        f"\n[{study}] {len(runs)} runs in {time.monotonic() - t0:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    print(f"table:   transgan-lab table {study} --tracking-uri sqlite:///{Path(args.out).resolve()}/mlflow.db")
    return 1 if failed else 0
