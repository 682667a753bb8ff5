"""Sweeps: Ray Tune + Optuna (seeded TPE, define-by-run space) + ASHA, every trial a Ray Train run.

    run_sweep(cfg, out_root=..., name=...) -> SweepResult        `transgan-lab sweep PRESET`

- Each Tune trial runs a small driver function (``trial_driver``: 0.1 CPU) that builds the trial's
  ``TorchTrainer`` with ``TuneReportCallback``; Tune sees rank 0's reports.
- The search space is a define-by-run function from ``transgan_lab.platform.sweep.spaces``; the preset
  itself is the first point evaluated. Every config the space can produce is checked before Ray
  starts (a sample of draws plus the paper point), and each trial validates its own config again.
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from transgan_lab.platform import tracking
from transgan_lab.platform.config import ConfigError, ExperimentConfig, config_hash, from_dict, to_yaml
from transgan_lab.platform.ray_train import (
    EVAL_METRICS,
    build_trainer,
    best_checkpoint_uri,
    init_ray,
    metric_mode,
    reap_orphaned_placement_groups,
    storage_path_for,
)

OBJECTIVES = ("img_per_s", "g_params", "d_params", "sec_per_kimg") + EVAL_METRICS
DRIVER_CPU = 0.1  # CPU share of each trial's driver actor (it only waits on the TorchTrainer)


# ---------------------------------------------------------------------------- search spaces


def get_space(name: str) -> tuple[Callable, Callable]:
    """(space(trial, base), paper_point(base)) of a named space in ``transgan_lab.platform.sweep.spaces``."""
    from transgan_lab.platform.sweep import spaces as module

    spaces = module.SPACES
    if name not in spaces:
        raise ConfigError(f"unknown search space {name!r}: choose one of {sorted(spaces)} (platform/sweep/spaces.py), "
                          "e.g. --space digits or --set sweep.space=cifar")
    return spaces[name][0], functools.partial(module.paper_point, name)


def apply_params(base: dict, params: dict) -> dict:
    """A config dict with sampled ``{"dotted.key": value}`` set (``model.g.depths.0`` sets a list item)."""
    import copy

    out = copy.deepcopy(base)
    for key, value in params.items():
        parts = key.split(".")
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"search space parameter {key!r}: {part!r} is not an index of a list of "
                                      f"{len(node)} items; fix the name in platform/sweep/spaces.py")
                idx = int(part)
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict) and part in node:
                if last:
                    node[part] = value
                else:
                    node = node[part]
            else:
                raise ConfigError(f"search space parameter {key!r} names no config field ({part!r} unknown); "
                                  "use dotted config keys such as model.g.embed_dim in platform/sweep/spaces.py")
    return out


def _ask_params(study, space_fn: Callable, base: dict, fixed: Optional[dict] = None) -> dict:
    """One draw of a define-by-run space from an in-memory Optuna study (the preflight check)."""
    if fixed:
        study.enqueue_trial(fixed)
    trial = study.ask()
    ret = space_fn(trial, base) or {}
    params = {**trial.params, **ret}
    study.tell(trial, 0.0)
    return params


def check_space(
    base: dict,  # the resolved preset as a plain dict
    space: str,  # name in platform/sweep/spaces.py
    *,
    seed: int = 0,  # sampler seed of the check
    draws: int = 64,  # random draws checked besides the paper point
) -> dict:
    """Validate the paper point and ``draws`` random configs of the space; returns the paper point.

    Raises ConfigError naming the bad sampled values and the validation error: bad values fail
    here, before a Ray runtime or a tracking run exists.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space_fn, paper_fn = get_space(space)
    paper = paper_fn(base)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for i in range(draws + 1):
        params = _ask_params(study, space_fn, base, fixed=paper if i == 0 else None)
        try:
            from_dict(apply_params(base, params))
        except ConfigError as e:
            what = "the preset's own point" if i == 0 else f"draw {i}"
            raise ConfigError(
                f"search space {space!r} produces an invalid config ({what}: "
                f"{json.dumps(params, sort_keys=True, default=str)}): {e}; narrow that dimension in "
                "platform/sweep/spaces.py or pick a preset the space fits"
            ) from None
    return paper


