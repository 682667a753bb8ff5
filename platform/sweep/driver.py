"""The sweep itself: Ray Tune + Optuna (seeded TPE, define-by-run space) + ASHA, every trial a Ray
Train run.

    run_sweep(cfg, out_root=..., name=...) -> SweepResult        `transgan-lab sweep PRESET`

- Each Tune trial runs a small driver function (``trial_driver``: 0.1 CPU) that builds the trial's
  ``TorchTrainer`` with ``TuneReportCallback``; Tune sees rank 0's reports.
- ASHA stops trials on the primary metric (``evals`` = fresh evaluations is its time axis).
  With ``sweep.objectives`` the Optuna study is multi-objective (primary + e.g. ``img_per_s`` or
  ``g_params``) and the result carries the Pareto front; ASHA still prunes on the primary alone.
- MLflow: one parent run per sweep (keyed by ``transgan.sweep_id``), one nested child per trial
  (keyed by sweep id + Tune trial id), so a retried trial or a restored sweep reuses its run.
- Re-running the same sweep name resumes it with ``Tuner.restore`` (finished trials are kept,
  unfinished ones continue from their latest Ray Train checkpoint).
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from pathlib import Path

from transgan_lab import metric_registry
from transgan_lab.platform import tracking
from transgan_lab.platform.config import ConfigError, ExperimentConfig, config_hash, from_dict
from transgan_lab.platform.ray_train import best_checkpoint_uri, build_trainer, init_ray, storage_path_for
from transgan_lab.platform.sweep import results
from transgan_lab.platform.sweep.space import (
    TRIAL_NUMBER,
    apply_params,
    check_space,
    get_space,
    numbered_space,
    trial_label,
)

OBJECTIVES = tuple(metric_registry.METRICS)  # what sweep.objectives may name (besides eval.primary)
DRIVER_CPU = 0.1  # CPU share of each trial's driver actor (it only waits on the TorchTrainer)
STUDY_RUN = "study_run"  # a study trial's only parameter: the index of its prepared run


def default_sweep_name(cfg: ExperimentConfig, space: str) -> str:
    return f"{cfg.name}-{space}-{config_hash(cfg)[:8]}"


def concurrency(cfg: ExperimentConfig, cluster: dict, num_samples: int) -> int:
    """Trials that fit at once: whole TorchTrainers (GPUs per trial, else CPUs per trial + driver)."""
    res = cfg.resources
    if cfg.sweep.max_concurrent:
        k = cfg.sweep.max_concurrent
    elif res.gpus_per_worker > 0:
        k = int(cluster.get("GPU", 0) // (res.workers * res.gpus_per_worker))
    else:
        k = int(cluster.get("CPU", 1) // (res.workers * res.cpus_per_worker + DRIVER_CPU))
    return max(1, min(k, num_samples))


def trial_driver(params: dict, ctx: dict) -> None:
    """One Tune trial: validate its config, get-or-create its MLflow child run, fit a TorchTrainer."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = ray.tune.get_context().get_trial_id()
    variant = ctx.get("variant")
    if STUDY_RUN in params:  # a study's trial: one prepared (variant, seed) config, see platform/study.py
        spec = ctx["runs"][params[STUDY_RUN]]
        cfg, variant = from_dict(spec["config"]), spec["variant"]
        label = f"{ctx['sweep']}-{spec['slug']}"  # also the Train run name: stable across retries
    else:
        label = f"{ctx['sweep']}-{trial_label(params, trial_id)}"
        params = {k: v for k, v in params.items() if k != TRIAL_NUMBER}
        cfg = from_dict(apply_params(ctx["base"], params))
    info, client_uri, run_id = None, None, None
    if ctx.get("tracking"):
        t = ctx["tracking"]
        client_uri = t["uri"]
        tags = tracking.base_tags(
            cfg,
            kind="trial",
            extra={
                "sweep_id": ctx["sweep"],
                "trial_id": trial_id,
                "trial": label,
                "git_commit": t.get("git_commit"),
                "gpu": tracking.gpu_name(),
                "study": ctx.get("study"),
                "variant": variant,
                "storage_path": ctx["train_storage"],
                "sampled": json.dumps(params, sort_keys=True, default=str),
            },
        )
        run_id, _ = tracking.get_or_create_run(
            client_uri,
            t["experiment_id"],
            key={tracking.TAG + "sweep_id": ctx["sweep"], tracking.TAG + "trial_id": trial_id},
            run_name=label,
            tags=tags,
            parent_run_id=t["parent_run_id"],
        )
        info = {"uri": client_uri, "run_id": run_id}
    trainer = build_trainer(
        cfg,
        name=label,
        storage_path=ctx["train_storage"],
        out_dir=str(Path(ctx["out_dir"]) / label),
        tracking_info=info,
        objectives=ctx.get("objectives", ()),
        callbacks=[TuneReportCallback()],
        fault_rate=cfg.sweep.fault_rate,
    )
    try:
        result = trainer.fit()
    except BaseException:
        if run_id:
            tracking.RunLogger(uri=client_uri, run_id=run_id).finish("FAILED")
        raise
    if run_id:
        logger = tracking.RunLogger(uri=client_uri, run_id=run_id)
        ckpt = best_checkpoint_uri(result, cfg.eval.primary)
        logger.set_tags({"outcome": "completed", **({"checkpoint_uri": ckpt} if ckpt else {})})
        logger.finish("FINISHED")


