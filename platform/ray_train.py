"""Ray Train launch (Train V2): one ``TorchTrainer`` runs ``trainers.train.train`` on every worker.

- Every rank calls ``ray.train.report`` once per engine report (it is a barrier); rank 0 attaches
  the engine's checkpoint directory, named ``ckpt-<step>`` in storage as well.
- A restarted worker group resumes from ``ray.train.get_checkpoint()`` (the latest reported one);
  a re-launched driver with the same ``(storage_path, name)`` resumes the whole run (Train V2).
- Only rank 0 logs to MLflow (one ``RunLogger``); the run id comes from the launcher, keyed by
  tags, so a retry continues the same MLflow run.
- Reports sent to Ray always carry the primary metric (checkpoint scoring and Tune's strict metric
  check need it in every report): before the first evaluation it is the worst finite value (see
  ``worst_value``), afterwards the latest evaluated value. ``evals`` counts
  fresh evaluations; ASHA uses it as its time axis so rungs compare fresh values only. MLflow gets
  the engine's own metrics, evaluation metrics only where an evaluation ran.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transgan_lab import metric_registry
from transgan_lab.platform import tracking as mlt
from transgan_lab.platform.config import ExperimentConfig, config_hash, from_dict


def worst_value(name: str) -> float:
    """The primary metric's value before the first evaluation: the worst finite float.

    Finite on purpose: Ray Train keeps its checkpoint list as JSON in storage and writes ±inf as
    null; a re-launched run restores that list and fails ranking a null score against the new
    checkpoints. Tables use ``evals`` (0 = not evaluated), not this value, to tell the two apart."""
    return sys.float_info.max if metric_registry.lower_is_better(name) else -sys.float_info.max


def run_name(cfg: ExperimentConfig) -> str:
    """Deterministic readable run id: ``<name>-<config hash[:8]>`` (re-running it resumes)."""
    return f"{cfg.name}-{config_hash(cfg)[:8]}"


def engine_dir_for(out_root: str | os.PathLike, name: str) -> Path:
    """The engine's run folder of Ray run ``name`` (rank 0 writes metrics, status and grids there)."""
    return Path(out_root).resolve() / "train" / name


def storage_path_for(cfg: ExperimentConfig, out_root: str | os.PathLike) -> str:
    """Ray storage: tracking.storage_path (s3://, gs://, NFS) or ``<out>/ray`` (absolute)."""
    if cfg.tracking.storage_path:
        sp = cfg.tracking.storage_path
        return sp if "://" in sp else str(Path(sp).resolve())
    return str(Path(out_root).resolve() / "ray")


def model_sizes(cfg: Any) -> dict[str, float]:
    """Parameters and forward FLOPs per image of G and D (logged once at step 0; g_params/d_params
    are also objectives of multi-objective sweeps). Counted on the meta device: no memory used."""
    from transgan_lab.trainers.flops import model_summary

    return {k: float(v) for k, v in model_summary(cfg).items()}


class RayTrainReporter:
    """Engine reporter on one Ray Train worker: forwards every report to ``ray.train.report``."""

    def __init__(
        self,
        *,
        rank: int,  # world rank of this worker
        primary: str,  # cfg.eval.primary: the checkpoint score and ASHA metric
        logger: mlt.RunLogger | None = None,  # MLflow writer (rank 0 only)
        extra: dict[str, float] | None = None,  # constant metrics added to every Ray report (g_params)
        checkpoint_base: str | None = None,  # "<storage>/<run name>" where Ray keeps checkpoints
    ):
        self.rank, self.primary, self.logger = rank, primary, logger
        self.extra = dict(extra or {})
        self.checkpoint_base = checkpoint_base
        self.last_primary = worst_value(primary)
        self.evals = 0
        self.reports = 0

    def report(self, metrics: dict, checkpoint_dir: str | None = None, files: dict | None = None) -> None:
        import ray.train

        files = dict(files or {})
        fresh = "protocols" in files  # the engine writes protocols exactly when it evaluated (rank 0)
        if fresh and self.primary in metrics:
            self.evals += 1
            self.last_primary = float(metrics[self.primary])
        self.reports += 1
        checkpoint_uri = None
        if checkpoint_dir is not None and self.checkpoint_base:
            checkpoint_uri = f"{self.checkpoint_base}/{Path(checkpoint_dir).name}"
        if self.logger is not None:
            self.logger.report(metrics, files, checkpoint_uri=checkpoint_uri)
        out = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        out.update(self.extra)
        out[self.primary] = self.last_primary
        out["evals"] = float(self.evals)
        out["reports"] = float(self.reports)
        if checkpoint_dir is not None:
            ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir)
            ray.train.report(out, checkpoint=ckpt, checkpoint_dir_name=Path(checkpoint_dir).name)
        else:
            ray.train.report(out)


