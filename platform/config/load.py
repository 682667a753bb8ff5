"""Presets and YAML files -> a validated ``ExperimentConfig``: ``base`` chains, ``--set`` overrides,
readable validation errors, and the config's hashes and YAML form.

Presets are YAML files in ``experiments/configs/`` (shipped as ``transgan_lab.presets``); a YAML
file may name a ``base`` preset and override it.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from transgan_lab.platform import validate as _validate
from transgan_lab.platform import validate_yaml
from transgan_lab.platform.config.dotted import DottedKeyError, set_dotted
from transgan_lab.platform.config.schema import ConfigError, ExperimentConfig
from transgan_lab.trainers import hashing as _hashing


def _presets_dir() -> Path:
    return Path(str(resources.files("transgan_lab.presets")))


def preset_names() -> list[str]:
    return sorted(p.stem for p in _presets_dir().glob("*.yaml"))


def preset_description(name: str) -> str:
    """The first sentence of a preset file's leading comment (what `config list` prints)."""
    lines = []
    for line in (_presets_dir() / f"{name}.yaml").read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    end = text.find(". ")
    return text[: end + 1] if end >= 0 else text


def _read_yaml(path: Path) -> dict:
    try:  # size, UTF-8, depth, aliases and duplicate keys checked (platform/validate_yaml.py)
        data = validate_yaml.read_yaml_file(path)
    except _validate.InputError as e:
        raise ConfigError(str(e)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold a mapping of config sections (data:, model:, ...), not {type(data).__name__}"
        )
    return data


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_raw(preset_or_path: str, _seen: tuple = ()) -> dict:
    """Raw dict of a preset name or YAML path, with its ``base`` chain merged in."""
    try:
        _validate.check_text(preset_or_path, what="the preset or config path")
        if len(_seen) > 16:
            raise _validate.InputError(f"{preset_or_path}: the 'base' chain is more than 16 files deep; shorten it")
        p = Path(preset_or_path)
        is_file = preset_or_path.endswith((".yaml", ".yml")) or p.exists()
    except (_validate.InputError, OSError) as e:  # OSError: e.g. a name too long for the file system
        raise ConfigError(f"{e}; give a preset name ({', '.join(preset_names())}) or a YAML path") from None
    if is_file:
        path = p
        if not path.exists():
            raise ConfigError(
                f"config file {p} does not exist; give a preset name ({', '.join(preset_names())}) or a YAML path"
            )
    else:
        path = _presets_dir() / f"{preset_or_path}.yaml"
        if not _validate.NAME_RE.fullmatch(preset_or_path) or not path.exists():  # a name, never a path out
            raise ConfigError(
                f"unknown preset {preset_or_path!r}; choose one of {', '.join(preset_names())} "
                "or give a path to a YAML file"
            )
    key = str(path.resolve())
    if key in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself; remove the cycle")
    raw = _read_yaml(path)
    own_preset = raw.get("preset")  # the base's preset name must not win over this file's own
    base = raw.pop("base", None)
    if base:
        base_ref = str(base)
        rel = path.parent / base_ref
        if base_ref.endswith((".yaml", ".yml")) and "\0" not in base_ref and len(base_ref) < 1024 and rel.exists():
            base_ref = str(rel)
        raw = _deep_merge(load_raw(base_ref, _seen + (key,)), raw)
    raw["preset"] = own_preset or path.stem
    return raw


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set optim.lr_g=2e-4")
    key, value = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: the key before '=' is empty; e.g. --set train.kimg=10")
    if len(key) > 256:
        raise ConfigError(
            f"--set {key[:40]}...: the key is {len(key)} characters long; config keys are short dotted names"
        )
    try:
        parsed = validate_yaml.parse_set_value(key, value)  # YAML, depth- and size-limited; plain text if not YAML
    except _validate.InputError as e:
        raise ConfigError(str(e)) from None
    return key.split("."), parsed


def _is_text_field(ann: Any) -> bool:
    """str or Optional[str] (the annotation of a text field)."""
    import typing

    args = typing.get_args(ann) or (ann,)
    return str in args and all(a in (str, type(None)) for a in args)


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """``raw`` with every ``key=value`` set; each key is checked against the schema first."""
    out = copy.deepcopy(raw)
    for item in overrides or []:
        path, value = parse_override(item)
        key = ".".join(path)
        model: Any = ExperimentConfig
        for i, part in enumerate(path):
            if model is None:
                raise ConfigError(f"--set {key}: {path[i - 1]!r} is not a section")
            fields = model.model_fields
            if part not in fields:
                where = ".".join(path[:i]) or "the top level"
                raise ConfigError(
                    f"--set {key}: unknown key {part!r} in {where}; known keys: {', '.join(sorted(fields))}"
                )
            ann = fields[part].annotation
            model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if isinstance(value, (bool, int, float)) and _is_text_field(ann):
            value = item.split("=", 1)[1].strip()  # `--set name=2024`: YAML reads a number; the field is text
        try:
            set_dotted(out, key, value, create=True)
        except DottedKeyError as e:
            raise ConfigError(f"--set {key}: {e.part!r} is not a section") from None
    return out


def _format_validation_error(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-after"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = (
                f"unknown key {loc.split('.')[-1]!r}: remove it or check the spelling (see `transgan-lab config show`)"
            )
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        elif err["type"] in ("int_parsing", "float_parsing", "int_from_float", "bool_parsing"):
            msg = f"{msg} (got {err.get('input')!r})"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "invalid config: " + "; ".join(lines)


def from_dict(raw: dict) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e)) from None


def load_config(preset_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Resolve a preset name or YAML path plus ``key=value`` overrides into a validated config."""
    return from_dict(apply_overrides(load_raw(preset_or_path), overrides))


# --------------------------------------------------------------------------------- hashing


def config_hash(cfg: ExperimentConfig) -> str:
    """Stable hash of the whole resolved config."""
    return _hashing.config_hash(cfg)


def dynamics_hash(cfg: ExperimentConfig) -> str:
    """Hash of what changes the training dynamics; guards resume."""
    return _hashing.dynamics_hash(cfg)


flatten = _hashing.flatten


def to_yaml(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
