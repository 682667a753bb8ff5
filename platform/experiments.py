"""What the user scripts in experiments/ share: environment defaults, tiny smoke overrides, their
common arguments, and which Ray cluster to join.

Part of the installed package, so a script also runs where it was copied alone (``ray submit``
copies only the script to the head node).
"""

from __future__ import annotations

import argparse
import os

# Keep tools quiet and out of $HOME unless the user set otherwise (the Makefile sets the same).
for _k, _v in {
    "RAY_USAGE_STATS_ENABLED": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}.items():
    os.environ.setdefault(_k, _v)

# A digits model small enough that a few training steps take seconds on a 2-core CPU: for
# `--smoke` runs, which check the whole path (Ray, Tune, MLflow) rather than quality.
TINY_MODEL = [  # the model and batch of smoke runs (tests train it too)
    "model.g.embed_dim=64",
    "model.g.depths=[1,1,1]",
    "model.g.heads=2",
    "model.d.embed_dim=32",
    "model.d.depth=1",
    "model.d.heads=2",
    "optim.n_critic=1",
    "optim.batch_d=32",
    "optim.batch_g=32",
]
SMOKE = [
    *TINY_MODEL,
    "train.kimg=0.192",
    "train.log_kimg=0.064",
    "train.checkpoint_kimg=0.064",
    "train.grid_kimg=0.064",
    "train.eval_kimg=0.064",
    "train.keep_last=2",
    "eval.n_fake=64",
    "eval.batch=64",
    "resources.workers=1",
    "resources.cpus_per_worker=0.9",
]


def parser(description: str, *, preset: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--preset", default=preset, help=f"preset name or YAML path (default: {preset})")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.kimg=500 (repeatable)",
    )
    ap.add_argument(
        "--out", default="runs", help="output root: Ray storage and the default MLflow store (default: ./runs)"
    )
    ap.add_argument("--address", help="Ray address; default: 'auto' when a cluster is there, else a local runtime")
    ap.add_argument("--smoke", action="store_true", help="tiny variants on the embedded digits data, locally (minutes)")
    return ap


def ray_address(args) -> str | None:
    """The cluster to join: --address, $RAY_ADDRESS, or 'auto' when `ray start` runs on this node."""
    if args.address:
        return None if args.address == "local" else args.address
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    if args.smoke:
        return None
    # a node of a running cluster (`ray submit` runs the script on the head), else a local runtime
    from transgan_lab.platform import ray_internals

    return "auto" if ray_internals.local_cluster_address() else None
