"""What a finished (or interrupted) sweep leaves: one row per trial from Tune's results, the final
outcome of every trial's MLflow run, the sweep's summary on its parent run, and the printed report
(the analysis layer's sweep table, best trial, Pareto front, failed trials, the UI command).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transgan_lab import metric_registry
from transgan_lab.platform import tracking
from transgan_lab.platform.config import ExperimentConfig
from transgan_lab.platform.sweep.space import TRIAL_NUMBER, trial_label


@dataclass
class SweepResult:
    name: str  # sweep id (Tune experiment name, MLflow transgan.sweep_id)
    path: str  # Tune experiment folder
    tracking_uri: str | None
    parent_run_id: str | None
    table: Any  # pandas DataFrame, one row per trial, best first
    best: dict | None  # the best trial's row (primary metric), or None
    pareto: Any = None  # DataFrame of the non-dominated trials (multi-objective), else None
    restored: bool = False
    errors: list = field(default_factory=list)
    runs_dir: str | None = None  # the trials' run folders: <runs_dir>/<name>-<trial>/


def best_grid(result: SweepResult) -> Path | None:
    """The newest fixed-z sample grid of the best trial (None when it wrote none)."""
    if not result.best or not result.runs_dir:
        return None
    grids = sorted((Path(result.runs_dir) / f"{result.name}-{result.best['trial']}" / "grids").glob("grid-*.png"))
    return grids[-1] if grids else None


def trials_table(grid, primary: str, objectives: list[str]):
    """One row per trial of a Tune ``ResultGrid`` (also those that never reported), best first:
    trial_id, label, status, the last values of the primary and the objectives, the sampled params."""
    import pandas as pd
    from ray.tune import ExperimentAnalysis

    # Every trial with its status, from the experiment state the grid was built from (Ray's public
    # ExperimentAnalysis; a ResultGrid's own Results carry neither status nor a never-reported config).
    trials = ExperimentAnalysis(grid.experiment_path, storage_filesystem=grid.filesystem).trials
    rows = []
    for trial in trials:
        last = trial.last_result or {}
        row = {
            "trial_id": trial.trial_id,
            "trial": trial_label(trial.config, trial.trial_id),
            "status": trial.status,
            "error": trial.error_file is not None or trial.status == "ERROR",
        }
        for key in ("evals", "kimg", primary, "img_per_s", *objectives):
            value = last.get(key) if key != primary or last.get("evals") else None  # not evaluated yet
            row[key] = float(value) if isinstance(value, (int, float)) else math.nan
        for key, value in (trial.config or {}).items():
            if key != TRIAL_NUMBER:
                row[key] = json.dumps(value) if isinstance(value, list) else value
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty and primary in df:
        df = df.sort_values(primary, ascending=metric_registry.lower_is_better(primary), na_position="last")
        df = df.reset_index(drop=True)
    return df


def finalize_trial_runs(uri: str, experiment_id: str, sweep: str, df) -> dict[str, str]:
    """Close the child runs Tune ended without their driver doing it (ASHA stops, errors, an
    interrupted sweep) and tag each with its outcome; returns trial_id -> outcome."""
    T = tracking.TAG
    runs = tracking.find_runs(uri, experiment_id, {T + "sweep_id": sweep, T + "kind": "trial"})
    by_trial = {r.data.tags.get(T + "trial_id"): r for r in runs}
    client = tracking.mlflow_client(uri)
    outcomes: dict[str, str] = {}
    for _, row in df.iterrows():
        run = by_trial.get(row["trial_id"])
        if run is None:
            continue
        outcome = run.data.tags.get(T + "outcome")
        if row["status"] == "ERROR":
            outcome = "failed"
            client.set_tag(run.info.run_id, T + "outcome", outcome)
            if run.info.status != "FAILED":
                client.set_terminated(run.info.run_id, status="FAILED")
        elif row["status"] != "TERMINATED":  # the sweep was interrupted: a re-run resumes this run
            outcome = "interrupted"
            client.set_tag(run.info.run_id, T + "outcome", outcome)
            client.set_terminated(run.info.run_id, status="KILLED")
        elif outcome is None or run.info.status == "RUNNING":  # Tune ended it early (ASHA)
            outcome = "completed" if outcome == "completed" else "stopped_early"
            client.set_tag(run.info.run_id, T + "outcome", outcome)
            client.set_terminated(run.info.run_id, status="FINISHED")
        outcomes[row["trial_id"]] = outcome
        if not math.isnan(row.get("evals", math.nan)):
            client.set_tag(run.info.run_id, T + "evals", str(int(row["evals"])))
    return outcomes


def record_on_parent(
    parent: tracking.RunLogger, *, uri: str, experiment_id: str, sweep: str, primary: str, df, best: dict | None, pareto
) -> None:
    """The sweep's summary on its parent run: results.csv, pareto.csv, counts, the best trial (its
    run and checkpoint) and its primary value; then the parent is closed."""
    T = tracking.TAG
    parent.client.log_text(parent.run_id, df.to_csv(index=False), "results.csv")
    if pareto is not None:
        parent.client.log_text(parent.run_id, pareto.to_csv(index=False), "pareto.csv")
        parent.set_tags({"pareto_trials": ",".join(pareto["trial"])})
    parent.set_tags({"n_trials": len(df), "n_errors": int((df["status"] == "ERROR").sum()) if len(df) else 0})
    if best is not None:
        child = tracking.find_runs(uri, experiment_id, {T + "sweep_id": sweep, T + "trial_id": best["trial_id"]})
        best_tags = {"best_trial_id": best["trial_id"], "best_trial": best["trial"]}
        if child:
            best_tags["best_run_id"] = child[0].info.run_id
            ck = child[0].data.tags.get(T + "checkpoint_uri") or child[0].data.tags.get(T + "latest_checkpoint_uri")
            if ck:
                best_tags["checkpoint_uri"] = ck
        parent.set_tags(best_tags)
        parent.log_metrics({f"best_{primary}": best[primary]}, step=0)
    parent.finish("FINISHED")


# ------------------------------------------------------------------------------------ report


def ui_command(uri: str | None) -> str:
    return f"transgan-lab ui --tracking-uri {uri}" if uri else "transgan-lab ui"


def results_text(result: SweepResult, cfg: ExperimentConfig, *, top: int = 20) -> str:
    """The sweep's table as the analysis layer builds it from the tracked runs; when it has nothing
    to rank (no trial scored), the reason instead."""
    from transgan_lab.analysis import load, tables

    if not result.tracking_uri:
        return f"(not tracked: the trials' results are in {result.path})"
    try:
        df = load.load_runs(tracking_uri=result.tracking_uri, experiment=cfg.tracking.experiment, sweep_id=result.name)
        return tables.render(tables.build(df, study="sweep", sweep_id=result.name, top=top), "terminal")
    except load.AnalysisError as e:
        return f"(no sweep table: {e})"


def print_results(result: SweepResult, cfg: ExperimentConfig) -> None:
    """Results table, best trial, Pareto front, failed trials and the command to open the MLflow UI."""
    primary = cfg.eval.primary
    print()
    print(results_text(result, cfg))
    if result.best:
        print(
            f"\nbest trial: {result.best['trial']} ({primary} = {result.best[primary]:.4g}, "
            f"{result.best.get('outcome') or result.best.get('status')})"
        )
        grid = best_grid(result)
        if grid is not None:
            print(f"its samples (fixed latents, at {result.best.get('kimg', float('nan')):g} kimg): {grid}")
    if result.pareto is not None:
        print(
            f"Pareto front ({', '.join([primary] + list(cfg.sweep.objectives))}): {', '.join(result.pareto['trial'])}"
        )
    if result.errors:
        print(f"failed trials: {', '.join(result.errors)} (see {result.path})")
    print(f"\nOpen the MLflow UI:  {ui_command(result.tracking_uri)}")
