"""Single-process commands: summary, train, eval, sample.

Each resolves and checks all of its input first (config, paths, metric names) and only then
creates folders or starts work, so a refused command leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from transgan_lab.platform import config as C
from transgan_lab.platform.cli import UserError
from transgan_lab.platform.validate_args import contained


def _load(args: argparse.Namespace, extra: list[str] | None = None) -> C.ExperimentConfig:
    return C.load_config(args.preset, list(args.overrides) + list(extra or []))


def run_dir_for(cfg: C.ExperimentConfig, out_root: str | Path) -> Path:
    """Deterministic run folder: <out>/<name>-<config hash[:8]>."""
    from transgan_lab.platform.ray_train import run_name  # one naming rule for local and Ray runs

    name = run_name(cfg)
    contained(out_root, name, what="the run folder")  # cfg.name is a checked name; this guards the rule
    return Path(out_root) / name


# ------------------------------------------------------------------------------ summary


def cmd_summary(args: argparse.Namespace) -> int:
    from transgan_lab.trainers.flops import model_summary

    cfg = _load(args)
    s = model_summary(cfg)
    if args.json:
        print(json.dumps({"preset": cfg.preset, **s}, indent=2))
        return 0
    print(
        f"{cfg.preset or cfg.name}: G {s['g_params'] / 1e6:.2f} M params, {s['g_flops'] / 1e9:.3f} GFLOPs/img; "
        f"D {s['d_params'] / 1e6:.2f} M params, {s['d_flops'] / 1e9:.3f} GFLOPs/img"
    )
    return 0


# -------------------------------------------------------------------------------- train


def _resources_line(cfg: C.ExperimentConfig, ray: bool) -> str:
    r = cfg.resources
    if not ray:
        return "resources: this process only (1 worker; use --ray for resources.workers workers)"
    return (
        f"resources: {r.workers} Ray Train worker(s) x ({r.cpus_per_worker:g} CPU, {r.gpus_per_worker:g} GPU); "
        f"per-worker batch D {cfg.optim.batch_d // r.workers} / G {cfg.optim.batch_g // r.workers}, "
        f"accum {cfg.optim.accum}"
    )


def cmd_train(args: argparse.Namespace) -> int:
    from transgan_lab.trainers.schedule import short_run_warning, steps_left, total_steps

    extra = [f"train.kimg={args.kimg}"] if args.kimg is not None else []
    cfg = _load(args, extra)
    warning = short_run_warning(cfg)
    if warning:
        print(warning, file=sys.stderr)
    run_dir = run_dir_for(cfg, args.out)
    resume, length = None, f"{total_steps(cfg)} steps to {cfg.train.kimg:g} kimg"
    if args.resume:
        from transgan_lab.trainers import checkpoint as ckpt

        resume = Path(args.resume)
        from transgan_lab.trainers.trainer import resume_changes

        found, manifest = ckpt.latest_valid(resume)  # refuse a bad path before anything starts
        # The engine checks again; here a changed config is refused before any run is made.
        resume_changes(found, manifest, cfg, allow_config_change=args.allow_config_change)
        step, nimg = int(manifest["step"]), int(manifest.get("nimg", 0))
        length = (
            f"resumes {found.name} at step {step} ({nimg / 1000:g} kimg); "
            f"{steps_left(cfg, nimg)} steps to {cfg.train.kimg:g} kimg"
        )
        root = ckpt.resolve_checkpoint_root(found)
        run_dir = root.parent if root.name == "checkpoints" else run_dir
    elif not args.ray and run_dir.exists() and any((run_dir / "checkpoints").glob("ckpt-*")):
        # A Ray run keeps its own folder and storage, and re-running it continues its own checkpoint:
        # a local run of the same config in --out is no conflict for it.
        raise UserError(
            f"{run_dir} already holds checkpoints of this config; continue it with --resume {run_dir}, "
            "or choose another --out"
        )
    if args.dry_run:
        if args.ray:  # a Ray run keeps its own folder, also when it resumes another run's checkpoint
            from transgan_lab.platform.ray_train import engine_dir_for, run_name

            run_dir = engine_dir_for(args.out, run_name(cfg))
        print(C.to_yaml(cfg), end="")
        print(f"# run dir: {run_dir}\n# {length}")
        print(f"# {_resources_line(cfg, args.ray)}")
        return 0
    # Fail before any work when the data or the tracking store cannot be reached.
    from transgan_lab.trainers.data import build_dataset

    build_dataset(cfg.data)
    if args.ray:
        from transgan_lab.platform.ray_train import run_train_ray

        result = run_train_ray(
            cfg,
            out_root=args.out,
            resume=str(resume) if resume else None,  # Ray's own checkpoint of this run, if any, wins
            allow_config_change=args.allow_config_change,
            tracking=not args.no_tracking,
        )
        return 0 if result.get("status") == "finished" else 1
    return _train_local(
        cfg,
        run_dir,
        resume=resume,
        allow_config_change=args.allow_config_change,
        tracking=not args.no_tracking,
        out_root=args.out,
    )


def _train_local(cfg, run_dir: Path, *, resume, allow_config_change: bool, tracking: bool, out_root) -> int:
    from transgan_lab.trainers.train import train

    created = not run_dir.exists()
    # The tracking store is checked (and the MLflow run made) before the run folder exists, so an
    # unreachable or unusable store leaves no empty run folder behind.
    reporter, finish = _local_reporter(cfg, run_dir, tracking=tracking, out_root=out_root)
    run_dir.mkdir(parents=True, exist_ok=True)
    from transgan_lab.platform.progress import TrainProgress, ui_hint

    hint = None
    if tracking:
        from transgan_lab.tracking_client import resolve_tracking_uri

        hint = ui_hint(resolve_tracking_uri(out_root=out_root, cfg_uri=cfg.tracking.uri))
        print(hint, flush=True)
    progress = TrainProgress(reporter, total_kimg=cfg.train.kimg)
    try:
        result = train(cfg, progress, out_dir=run_dir, resume=resume, allow_config_change=allow_config_change)
    except BaseException as e:
        progress.close()
        finish("FAILED")
        if created and not any(run_dir.rglob("ckpt-*")):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing recorded yet: leave nothing behind
        os_error = _os_error_in_chain(e)
        if os_error is None:
            raise
        # Disk full, file too large, read-only or lost storage: say what survived and how to go on.
        print(f"error: {_storage_failure(os_error, run_dir)}", file=sys.stderr)
        return 1
    progress.close()
    finish("FINISHED" if result["status"] == "finished" else "FAILED")
    _print_result(result, run_dir)
    if hint:
        print(hint)
    if result["status"] != "finished":
        print(f"error: {result.get('message', result['status'])}", file=sys.stderr)
        return 1
    return 0


def _os_error_in_chain(e: BaseException) -> OSError | None:
    """The OSError behind ``e`` (torch.save turns ENOSPC into a RuntimeError raised while handling it)."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError) and e.errno is not None:
            return e
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def _storage_failure(e: OSError, run_dir: Path) -> str:
    """One paragraph for a failed write: what failed, which checkpoint is intact, how to continue."""
    from transgan_lab.trainers import checkpoint as ckpt

    what = f"writing {e.filename}" if e.filename else "a write"
    try:
        found, manifest = ckpt.latest_valid(run_dir)
        kept = f"the newest intact checkpoint is {found} (step {manifest['step']})"
        fix = f"free space or fix the storage, then continue with --resume {run_dir}"
    except ckpt.CheckpointError:
        kept = "no checkpoint was completed"
        fix = "free space or fix the storage and start again"
    return f"training stopped: {what} failed ({e.strerror or e}); {kept}; {fix}"


