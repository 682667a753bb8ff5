"""Stable config hashes. Pure Python so `trainers` stays importable with torch alone.

``config_hash`` covers the whole resolved config; ``dynamics_hash`` covers only what changes the
training dynamics, so resuming with a longer ``train.kimg`` or other logging intervals is allowed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from transgan_lab.metric_registry import NON_DYNAMIC, in_fields


def as_dict(cfg: Any) -> dict:
    """A plain JSON-able dict from a pydantic config, a SimpleNamespace tree or a dict."""
    if hasattr(cfg, "model_dump"):
        return cfg.model_dump(mode="json")

    def plain(x: Any) -> Any:
        if hasattr(x, "__dict__") and not isinstance(x, type):
            return {k: plain(v) for k, v in vars(x).items()}
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x

    return json.loads(json.dumps(plain(cfg)))


def as_namespace(d: Any) -> Any:
    """Nested dict -> SimpleNamespace tree (a config without pydantic, e.g. on a bare GPU box)."""
    from types import SimpleNamespace

    if isinstance(d, dict):
        return SimpleNamespace(**{k: as_namespace(v) for k, v in d.items()})
    if isinstance(d, list):
        return [as_namespace(v) for v in d]
    return d


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'model': {'g': {'depths': [5, 2]}}} -> {'model.g.depths': [5, 2]}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_hash(cfg: Any) -> str:
    return _digest(as_dict(cfg))


def dynamics_fields(cfg: Any) -> dict[str, Any]:
    flat = flatten(as_dict(cfg))
    return {k: v for k, v in flat.items() if not in_fields(k, NON_DYNAMIC)}


def dynamics_hash(cfg: Any) -> str:
    return _digest(dynamics_fields(cfg))


NO_DEFAULT = object()


def schema_default(cfg: Any, key: str) -> Any:
    """The schema's default of dotted field ``key`` of a pydantic ``cfg``, JSON-plain; NO_DEFAULT when
    ``cfg`` carries no schema (a plain namespace on a bare box) or the field has no default.

    A checkpoint written before a field existed ran with that field's default (new fields are added
    with the default that keeps the old behaviour), so resuming it is a change only if the value
    differs from the default."""
    *parents, name = key.split(".")
    node = cfg
    for part in parents:
        node = getattr(node, part, None)
    fields = getattr(type(node), "model_fields", None)
    if not fields or name not in fields or fields[name].is_required():
        return NO_DEFAULT
    default = fields[name].get_default(call_default_factory=True)
    return json.loads(json.dumps(default, default=list))  # a leaf: tuples become lists, as in the stored dump