def train_loop_per_worker(loop: dict) -> None:
    """Runs on every Ray Train worker: rebuild the config, resume if Ray has a checkpoint, train."""
    import ray.train
    import torch

    from transgan_lab.trainers.train import train

    cfg = from_dict(loop["config"])
    # Compute threads = the CPUs this worker reserved. Ray sets OMP_NUM_THREADS only for whole CPU
    # counts, so a 0.9-CPU worker ran a thread per core and two trials on 2 cores ran 4 threads.
    torch.set_num_threads(max(1, int(cfg.resources.cpus_per_worker)))
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    out_dir = Path(loop["out_dir"])
    if rank != 0:
        out_dir = out_dir / "ranks" / str(rank)  # other ranks write nothing important; keep them apart
    out_dir.mkdir(parents=True, exist_ok=True)
    primary = cfg.eval.primary
    extra: dict[str, float] = {}
    if loop.get("objectives"):
        extra.update({k: v for k, v in model_sizes(cfg).items() if k in loop["objectives"]})
    logger = None
    if rank == 0 and loop.get("tracking"):
        t = loop["tracking"]
        logger = mlt.RunLogger(uri=t["uri"], run_id=t["run_id"])
        logger.log_config(cfg)
        try:
            logger.log_static(model_sizes(cfg))
        except Exception as e:  # noqa: BLE001 - sizes are informational; never stop training for them
            logger.set_tags({"model_sizes_error": repr(e)[:500]})
    fault_rate = float(loop.get("fault_rate") or 0.0)
    if fault_rate and random.Random(os.urandom(8)).random() < fault_rate:
        # Soak tests (sweep.fault_rate): every rank decides alone, so one failing rank also
        # exercises the teardown of a group whose other ranks wait in a collective.
        raise RuntimeError(f"injected worker fault (sweep.fault_rate={fault_rate})")
    reporter = RayTrainReporter(
        rank=rank, primary=primary, logger=logger, extra=extra, checkpoint_base=loop.get("checkpoint_base")
    )
    kwargs = dict(out_dir=str(out_dir), allow_config_change=bool(loop.get("allow_config_change")))
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # a restarted worker group or a re-launched driver: continue
        with checkpoint.as_directory() as resume_dir:
            status = train(cfg, reporter, resume=resume_dir, **kwargs)
    else:
        status = train(
            cfg, reporter, resume=_stored_checkpoint(loop.get("checkpoint_base")) or loop.get("resume"), **kwargs
        )
    if logger is not None:
        logger.set_tags({"train_status": status.get("status", "unknown")})
        if status.get("status") == "diverged":
            raise RuntimeError(status.get("message", "training diverged"))


