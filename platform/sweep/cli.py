"""`transgan-lab sweep PRESET`: validate, check the store, run or resume, print the results."""

from __future__ import annotations

import json

from transgan_lab.platform.config import load_config, to_yaml
from transgan_lab.platform.ray_train import storage_path_for
from transgan_lab.platform.sweep.driver import DRIVER_CPU, default_sweep_name, run_sweep
from transgan_lab.platform.sweep.results import print_results
from transgan_lab.platform.sweep.space import check_space


def cmd_sweep(args) -> int:
    cfg = load_config(args.preset, args.overrides)
    space = args.space or cfg.sweep.space
    samples = args.samples or cfg.sweep.num_samples
    name = args.name or default_sweep_name(cfg, space)
    if args.dry_run:
        paper = check_space(cfg.model_dump(mode="json"), space, seed=cfg.sweep.seed)
        res = cfg.resources
        print(to_yaml(cfg), end="")
        print(
            f"# sweep {name}: {samples} trials of space {space!r}; first point (the preset): "
            f"{json.dumps(paper, sort_keys=True)}"
        )
        print(
            f"# each trial: {res.workers} worker(s) x (CPU {res.cpus_per_worker}, GPU {res.gpus_per_worker}) "
            f"+ {DRIVER_CPU} CPU driver; max concurrent: {cfg.sweep.max_concurrent or 'from the cluster'}"
        )
        print(f"# storage: {storage_path_for(cfg, args.out)}/{name}")
        return 0
    result = run_sweep(cfg, out_root=args.out, name=name, space=space, num_samples=samples, address=args.address)
    print_results(result, cfg)
    return 1 if len(result.errors) == len(result.table) else 0
