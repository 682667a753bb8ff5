"""Sweeps: Ray Tune + Optuna + ASHA over named search spaces, every trial a Ray Train run.

spaces.py      the named search spaces (define-by-run Optuna functions over dotted config keys)
space.py       a space as the sweep uses it: lookup, sampled params into a config, the preflight
               check of every config it can produce, trial labels
driver.py      ``run_sweep`` and each trial's driver function (Tune + Optuna + ASHA, MLflow runs)
callbacks.py   Tune callbacks of the sweep driver: progress lines, placement-group reaper
results.py     the trials table, trial outcomes and the parent run's summary, the printed report
cli.py         `transgan-lab sweep`
"""

from transgan_lab.platform.sweep.driver import run_sweep
from transgan_lab.platform.sweep.results import SweepResult, print_results

__all__ = ["SweepResult", "print_results", "run_sweep"]
