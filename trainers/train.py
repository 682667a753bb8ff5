"""The GAN training loop every run uses: alone in one process, or as one rank of a Ray Train job.

    train(cfg, reporter, out_dir=...) -> status dict

One **step** = ``optim.n_critic`` D updates then one G update (``trainers.step``), on the state that
``trainers.trainer.Trainer`` builds from the config. Global batches are config; each rank runs
``batch / (world_size * accum)`` rows per micro-batch, so the worker count never changes the
dynamics: latents and gradient-penalty mixing weights are drawn for the whole global batch from a
generator seeded by (seed, step) and sliced per rank (``trainers.rng``), the data stream hands every
rank its slice of the same global batch, and gradients are averaged over ranks (DDP) and micro-batches.

Maintenance (checkpoints, sample grids, evaluation) happens only at report points, which depend on
images seen alone (``trainers.schedule``), so every rank calls ``reporter.report`` the same number of
times (Ray's report is a barrier). Throughput is measured over the training part only; maintenance is
timed separately. Losses are read from the device only when reported (no host sync inside a step). A
NaN/Inf found at a report rolls back to the last good checkpoint with fresh randomness, at most
``train.nan_retries`` times; then the run stops with status ``diverged``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.distributed as dist

from transgan_lab.metric_registry import lower_is_better
from transgan_lab.trainers import checkpoint as ckpt
from transgan_lab.trainers import hashing
from transgan_lab.trainers.device import peak_mem_mb, unwrap
from transgan_lab.trainers.schedule import due_events
from transgan_lab.trainers.trainer import Trainer


class Reporter(Protocol):
    def report(
        self, metrics: dict[str, float], checkpoint_dir: str | None = None, files: dict[str, str] | None = None
    ) -> None: ...


class NullReporter:
    """Reporter that drops everything (metrics still go to metrics.jsonl)."""

    def report(self, metrics, checkpoint_dir=None, files=None) -> None:
        pass


def train(
    cfg: Any,  # resolved experiment config (attributes as in platform/config/schema.py)
    reporter: Reporter | None = None,  # receives metrics, checkpoints and files at report points
    *,
    out_dir: str | os.PathLike,  # run folder: checkpoints/, grids/, metrics.jsonl, status.json
    resume: str | os.PathLike | None = None,  # run dir or checkpoint dir to continue from
    allow_config_change: bool = False,  # resume even if the training-dynamics config changed
    device: str | torch.device | None = None,  # default: this rank's CUDA device, else CPU
    on_step: Callable[[int, dict], None] | None = None,  # called after every step (fault injection, probes)
    progress: bool | None = None,  # one-line progress on stderr; default: when it is a terminal
    dataset: Any = None,  # images in [-1, 1] replacing cfg.data (benchmarks with synthetic data)
) -> dict:
    """Train until cfg.train.kimg; return the final status (also written to status.json)."""
    reporter = reporter or NullReporter()
    t_enter, started_at = time.perf_counter(), time.time()
    t = Trainer(cfg, out_dir=out_dir, device=device, dataset=dataset)
    out, rank = t.out, t.rank
    if resume is not None:
        t.resume(resume, allow_config_change=allow_config_change)
    if rank == 0:
        (out / "config.json").write_text(json.dumps(hashing.as_dict(cfg), indent=1))
        if t.state.config_changes:
            (out / "config_changes.json").write_text(json.dumps(t.state.config_changes, indent=1))
    # The rollback target before the first regular checkpoint: a fresh run's step 0, or the resumed
    # state when it came from elsewhere (e.g. a Ray checkpoint downloaded to another folder).
    need = [resume is None or not ckpt.list_checkpoints(t.ckpt_root)]
    if t.world > 1:
        dist.broadcast_object_list(need, src=0)  # rank 0's folder decides; save() is collective
    if need[0]:
        t.save()
    show = (sys.stderr.isatty() if progress is None else progress) and rank == 0
    primary = cfg.eval.primary
    acc: dict[str, Any] = {}
    n_acc, t_train, t_maint, nimg_mark = 0, 0.0, 0.0, t.state.nimg
    status = "finished"
    latest_eval: dict[str, float] = {}

    while t.state.step < t.last_step:
        t0 = time.perf_counter()
        nimg_before = t.state.nimg
        t.step(acc)
        n_acc += 1
        if on_step is not None:
            on_step(t.state.step, {"G": unwrap(t.G), "D": unwrap(t.D), "G_ema": t.G_ema})
        step = t.state.step
        events = due_events(cfg, nimg_before, t.state.nimg, last=step == t.last_step)
        if not events:
            t_train += time.perf_counter() - t0
            continue
        # One host sync per report: all accumulated device values at once.
        keys = sorted(acc)
        values = torch.stack([torch.as_tensor(acc[k], dtype=torch.float32, device=t.device) for k in keys]) / n_acc
        if t.world > 1:
            dist.all_reduce(values)
            values /= t.world
        values = values.tolist()
        t_train += time.perf_counter() - t0
        t.state.train_s += t_train
        if not all(math.isfinite(v) for v in values):
            t.state.rollbacks += 1
            t.state.reseed += 1
            if t.state.rollbacks > cfg.train.nan_retries or not t.rollback():
                status = "diverged"
                break
            acc, n_acc, nimg_mark, t_train = {}, 0, t.state.nimg, 0.0
            print(
                f"[transgan-lab] non-finite loss or gradient at step {step}: rolled back to step "
                f"{t.state.step} with fresh randomness ({t.state.rollbacks}/{cfg.train.nan_retries})",
                file=sys.stderr,
            )
            continue

        t1 = time.perf_counter()
        metrics = dict(zip(keys, values))
        images = t.state.nimg - nimg_mark
        metrics.update(
            step=step,
            g_updates=step,
            nimg=t.state.nimg,
            kimg=t.state.nimg / 1000,
            epoch=float(t.stream.epoch),
            train_s=t.state.train_s,
            ema_beta=t.last_beta,
            lr_g=t.opt_G.param_groups[0]["lr"],
            lr_d=t.opt_D.param_groups[0]["lr"],
            img_per_s=images / max(t_train, 1e-9),
            sec_per_kimg=t_train / max(images / 1000, 1e-9),
            rollbacks=t.state.rollbacks,
        )
        files: dict[str, str] = {}
        if "eval" in events:
            latest_eval, protocols = t.evaluate()
            if rank == 0:
                ppath = out / "protocols.json"
                ppath.write_text(json.dumps(protocols, indent=1, sort_keys=True))
                files["protocols"] = str(ppath)
            value = latest_eval.get(primary)
            if value is not None and math.isfinite(value):
                better = t.state.best_value is None or (
                    value < t.state.best_value if lower_is_better(primary) else value > t.state.best_value
                )
                if better:
                    t.state.best_value = value
                    t.state.best_checkpoint = str(t.ckpt_root / ckpt.checkpoint_name(step))
        metrics.update(latest_eval)
        if "grid" in events:
            grid = t.write_grid()
            if grid:
                files["grid"] = grid
        ckpt_dir = None
        if "checkpoint" in events:
            saved = t.save()
            ckpt_dir = str(saved) if saved is not None else None
        metrics["peak_mem_mb"] = peak_mem_mb(t.device)
        t_maint_step = time.perf_counter() - t1
        t_maint += t_maint_step
        metrics["maintenance_s"] = t_maint
        if rank == 0:
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
        reporter.report(metrics, checkpoint_dir=ckpt_dir if rank == 0 else None, files=files or None)
        if show:
            print(
                f"\r[{cfg.name}] {metrics['kimg']:.1f}/{cfg.train.kimg:g} kimg  {step}/{t.last_step} G updates  "
                f"loss_d {metrics.get('loss_d', float('nan')):.3f}  loss_g {metrics.get('loss_g', float('nan')):.3f}  "
                f"{metrics['img_per_s']:.0f} img/s",
                end="" if step < t.last_step else "\n",
                file=sys.stderr,
                flush=True,
            )
        acc, n_acc, nimg_mark, t_train = {}, 0, t.state.nimg, 0.0

    result = {
        "status": status,
        "step": t.state.step,
        "nimg": t.state.nimg,
        "kimg": t.state.nimg / 1000,
        "g_updates": t.state.step,
        "train_s": t.state.train_s,
        "rollbacks": t.state.rollbacks,
        "best_value": t.state.best_value,
        "best_checkpoint": t.state.best_checkpoint,
        "primary": primary,
        "metrics": latest_eval,
        "config_changes": t.state.config_changes,
        "resumed_from": t.resumed_from,
        "maintenance_s": t_maint,
        "wall_s": time.perf_counter() - t_enter,  # everything inside train(): setup, steps, evaluation, saving
        "started_at": started_at,  # wall clock (time.time) at entry; the end is started_at + wall_s
    }
    if status == "diverged":
        result["message"] = (
            f"training diverged: non-finite losses or gradients {t.state.rollbacks} times "
            f"(train.nan_retries={cfg.train.nan_retries}); lower the learning rates, raise loss.gp_weight "
            "or use train.precision=fp32"
        )
    if rank == 0:
        (out / "status.json").write_text(json.dumps(result, indent=1))
    return result