def _local_reporter(cfg, run_dir: Path, *, tracking: bool, out_root):
    """(reporter, finish(status)) for a single-process run; MLflow when tracking is on."""
    if tracking:
        from transgan_lab.platform.tracking import local_run_reporter

        return local_run_reporter(cfg, run_dir=run_dir, out_root=out_root)
    from transgan_lab.trainers.train import NullReporter

    return NullReporter(), lambda status: None


def _print_result(result: dict, run_dir: Path) -> None:
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in (result.get("metrics") or {}).items())
    print(
        f"{result['status']}: {result['kimg']:.1f} kimg in {result['step']} steps"
        + (f"; {metrics}" if metrics else "")
        + f"\nrun dir: {run_dir}"
    )


# ---------------------------------------------------------------------------- eval / sample


def load_generator(path: str | Path, *, device: str = "cpu") -> tuple[C.ExperimentConfig, Any, dict]:
    """(config, EMA generator, manifest) of the newest valid checkpoint at ``path``."""
    from transgan_lab.trainers import checkpoint as ckpt
    from transgan_lab.trainers.models import build_generator

    found, manifest = ckpt.latest_valid(path)
    cfg = C.from_dict(manifest["config"])
    _, state = ckpt.load_checkpoint(found, names=["G_ema"])
    G = build_generator(cfg)
    G.load_state_dict(state["G_ema"])
    return cfg, G.to(device).eval().requires_grad_(False), manifest


