"""Experiment presets (YAML), shipped as `transgan_lab.presets`."""