# ----------------------------------------------------------------------------- trial driver


TRIAL_NUMBER = "_trial_number"  # config key carrying the Optuna trial number (0 = the preset itself)


def _numbered_space(trial, *, space_fn: Callable, base: dict) -> dict:
    """The space's values plus the Optuna trial number: a readable, restore-stable trial label."""
    return {**(space_fn(trial, base) or {}), TRIAL_NUMBER: trial.number}


def trial_label(config: Optional[dict], trial_id: str) -> str:
    """``t<NNN>`` from the Optuna trial number (the Tune trial id when there is none)."""
    number = (config or {}).get(TRIAL_NUMBER)
    return f"t{int(number):03d}" if number is not None else trial_id


def trial_driver(params: dict, ctx: dict) -> None:
    """One Tune trial: validate its config, get-or-create its MLflow child run, fit a TorchTrainer."""
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = ray.tune.get_context().get_trial_id()
    label = f"{ctx['sweep']}-{trial_label(params, trial_id)}"  # also the Train run name: stable across retries
    params = {k: v for k, v in params.items() if k != TRIAL_NUMBER}
    cfg = from_dict(apply_params(ctx["base"], params))
    info, client_uri, run_id = None, None, None
    if ctx.get("tracking"):
        t = ctx["tracking"]
        client_uri = t["uri"]
        tags = tracking.base_tags(cfg, kind="trial", extra={
            "sweep_id": ctx["sweep"], "trial_id": trial_id, "trial": label, "git_commit": t.get("git_commit"),
            "gpu": tracking.gpu_name(), "study": ctx.get("study"), "variant": ctx.get("variant"),
            "storage_path": ctx["train_storage"], "sampled": json.dumps(params, sort_keys=True, default=str),
        })
        run_id, _ = tracking.get_or_create_run(
            client_uri, t["experiment_id"],
            key={tracking.TAG + "sweep_id": ctx["sweep"], tracking.TAG + "trial_id": trial_id},
            run_name=label, tags=tags, parent_run_id=t["parent_run_id"],
        )
        info = {"uri": client_uri, "run_id": run_id}
    trainer = build_trainer(
        cfg, name=label, storage_path=ctx["train_storage"], out_dir=str(Path(ctx["out_dir"]) / label),
        tracking_info=info, objectives=ctx.get("objectives", ()), callbacks=[TuneReportCallback()],
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
        ckpt = best_checkpoint_uri(result)
        logger.set_tags({"outcome": "completed", **({"checkpoint_uri": ckpt} if ckpt else {})})
        logger.finish("FINISHED")


# ---------------------------------------------------------------------------------- progress


def _progress_callback(primary: str, total: int):
    from ray.tune import Callback

    class Progress(Callback):
        """One line per trial event and per fresh evaluation (the sweep's heartbeat)."""

        def __init__(self):
            self.t0 = time.monotonic()
            self.evals: dict[str, float] = {}

        def setup(self, **info):  # also after a restore, which unpickles this object
            self.t0 = time.monotonic()

        @staticmethod
        def _done(trials) -> int:
            return sum(t.status in ("TERMINATED", "ERROR") for t in trials)

        def _p(self, text: str) -> None:
            m, s = divmod(int(time.monotonic() - self.t0), 60)
            print(f"[sweep {m:02d}:{s:02d}] {text}", flush=True)

        def on_trial_start(self, iteration, trials, trial, **info):
            self._p(f"{trial_label(trial.config, trial.trial_id)} started ({self._done(trials)}/{total} done)")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            evals = result.get("evals", 0)
            if evals and evals != self.evals.get(trial.trial_id):
                self.evals[trial.trial_id] = evals
                self._p(f"{trial_label(trial.config, trial.trial_id)} {result.get('kimg', 0):6.2f} kimg  {primary} {result.get(primary, float('nan')):9.3f}"
                        f"  {result.get('img_per_s', float('nan')):7.1f} img/s")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._p(f"{trial_label(trial.config, trial.trial_id)} ended ({self._done(trials) + 1}/{total} done)")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._p(f"{trial_label(trial.config, trial.trial_id)} FAILED ({self._done(trials) + 1}/{total} done): "
                    f"see {trial.local_path}")

    return Progress()


def _reaper_callback(every_s: float = 2.0):
    from ray.tune import Callback

    class PlacementGroupReaper(Callback):
        """Frees the worker-group placement groups that stopped or failed trials leave behind.

        Without it a sweep with failures or ASHA stops slowly runs out of reservable CPUs/GPUs and
        then waits forever (see ``reap_orphaned_placement_groups``). Runs in the sweep driver after
        every trial end and at most every ``every_s`` seconds of the Tune loop.
        """

        def __init__(self):
            self.last = 0.0

        def _reap(self) -> None:
            self.last = time.monotonic()
            reap_orphaned_placement_groups()

        def on_step_end(self, iteration, trials, **info):
            if time.monotonic() - self.last >= every_s:
                self._reap()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._reap()

        def on_trial_error(self, iteration, trials, trial, **info):
            self._reap()

    return PlacementGroupReaper()


# ------------------------------------------------------------------------------------ sweep


@dataclass
class SweepResult:
    name: str  # sweep id (Tune experiment name, MLflow transgan.sweep_id)
    path: str  # Tune experiment folder
    tracking_uri: Optional[str]
    parent_run_id: Optional[str]
    table: Any  # pandas DataFrame, one row per trial, best first
    best: Optional[dict]  # the best trial's row (primary metric), or None
    pareto: Any = None  # DataFrame of the non-dominated trials (multi-objective), else None
    restored: bool = False
    errors: list = field(default_factory=list)


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


def pareto_front(df, objectives: list[str]):
    """Rows of ``df`` no other row beats on every objective (modes from metric_mode)."""
    import numpy as np

    cols = [c for c in objectives if c in df.columns]
    if len(cols) < 2 or df.empty:
        return None
    vals = df[cols].astype(float).to_numpy() * np.array([1 if metric_mode(c) == "min" else -1 for c in cols])
    ok = np.isfinite(vals).all(axis=1)
    keep = []
    for i in range(len(vals)):
        if not ok[i]:
            continue
        dominated = any(ok[j] and j != i and (vals[j] <= vals[i]).all() and (vals[j] < vals[i]).any() for j in range(len(vals)))
        if not dominated:
            keep.append(i)
    return df.iloc[keep].reset_index(drop=True)


def _grid_table(grid, primary: str, objectives: list[str]):
    import pandas as pd

    rows = []
    for trial in grid._experiment_analysis.trials:  # every trial, also those that never reported
        last = trial.last_result or {}
        row = {"trial_id": trial.trial_id, "trial": trial_label(trial.config, trial.trial_id),
               "status": trial.status, "error": trial.error_file is not None or trial.status == "ERROR"}
        for key in ("evals", "kimg", primary, "img_per_s", *objectives):
            value = last.get(key) if key != primary or last.get("evals") else None  # not evaluated yet
            row[key] = float(value) if isinstance(value, (int, float)) else math.nan
        for key, value in (trial.config or {}).items():
            if key != TRIAL_NUMBER:
                row[key] = json.dumps(value) if isinstance(value, list) else value
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty and primary in df:
        df = df.sort_values(primary, ascending=metric_mode(primary) == "min", na_position="last").reset_index(drop=True)
    return df


def _finalize_tracking(uri: str, experiment_id: str, sweep: str, df) -> None:
    """Close child runs Tune ended without the driver doing it (ASHA stops, errors)."""
    runs = tracking.find_runs(uri, experiment_id, {tracking.TAG + "sweep_id": sweep, tracking.TAG + "kind": "trial"})
    by_trial = {r.data.tags.get(tracking.TAG + "trial_id"): r for r in runs}
    client = tracking._client(uri)
    outcomes: dict[str, str] = {}
    for _, row in df.iterrows():
        run = by_trial.get(row["trial_id"])
        if run is None:
            continue
        outcome = run.data.tags.get(tracking.TAG + "outcome")
        if row["status"] == "ERROR":
            outcome = "failed"
            client.set_tag(run.info.run_id, tracking.TAG + "outcome", outcome)
            if run.info.status != "FAILED":
                client.set_terminated(run.info.run_id, status="FAILED")
        elif row["status"] != "TERMINATED":  # the sweep was interrupted: a re-run resumes this run
            outcome = "interrupted"
            client.set_tag(run.info.run_id, tracking.TAG + "outcome", outcome)
            client.set_terminated(run.info.run_id, status="KILLED")
        elif outcome is None or run.info.status == "RUNNING":  # Tune ended it early (ASHA)
            outcome = "completed" if outcome == "completed" else "stopped_early"
            client.set_tag(run.info.run_id, tracking.TAG + "outcome", outcome)
            client.set_terminated(run.info.run_id, status="FINISHED")
        outcomes[row["trial_id"]] = outcome
        for key in ("evals",):
            if not math.isnan(row.get(key, math.nan)):
                client.set_tag(run.info.run_id, tracking.TAG + key, str(int(row[key])))
    return outcomes


def run_sweep(
    cfg: ExperimentConfig,
    *,
    out_root: str | os.PathLike = "runs",  # Ray storage (default), engine folders, default MLflow store
    name: Optional[str] = None,  # sweep id; re-running the same name resumes it
    space: Optional[str] = None,  # search space name (default sweep.space)
    num_samples: Optional[int] = None,  # trials (default sweep.num_samples)
    address: Optional[str] = None,  # Ray address ("auto" on a cluster); default: local runtime
    tracking_uri: Optional[str] = None,  # overrides tracking.uri
    track: bool = True,  # record in MLflow
    tags: Optional[dict] = None,  # extra transgan.* tags on every run (study, variant)
    progress: bool = True,  # print one line per trial event / evaluation
    num_cpus: Optional[int] = None,  # logical CPUs of a local runtime (default: the machine's)
) -> SweepResult:
    """Run (or resume) a sweep; validates everything and checks the tracking store before Ray starts."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    import optuna

    space = space or cfg.sweep.space
    num_samples = num_samples or cfg.sweep.num_samples
    name = name or default_sweep_name(cfg, space)
    primary = cfg.eval.primary
    bad = [o for o in cfg.sweep.objectives if o not in OBJECTIVES or o == primary]
    if bad:
        raise ConfigError(f"sweep.objectives {bad}: each extra objective must be one of {list(OBJECTIVES)} "
                          f"and differ from eval.primary={primary!r}")
    objectives = [primary] + list(cfg.sweep.objectives)
    base = cfg.model_dump(mode="json")
    paper = check_space(base, space, seed=cfg.sweep.seed)
    storage = storage_path_for(cfg, out_root)
    out_dir = str(Path(out_root).resolve() / "sweeps" / name)
    tags = dict(tags or {})

    uri = parent_run_id = experiment_id = None
    commit = tracking.git_commit()
    if track:
        uri = tracking.resolve_tracking_uri(out_root=out_root, cfg_uri=cfg.tracking.uri, override=tracking_uri)
        tracking.check_reachable(uri)  # before any Ray work; also creates a SQLite schema once
        experiment_id = tracking.ensure_experiment(uri, cfg.tracking.experiment)
        parent_tags = tracking.base_tags(cfg, kind="sweep", extra={
            "space": space, "num_samples": num_samples, "sweep_seed": cfg.sweep.seed,
            "objectives": ",".join(objectives), "storage_path": f"{storage}/{name}", "git_commit": commit,
            "gpu": tracking.gpu_name(), **tags,
        })
        parent_run_id, _ = tracking.get_or_create_run(uri, experiment_id, key={tracking.TAG + "sweep_id": name},
                                                      run_name=name, tags=parent_tags)
        parent = tracking.RunLogger(uri=uri, run_id=parent_run_id)
        parent.log_config(cfg)
        parent.client.log_dict(parent_run_id, paper, "paper_point.json")

    init_ray(address, num_cpus=num_cpus)
    k = concurrency(cfg, ray.cluster_resources(), num_samples)
    ctx = {
        "base": base, "sweep": name, "out_dir": out_dir, "train_storage": f"{storage}/{name}-trials",
        "objectives": list(cfg.sweep.objectives), "study": tags.get("study"), "variant": tags.get("variant"),
        "tracking": {"uri": uri, "experiment_id": experiment_id, "parent_run_id": parent_run_id,
                     "git_commit": commit} if track else None,
    }
    trainable = tune.with_resources(tune.with_parameters(trial_driver, ctx=ctx), {"cpu": DRIVER_CPU})
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    # Tune's own result files, without its TensorBoard logger (MLflow is the tracker here; TBX
    # also warns about the +inf primary value reported before a trial's first evaluation).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    callbacks = [CSVLoggerCallback(), JsonLoggerCallback(), _reaper_callback()]
    if progress:
        callbacks.append(_progress_callback(primary, num_samples))
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
        sampler = optuna.samplers.TPESampler(seed=cfg.sweep.seed, multivariate=True, group=True)
        space_fn, _ = get_space(space)
        searcher = OptunaSearch(
            space=functools.partial(_numbered_space, space_fn=space_fn, base=base),
            metric=objectives if multi else primary,
            mode=[metric_mode(o) for o in objectives] if multi else metric_mode(primary),
            points_to_evaluate=[paper],
            sampler=sampler,
        )
        scheduler = ASHAScheduler(
            time_attr="evals", metric=primary, mode=metric_mode(primary), max_t=10_000,
            grace_period=cfg.sweep.grace_reports, reduction_factor=cfg.sweep.reduction_factor,
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
                                        max_concurrent_trials=k),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0, callbacks=callbacks,
                                      failure_config=tune.FailureConfig(max_failures=cfg.sweep.max_failures)),
        )
        if progress:
            print(f"[sweep] {name}: {num_samples} trials of space {space!r}, {k} at a time, "
                  f"ASHA on {primary} (grace {cfg.sweep.grace_reports} evaluations, x{cfg.sweep.reduction_factor})"
                  + (f", objectives {objectives}" if multi else ""), flush=True)
    grid = tuner.fit()
    df = _grid_table(grid, primary, list(cfg.sweep.objectives))
    ok = df[(df["status"] == "TERMINATED") & df[primary].map(lambda v: math.isfinite(v))] if not df.empty else df
    best = ok.iloc[0].to_dict() if len(ok) else None
    pareto = pareto_front(ok, objectives) if len(objectives) > 1 else None
    if track:
        outcomes = _finalize_tracking(uri, experiment_id, name, df)
        df.insert(3, "outcome", df["trial_id"].map(lambda t: outcomes.get(t, "")))
        if best is not None:
            best["outcome"] = outcomes.get(best["trial_id"], "")
        client = parent.client
        client.log_text(parent_run_id, df.to_csv(index=False), "results.csv")
        if pareto is not None:
            client.log_text(parent_run_id, pareto.to_csv(index=False), "pareto.csv")
            parent.set_tags({"pareto_trials": ",".join(pareto["trial"])})
        parent.set_tags({"n_trials": len(df), "n_errors": int((df["status"] == "ERROR").sum()) if len(df) else 0})
        if best is not None:
            child = tracking.find_runs(uri, experiment_id, {tracking.TAG + "sweep_id": name,
                                                            tracking.TAG + "trial_id": best["trial_id"]})
            best_tags = {"best_trial_id": best["trial_id"], "best_trial": best["trial"]}
            if child:
                best_tags["best_run_id"] = child[0].info.run_id
                ck = child[0].data.tags.get(tracking.TAG + "checkpoint_uri") or child[0].data.tags.get(
                    tracking.TAG + "latest_checkpoint_uri")
                if ck:
                    best_tags["checkpoint_uri"] = ck
            parent.set_tags(best_tags)
            parent.log_metrics({f"best_{primary}": best[primary]}, step=0)
        parent.finish("FINISHED")
    return SweepResult(name=name, path=exp_path, tracking_uri=uri, parent_run_id=parent_run_id, table=df,
                       best=best, pareto=pareto, restored=restored,
                       errors=[r for r in df["trial"][df["status"] == "ERROR"]] if len(df) else [])


# ------------------------------------------------------------------------------------- CLI


def format_table(result: SweepResult, *, primary: str, top: int = 20) -> str:
    """The results table printed at the end of a sweep (analysis' sweep table when available)."""
    df = result.table
    if df is None or df.empty:
        return "(no trials)"
    sampled = [c for c in df.columns if c.startswith(("model.", "optim.", "augment."))]
    cols = ["trial", "outcome" if "outcome" in df.columns else "status", "evals", "kimg", primary, "img_per_s"] + [
        c for c in df.columns if c in ("g_params", "d_params")] + sampled
    view = df[cols].head(top).copy()
    view.columns = [c.replace("model.", "").replace("optim.", "").replace("augment.", "") for c in cols]
    try:
        return view.to_markdown(index=False, floatfmt=".4g")
    except ImportError:
        return view.to_string(index=False)


def ui_command(uri: Optional[str]) -> str:
    return f"transgan-lab ui --tracking-uri {uri}" if uri else "transgan-lab ui"


def analysis_table(result: SweepResult, cfg: ExperimentConfig, *, top: int = 20) -> Optional[str]:
    """The sweep table of ``transgan_lab.analysis`` (None when that layer cannot build it)."""
    if not result.tracking_uri:
        return None
    try:
        from transgan_lab.analysis import load, tables

        df = load.load_runs(tracking_uri=result.tracking_uri, experiment=cfg.tracking.experiment, sweep_id=result.name)
        return tables.render(tables.build(df, study="sweep", sweep_id=result.name, top=top), "terminal")
    except Exception:  # noqa: BLE001 - the analysis layer is optional here; fall back to our own table
        return None


def print_results(result: SweepResult, cfg: ExperimentConfig) -> None:
    """Results table, best trial, Pareto front and the command to open the MLflow UI."""
    primary = cfg.eval.primary
    text = analysis_table(result, cfg)
    print()
    print(text if text else format_table(result, primary=primary))
    if result.best:
        print(f"\nbest trial: {result.best['trial']} ({primary} = {result.best[primary]:.4g}, "
              f"{result.best.get('outcome') or result.best.get('status')})")
    if result.pareto is not None:
        print(f"Pareto front ({', '.join([primary] + list(cfg.sweep.objectives))}): {', '.join(result.pareto['trial'])}")
    if result.errors:
        print(f"failed trials: {', '.join(result.errors)} (see {result.path})")
    print(f"\nOpen the MLflow UI:  {ui_command(result.tracking_uri)}")


def cmd_sweep(args) -> int:
    """`transgan-lab sweep PRESET`: validate, check the store, run or resume, print the table."""
    from transgan_lab.platform.config import load_config

    cfg = load_config(args.preset, args.overrides)
    space = args.space or cfg.sweep.space
    samples = args.samples or cfg.sweep.num_samples
    name = args.name or default_sweep_name(cfg, space)
    if args.dry_run:
        paper = check_space(cfg.model_dump(mode="json"), space, seed=cfg.sweep.seed)
        res = cfg.resources
        print(to_yaml(cfg), end="")
        print(f"# sweep {name}: {samples} trials of space {space!r}; first point (the preset): "
              f"{json.dumps(paper, sort_keys=True)}")
        print(f"# each trial: {res.workers} worker(s) x (CPU {res.cpus_per_worker}, GPU {res.gpus_per_worker}) "
              f"+ {DRIVER_CPU} CPU driver; max concurrent: {cfg.sweep.max_concurrent or 'from the cluster'}")
        print(f"# storage: {storage_path_for(cfg, args.out)}/{name}")
        return 0
    result = run_sweep(cfg, out_root=args.out, name=name, space=space, num_samples=samples, address=args.address)
    print_results(result, cfg)
    return 1 if len(result.errors) == len(result.table) else 0
