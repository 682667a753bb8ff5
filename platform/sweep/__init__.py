"""Sweeps: Ray Tune + Optuna + ASHA over named search spaces, every trial a Ray Train run."""