def cmd_eval(args: argparse.Namespace) -> int:
    from transgan_lab.trainers.metrics import evaluate

    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    if args.n is not None and args.n < 2:
        raise UserError(f"--n {args.n}: the metrics need at least 2 generated images; give --n 2 or more")
    if args.batch is not None and args.batch < 1:
        raise UserError(f"--batch {args.batch}: give a generation batch size of 1 or more")
    cfg, G, manifest = load_generator(args.checkpoint)
    overrides = {}
    if metrics:
        overrides["metrics"] = metrics
        overrides["primary"] = metrics[0]
    if args.inception_weights:
        overrides["inception_weights"] = args.inception_weights
    if overrides:
        cfg = C.from_dict({**cfg.model_dump(mode="json"), "eval": {**cfg.eval.model_dump(mode="json"), **overrides}})
    official = None
    if getattr(args, "protocol", "ours") == "official":  # resolved (files, preset) before any sampling
        from transgan_lab.platform.official import OfficialEval, eval_json, print_side_by_side

        official = OfficialEval(args, cfg, manifest, metrics)
    results = evaluate(G, cfg, metrics=metrics, n_fake=args.n, batch=args.batch)
    if official is not None:
        official_results = official.run(G, cfg, args.batch)
        if args.json:
            print(
                json.dumps(
                    {
                        "checkpoint": str(args.checkpoint),
                        "step": manifest["step"],
                        "kimg": manifest.get("kimg"),
                        **eval_json(results, official_results),
                    },
                    indent=2,
                    sort_keys=True,
                )
            )
        else:
            print_side_by_side(results, official_results, protocol=official.protocol, skipped=official.skipped)
        return 0
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": str(args.checkpoint),
                    "step": manifest["step"],
                    "kimg": manifest.get("kimg"),
                    "metrics": results,
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        for name, r in results.items():
            p = r["protocol"]
            print(
                f"{name:>11} {r['value']:.4f}   (n_fake {p.get('n_fake')}, n_real {p.get('n_real')}, "
                f"extractor {p.get('extractor')})"
            )
            if r["info"].get("parts"):
                print(" " * 12 + score_parts_line(r["info"]["parts"]))
    return 0


def score_parts_line(parts: dict) -> str:
    """An IS-type score's parts in one line: the label histogram, H(y) of its maximum, E[H(y|x)] and
    the share of confidently labelled samples (``trainers.metrics.score_parts``)."""
    counts = parts["class_counts"]
    present = sum(c > 0 for c in counts)
    return (
        f"labels per class {' '.join(map(str, counts))} ({present} of {len(counts)} classes); "
        f"H(y) {parts['h_marginal']:.3f} of {parts['h_max']:.3f}, E[H(y|x)] {parts['h_conditional']:.3f}; "
        f"{100 * parts['confident_share']:.1f}% of samples at p >= {parts['confident_at']:g}"
    )


def cmd_sample(args: argparse.Namespace) -> int:
    from transgan_lab.trainers.metrics.sampling import write_samples

    if args.n < 1:
        raise UserError(f"--n {args.n}: ask for at least one image")
    if args.interpolate < 0 or args.interpolate == 1:
        raise UserError(f"--interpolate {args.interpolate}: give a number of steps >= 2, or 0 for none")
    _, G, _ = load_generator(args.checkpoint)
    out = Path(args.out)
    created = not out.exists()
    try:
        paths = write_samples(
            G, n=args.n, seed=args.seed, out_dir=args.out, grid=args.grid, interpolate_k=args.interpolate
        )
    except OSError as e:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # leave nothing behind
        raise UserError(
            f"cannot write samples to {args.out}: {e.strerror or e}; pick a writable --out folder"
        ) from None
    print(f"wrote {len(paths)} PNG file(s) to {args.out}")
    return 0
