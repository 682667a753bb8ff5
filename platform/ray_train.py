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

import math
import os
import random
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

from transgan_lab.platform import tracking as mlt
from transgan_lab.platform.config import ExperimentConfig, config_hash, from_dict

EVAL_METRICS = mlt.EVAL_METRICS


def metric_mode(name: str) -> str:
    """"min" or "max": which direction is better for a reported metric."""
    if name.endswith("is") or name in ("img_per_s",):
        return "max"
    return "min"


def worst_value(name: str) -> float:
    """The primary metric's value before the first evaluation: the worst finite float.

    Finite on purpose: Ray Train keeps its checkpoint list as JSON in storage and writes ±inf as
    null; a re-launched run restores that list and fails ranking a null score against the new
    checkpoints. Tables use ``evals`` (0 = not evaluated), not this value, to tell the two apart."""
    return sys.float_info.max if metric_mode(name) == "min" else -sys.float_info.max


def run_name(cfg: ExperimentConfig) -> str:
    """Deterministic readable run id: ``<name>-<config hash[:8]>`` (re-running it resumes)."""
    return f"{cfg.name}-{config_hash(cfg)[:8]}"


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
        logger: Optional[mlt.RunLogger] = None,  # MLflow writer (rank 0 only)
        extra: Optional[dict[str, float]] = None,  # constant metrics added to every Ray report (g_params)
        checkpoint_base: Optional[str] = None,  # "<storage>/<run name>" where Ray keeps checkpoints
    ):
        self.rank, self.primary, self.logger = rank, primary, logger
        self.extra = dict(extra or {})
        self.checkpoint_base = checkpoint_base
        self.last_primary = worst_value(primary)
        self.evals = 0
        self.reports = 0

    def report(self, metrics: dict, checkpoint_dir: Optional[str] = None, files: Optional[dict] = None) -> None:
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
    reporter = RayTrainReporter(rank=rank, primary=primary, logger=logger, extra=extra,
                                checkpoint_base=loop.get("checkpoint_base"))
    kwargs = dict(out_dir=str(out_dir), allow_config_change=bool(loop.get("allow_config_change")))
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # a restarted worker group or a re-launched driver: continue
        with checkpoint.as_directory() as resume_dir:
            status = train(cfg, reporter, resume=resume_dir, **kwargs)
    else:
        status = train(cfg, reporter, resume=_stored_checkpoint(loop.get("checkpoint_base")) or loop.get("resume"),
                       **kwargs)
    if logger is not None:
        logger.set_tags({"train_status": status.get("status", "unknown")})
        if status.get("status") == "diverged":
            raise RuntimeError(status.get("message", "training diverged"))


def _stored_checkpoint(base: Optional[str]) -> Optional[str]:
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
    tracking_info: Optional[dict] = None,  # {"uri": ..., "run_id": ...}; None = no MLflow
    resume: Optional[str] = None,  # engine checkpoint to start from when Ray has none
    allow_config_change: bool = False,  # passed to the engine's resume check
    objectives: Iterable[str] = (),  # extra metrics to add to every report (g_params, d_params)
    callbacks: Iterable[Any] = (),  # ray.train.UserCallback objects (TuneReportCallback in sweeps)
    max_failures: Optional[int] = None,  # worker-group restarts; default cfg.sweep.max_failures
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
        "objectives": [o for o in objectives if o in ("g_params", "d_params")],
        "checkpoint_base": f"{storage_path.rstrip('/')}/{name}",
        "fault_rate": fault_rate,
    }
    run_config = ray.train.RunConfig(
        name=name,
        storage_path=storage_path,
        failure_config=ray.train.FailureConfig(max_failures=cfg.sweep.max_failures if max_failures is None else max_failures),
        checkpoint_config=ray.train.CheckpointConfig(
            num_to_keep=cfg.train.keep_last,
            checkpoint_score_attribute=primary,
            checkpoint_score_order=metric_mode(primary),
        ),
        callbacks=list(callbacks),
    )
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop,
        scaling_config=ray.train.ScalingConfig(num_workers=res.workers, use_gpu=use_gpu, resources_per_worker=per_worker),
        run_config=run_config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo", timeout_s=timeout_s),
    )


def best_checkpoint_uri(result: Any) -> Optional[str]:
    """Location of the best kept checkpoint of a finished Train result (by the primary metric)."""
    best = getattr(result, "best_checkpoints", None) or []
    if best:
        return best[0][0].path if len(best) == 1 else _pick_best(best)
    ckpt = getattr(result, "checkpoint", None)
    return ckpt.path if ckpt is not None else None