def _stored_checkpoint(base: str | None) -> str | None:
    """Newest valid engine checkpoint already in this run's (local or shared-disk) Ray storage.

    Ray Train collects a worker's reports only when the controller polls it, so a worker killed
    right after reporting a checkpoint can take that report with it: the restarted group then gets
    no checkpoint from ``get_checkpoint()`` although the checkpoint is complete in storage. Every
    rank reads the same storage, so all ranks resume from the same step.
    """
    if not base or "://" in base or not Path(base).is_dir():
        return None
    from transgan_lab.trainers import checkpoint as ckpt

    try:
        found, _ = ckpt.latest_valid(base)
    except ckpt.CheckpointError:
        return None
    return str(found)


def build_trainer(
    cfg: ExperimentConfig,
    *,
    name: str,  # deterministic Ray run name (re-using it resumes the run)
    storage_path: str,  # Ray storage root: local dir, or s3:// / gs:// / NFS on a cluster
    out_dir: str,  # the engine's run folder (rank 0); other ranks use out_dir/ranks/<k>
    tracking_info: dict | None = None,  # {"uri": ..., "run_id": ...}; None = no MLflow
    resume: str | None = None,  # engine checkpoint to start from when Ray has none
    allow_config_change: bool = False,  # passed to the engine's resume check
    objectives: Iterable[str] = (),  # extra objectives; model sizes among them join every report
    callbacks: Iterable[Any] = (),  # ray.train.UserCallback objects (TuneReportCallback in sweeps)
    max_failures: int | None = None,  # worker-group restarts; default cfg.sweep.max_failures
    fault_rate: float = 0.0,  # injected worker failure probability per attempt (soak tests)
    timeout_s: int = 1800,  # collective timeout of the process group
):
    """A ``TorchTrainer`` for ``cfg`` (gloo on CPU, nccl with GPUs)."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    res = cfg.resources
    use_gpu = res.gpus_per_worker > 0
    per_worker = {"CPU": float(res.cpus_per_worker)}
    if use_gpu:
        per_worker["GPU"] = float(res.gpus_per_worker)
    primary = cfg.eval.primary
    loop = {
        "config": cfg.model_dump(mode="json"),
        "out_dir": out_dir,
        "tracking": tracking_info,
        "resume": resume,
        "allow_config_change": allow_config_change,
        "objectives": [o for o in objectives if o in metric_registry.SIZE_METRICS],
        "checkpoint_base": f"{storage_path.rstrip('/')}/{name}",
        "fault_rate": fault_rate,
    }
    run_config = ray.train.RunConfig(
        name=name,
        storage_path=storage_path,
        failure_config=ray.train.FailureConfig(
            max_failures=cfg.sweep.max_failures if max_failures is None else max_failures
        ),
        checkpoint_config=ray.train.CheckpointConfig(
            num_to_keep=cfg.train.keep_last,
            checkpoint_score_attribute=primary,
            checkpoint_score_order=metric_registry.mode(primary),
        ),
        callbacks=list(callbacks),
    )
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop,
        scaling_config=ray.train.ScalingConfig(
            num_workers=res.workers, use_gpu=use_gpu, resources_per_worker=per_worker
        ),
        run_config=run_config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo", timeout_s=timeout_s),
    )


def best_checkpoint_uri(result: Any, primary: str) -> str | None:
    """Location of the best kept checkpoint of a finished Train result (by the primary metric, as
    Ray scored them); the latest one when none carries a score."""
    scored = [
        (ck, m[primary])
        for ck, m in (getattr(result, "best_checkpoints", None) or [])
        if isinstance(m, dict) and isinstance(m.get(primary), (int, float))
    ]
    if scored:
        pick = min if metric_registry.lower_is_better(primary) else max
        return pick(scored, key=lambda cm: float(cm[1]))[0].path
    ckpt = getattr(result, "checkpoint", None)
    return ckpt.path if ckpt is not None else None


def init_ray(address: str | None = None, *, num_cpus: int | None = None, log_to_driver: bool | None = None) -> None:
    """Connect to a cluster (``address``, or "auto" when RAY_ADDRESS is set) or start a local runtime."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True if log_to_driver is None else log_to_driver)
        return
    if log_to_driver is None:  # a local runtime: worker logs stay in its session folder unless asked for
        log_to_driver = bool(os.environ.get("TRANSGAN_LAB_RAY_LOGS"))
    # A busy machine can take long to register the raylet; the default wait (~10 s) is too short there.
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "120")
    # The raylet warns ("N PYTHON worker processes have been started ... 4x the maximum expected startup
    # concurrency") once it has started 4x its start-up concurrency, which defaults to the CPU count. A
    # sweep starts a 0.1-CPU driver, Ray Train's controller and the workers per trial, so on a 2-core
    # machine the demo alone starts 8: expected here, not the user's to act on. Ray reads this setting
    # (worker_maximum_startup_concurrency, checked against Ray 2.60.0) from the raylet's environment;
    # it raises how many workers may start at once, and the warning's threshold with it.
    os.environ.setdefault("RAY_worker_maximum_startup_concurrency", str(max(8, 3 * (os.cpu_count() or 1))))
    # address="local": always a fresh runtime of our own, never another user's cluster on this machine.
    # The dashboard (bound to 127.0.0.1) serves Ray's State API, which Ray Train's own placement-group
    # cleaner asks; sweeps do not rely on it alone (see sweep.callbacks.reap_orphaned_placement_groups).
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        object_store_memory=300 * 1024**2,
        log_to_driver=log_to_driver,
    )