def open_parent_run(
    cfg: ExperimentConfig,
    *,
    name: str,  # the sweep (or study) id: the parent run's transgan.sweep_id
    out_root: str | os.PathLike,  # where the default store lives
    tracking_uri: str | None,  # overrides tracking.uri
    num_samples: int,  # trials under the parent
    commit: str,  # tracking.git_commit(), read once by the caller, which also tags the trials with it
    extra: dict,  # more transgan.* tags
) -> tuple[str, str, tracking.RunLogger]:
    """Check the store (before any Ray work), then get or create the parent run of a sweep or
    study, keyed by its id so a resumed one reuses it: (uri, experiment id, parent logger)."""
    uri = tracking.resolve_tracking_uri(out_root=out_root, cfg_uri=cfg.tracking.uri, override=tracking_uri)
    tracking.check_reachable(uri)  # also creates a SQLite schema once
    experiment_id = tracking.ensure_experiment(uri, cfg.tracking.experiment)
    tags = tracking.base_tags(
        cfg,
        kind="sweep",
        extra={
            "num_samples": num_samples,
            "storage_path": f"{storage_path_for(cfg, out_root)}/{name}",
            "git_commit": commit,
            "gpu": tracking.gpu_name(),
            **extra,
        },
    )
    run_id, _ = tracking.get_or_create_run(
        uri, experiment_id, key={tracking.TAG + "sweep_id": name}, run_name=name, tags=tags
    )
    return uri, experiment_id, tracking.RunLogger(uri=uri, run_id=run_id)