def _pick_best(best: list) -> Optional[str]:
    scored = [(ck, m) for ck, m in best if isinstance(m, dict)]
    if not scored:
        return best[-1][0].path
    key = next((k for k in EVAL_METRICS if k in scored[0][1]), None)
    if key is None:
        return best[-1][0].path
    sign = 1 if metric_mode(key) == "min" else -1
    return min(scored, key=lambda cm: sign * float(cm[1].get(key, math.inf * sign)))[0].path


def init_ray(address: Optional[str] = None, *, num_cpus: Optional[int] = None, log_to_driver: Optional[bool] = None) -> None:
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
    # address="local": always a fresh runtime of our own, never another user's cluster on this machine.
    # The dashboard (bound to 127.0.0.1) serves Ray's State API, which Ray Train's own placement-group
    # cleaner asks; sweeps do not rely on it alone (see reap_orphaned_placement_groups).
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
             object_store_memory=300 * 1024**2, log_to_driver=log_to_driver)


def reap_orphaned_placement_groups() -> list[str]:
    """Remove placement groups whose creating actor is dead; return their ids (hex).

    A placement group lives as long as the *job* that created it, not the actor: the worker-group
    group a Train controller actor creates inside a Tune trial outlives that trial when the trial is
    stopped by ASHA or fails and its controller dies without tidying up. Ray's own detached
    cleaner actor covers this only when its State API query answers in time (on a loaded machine it
    often does not), so the sweep driver, which owns the job, reaps them itself: a group that was
    created by an actor (the driver's own groups have no creating actor), whose creator is dead and
    which is not detached is reserved for nobody and is removed. Only this job's groups are
    touched (other jobs on a shared cluster are theirs to manage). Needs a connected Ray runtime.
    """
    import ray
    from ray._private.state import state
    from ray.core.generated import gcs_pb2
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    job = ray.get_runtime_context().get_job_id()
    removed = []
    for raw in state._connect_and_get_accessor().get_placement_group_table():
        pg = gcs_pb2.PlacementGroupTableData.FromString(raw)
        if ray.JobID(pg.creator_job_id).hex() != job:
            continue
        if pg.state == gcs_pb2.PlacementGroupTableData.REMOVED or pg.is_detached:
            continue
        if ray.ActorID(pg.creator_actor_id).is_nil() or not pg.creator_actor_dead:
            continue
        pg_id = ray.PlacementGroupID(pg.placement_group_id)
        try:
            remove_placement_group(PlacementGroup(pg_id))
        except Exception:  # removed meanwhile (by Ray's own cleaner): nothing left to do
            continue
        removed.append(pg_id.hex())
    return removed


def run_train_ray(
    cfg: ExperimentConfig,
    *,
    out_root: str | os.PathLike = "runs",  # output root: engine folders, Ray storage, default MLflow store
    resume: Optional[str] = None,  # engine checkpoint to start from (Ray's own checkpoint wins)
    allow_config_change: bool = False,  # resume although the dynamics config changed
    tracking: bool = True,  # log to MLflow
    tracking_uri: Optional[str] = None,  # overrides tracking.uri
    address: Optional[str] = None,  # Ray address; default: local runtime (or RAY_ADDRESS)
    tags: Optional[dict] = None,  # extra transgan.* tags (study, variant)
    name: Optional[str] = None,  # Ray run name; default <name>-<config hash[:8]>
) -> dict:
    """One training run on Ray Train (resources.workers ranks), tracked in one MLflow run.

    Checks the tracking store before starting Ray. Returns {"name", "metrics", "checkpoint_uri",
    "run_id", "path", "status"}.
    """
    name = name or run_name(cfg)
    storage = storage_path_for(cfg, out_root)
    out_dir = str(Path(out_root).resolve() / "train" / name)
    info, logger = None, None
    if tracking:
        uri = mlt.resolve_tracking_uri(out_root=out_root, cfg_uri=cfg.tracking.uri, override=tracking_uri)
        mlt.check_reachable(uri)
        extra = {"storage_path": storage, "ray_run_name": name, **(tags or {})}
        logger = mlt.start_train_run(cfg, uri=uri, run_key=f"ray:{storage}/{name}", run_name=name, tags=extra)
        info = {"uri": uri, "run_id": logger.run_id}
    init_ray(address)
    trainer = build_trainer(cfg, name=name, storage_path=storage, out_dir=out_dir, tracking_info=info,
                            resume=resume, allow_config_change=allow_config_change)
    try:
        result = trainer.fit()
    except BaseException:
        if logger is not None:
            logger.finish("FAILED")
        raise
    ckpt_uri = best_checkpoint_uri(result)
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
