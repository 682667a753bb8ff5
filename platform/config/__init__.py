"""The one typed experiment config: ``load_config(preset_or_path, overrides) -> ExperimentConfig``.

schema.py   the sections and their fields, cross-field checks, ``ConfigError``
load.py     presets and YAML files, ``base`` chains, ``--set`` overrides, hashes, YAML out
dotted.py   the one setter of dotted keys (overrides and sampled search-space parameters)
"""

from transgan_lab.platform.config.load import (
    apply_overrides,
    config_hash,
    dynamics_hash,
    flatten,
    from_dict,
    load_config,
    load_raw,
    parse_override,
    preset_description,
    preset_names,
    to_yaml,
)
from transgan_lab.platform.config.schema import ConfigError, ExperimentConfig, cross_field_errors

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "apply_overrides",
    "config_hash",
    "cross_field_errors",
    "dynamics_hash",
    "flatten",
    "from_dict",
    "load_config",
    "load_raw",
    "parse_override",
    "preset_description",
    "preset_names",
    "to_yaml",
]