def run_sweep(
    cfg: ExperimentConfig,
    *,
    out_root: str | os.PathLike = "runs",  # Ray storage (default), engine folders, default MLflow store
    name: str | None = None,  # sweep id; re-running the same name resumes it
    space: str | None = None,  # search space name (default sweep.space)
    num_samples: int | None = None,  # trials (default sweep.num_samples)
    address: str | None = None,  # Ray address ("auto" on a cluster); default: local runtime
    tracking_uri: str | None = None,  # overrides tracking.uri
    track: bool = True,  # record in MLflow
    tags: dict | None = None,  # extra transgan.* tags on every run (study, variant)
    progress: bool = True,  # print one line per trial event / evaluation
    num_cpus: int | None = None,  # logical CPUs of a local runtime (default: the machine's)
) -> results.SweepResult:
    """Run (or resume) a sweep; validates everything and checks the tracking store before Ray starts."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from transgan_lab.analysis.pareto import pareto_front
    from transgan_lab.platform.sweep.callbacks import PlacementGroupReaper, Progress

    space = space or cfg.sweep.space
    num_samples = num_samples or cfg.sweep.num_samples
    name = name or default_sweep_name(cfg, space)
    primary = cfg.eval.primary
    bad = [o for o in cfg.sweep.objectives if o not in OBJECTIVES or o == primary]
    if bad:
        raise ConfigError(
            f"sweep.objectives {bad}: each extra objective must be one of {list(OBJECTIVES)} "
            f"and differ from eval.primary={primary!r}"
        )
    objectives = [primary] + list(cfg.sweep.objectives)
    base = cfg.model_dump(mode="json")
    paper = check_space(base, space, seed=cfg.sweep.seed)
    storage = storage_path_for(cfg, out_root)
    out_dir = str(Path(out_root).resolve() / "sweeps" / name)
    tags = dict(tags or {})

    uri = parent_run_id = experiment_id = parent = commit = None
    if track:
        commit = tracking.git_commit()
        extra = {"space": space, "sweep_seed": cfg.sweep.seed, "objectives": ",".join(objectives), **tags}
        uri, experiment_id, parent = open_parent_run(
            cfg,
            name=name,
            out_root=out_root,
            tracking_uri=tracking_uri,
            num_samples=num_samples,
            commit=commit,
            extra=extra,
        )
        parent_run_id = parent.run_id
        parent.log_config(cfg)
        parent.client.log_dict(parent_run_id, paper, "paper_point.json")

    init_ray(address, num_cpus=num_cpus)
    k = concurrency(cfg, ray.cluster_resources(), num_samples)
    ctx = {
        "base": base,
        "sweep": name,
        "out_dir": out_dir,
        "train_storage": f"{storage}/{name}-trials",
        "objectives": list(cfg.sweep.objectives),
        "study": tags.get("study"),
        "variant": tags.get("variant"),
        "tracking": {"uri": uri, "experiment_id": experiment_id, "parent_run_id": parent_run_id, "git_commit": commit}
        if track
        else None,
    }
    trainable = tune.with_resources(tune.with_parameters(trial_driver, ctx=ctx), {"cpu": DRIVER_CPU})

    # Tune's own result files, without its TensorBoard logger (MLflow is the tracker here; TBX
    # also warns about the +inf primary value reported before a trial's first evaluation).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    callbacks = [CSVLoggerCallback(), JsonLoggerCallback(), PlacementGroupReaper()]
    if progress:
        callbacks.append(Progress(primary, num_samples))
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")  # small sweeps: save state often (restore loses less)
    exp_path = f"{storage}/{name}"
    restored = tune.Tuner.can_restore(exp_path)
    if restored:
        if progress:
            print(f"[sweep] resuming {name} from {exp_path}", flush=True)
        # The saved run config (callbacks included), searcher and scheduler state come back with it.
        tuner = tune.Tuner.restore(exp_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        multi = len(objectives) > 1
        # `group=True` (TPE over the space's conditional groups: the searched depths and widths come
        # and go with the stage count) is an argument Optuna 5 still calls experimental: its
        # ExperimentalWarning, and only that category, raised by this constructor, is not the user's to act on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=cfg.sweep.seed, multivariate=True, group=True)
        space_fn, _ = get_space(space)
        searcher = OptunaSearch(
            space=functools.partial(numbered_space, space_fn=space_fn, base=base),
            metric=objectives if multi else primary,
            mode=[metric_registry.mode(o) for o in objectives] if multi else metric_registry.mode(primary),
            points_to_evaluate=[paper],
            sampler=sampler,
        )
        scheduler = ASHAScheduler(
            time_attr="evals",
            metric=primary,
            mode=metric_registry.mode(primary),
            max_t=10_000,
            grace_period=cfg.sweep.grace_reports,
            reduction_factor=cfg.sweep.reduction_factor,
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=num_samples,
                max_concurrent_trials=k,
                time_budget_s=cfg.sweep.time_budget_min * 60 or None,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage,
                verbose=0,
                callbacks=callbacks,
                failure_config=tune.FailureConfig(max_failures=cfg.sweep.max_failures),
            ),
        )
        if progress:
            print(
                f"[sweep] {name}: {num_samples} trials of space {space!r}, {k} at a time, "
                f"ASHA on {primary} (grace {cfg.sweep.grace_reports} evaluations, x{cfg.sweep.reduction_factor})"
                + (f", objectives {objectives}" if multi else ""),
                flush=True,
            )
    grid = tuner.fit()

    df = results.trials_table(grid, primary, list(cfg.sweep.objectives))
    ok = df[(df["status"] == "TERMINATED") & df[primary].map(math.isfinite)] if not df.empty else df
    best = ok.iloc[0].to_dict() if len(ok) else None
    pareto = pareto_front(ok, objectives) if len(objectives) > 1 and len(ok) else None
    if parent is not None:
        outcomes = results.finalize_trial_runs(uri, experiment_id, name, df)
        df.insert(3, "outcome", df["trial_id"].map(lambda t: outcomes.get(t, "")))
        if best is not None:
            best["outcome"] = outcomes.get(best["trial_id"], "")
        results.record_on_parent(
            parent, uri=uri, experiment_id=experiment_id, sweep=name, primary=primary, df=df, best=best, pareto=pareto
        )
    return results.SweepResult(
        name=name,
        path=exp_path,
        tracking_uri=uri,
        parent_run_id=parent_run_id,
        table=df,
        best=best,
        pareto=pareto,
        restored=restored,
        errors=[r for r in df["trial"][df["status"] == "ERROR"]] if len(df) else [],
        runs_dir=out_dir,
    )