def run_train_ray(
    cfg: ExperimentConfig,
    *,
    out_root: str | os.PathLike = "runs",  # output root: engine folders, Ray storage, default MLflow store
    resume: str | None = None,  # engine checkpoint to start from (Ray's own checkpoint wins)
    allow_config_change: bool = False,  # resume although the dynamics config changed
    tracking: bool = True,  # log to MLflow
    tracking_uri: str | None = None,  # overrides tracking.uri
    address: str | None = None,  # Ray address; default: local runtime (or RAY_ADDRESS)
    tags: dict | None = None,  # extra transgan.* tags (study, variant)
    name: str | None = None,  # Ray run name; default <name>-<config hash[:8]>
) -> dict:
    """One training run on Ray Train (resources.workers ranks), tracked in one MLflow run.

    Checks the tracking store before starting Ray. Returns {"name", "metrics", "checkpoint_uri",
    "run_id", "path", "status"}.
    """
    name = name or run_name(cfg)
    storage = storage_path_for(cfg, out_root)
    out_dir = str(engine_dir_for(out_root, name))
    info, logger = None, None
    if tracking:
        uri = mlt.resolve_tracking_uri(out_root=out_root, cfg_uri=cfg.tracking.uri, override=tracking_uri)
        mlt.check_reachable(uri)
        extra = {"storage_path": storage, "ray_run_name": name, **(tags or {})}
        logger = mlt.start_train_run(cfg, uri=uri, run_key=f"ray:{storage}/{name}", run_name=name, tags=extra)
        info = {"uri": uri, "run_id": logger.run_id}
    init_ray(address)
    trainer = build_trainer(
        cfg,
        name=name,
        storage_path=storage,
        out_dir=out_dir,
        tracking_info=info,
        resume=resume,
        allow_config_change=allow_config_change,
    )
    try:
        result = trainer.fit()
    except BaseException:
        if logger is not None:
            logger.finish("FAILED")
        raise
    ckpt_uri = best_checkpoint_uri(result, cfg.eval.primary)
    if logger is not None:
        if ckpt_uri:
            logger.set_tags({"checkpoint_uri": ckpt_uri})
        logger.finish("FINISHED" if result.error is None else "FAILED")
    return {
        "name": name,
        "metrics": dict(result.metrics or {}),
        "checkpoint_uri": ckpt_uri,
        "run_id": logger.run_id if logger else None,
        "path": result.path,
        "status": "finished" if result.error is None else "failed",
        "error": repr(result.error) if result.error is not None else None,
    }
