"""Input limits: the one place that says which numbers, names and texts are accepted, and the check of a
whole config against them.

Every value a user hands the platform (a CLI argument, a config field from a preset, a YAML file
or a ``--set`` override, a manifest read back from a checkpoint) passes these rules before any
store, run, folder or process is created. The argparse types (``validate_args``), the YAML reader
(``validate_yaml``) and the config schema use the tables below, so a limit is written once. A refusal
is an :class:`InputError` whose message names the value, the limit and the fix; the CLI prints it as
one paragraph with exit code 2.

Standard library only: the CLI imports this module while parsing arguments.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from typing import Any


class InputError(ValueError):
    """A refused input; the message names the value, the limit and the fix."""


# ----------------------------------------------------------------------------------- limits

SEED_MAX = 2**63 - 1  # seeds: 0 ... 2**63-1 (what torch and numpy generators take)
INT_MAX = 2**31 - 1  # any other whole-number config field without a limit of its own
FLOAT_MAX = 1e9  # magnitude of any other real-valued config field without a limit of its own
MAX_IMAGES = 10_000_000  # images one command generates (eval: 200x the 50k standard; sample)
MAX_KIMG = 1_000_000.0  # training length and intervals: 10^9 images (the paper trains ~10^7)
MAX_SAMPLES = 10_000  # trials of one sweep
MAX_LIST = 64  # items in any list-valued config field (stages, metrics, schedule points)
MAX_NAME = 64  # characters of a run, sweep or search-space name
MAX_TEXT = 4096  # characters of any other text field (paths, URIs)
MAX_YAML_BYTES = 1 << 20  # a config file (presets are ~2 KB)
MAX_YAML_DEPTH = 32  # nesting of mappings and lists in a YAML document (configs need 4)
MAX_YAML_ALIASES = 64  # `*alias` references in one document (bounds alias-expansion blow-up)
MAX_SET_CHARS = 65536  # characters of one --set argument
# Names: letters, digits, '.', '_', '-'; a letter or digit first (so never '..', '-x' or '.hidden').
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_FIELDS = ("name",)  # config text fields that become folder names
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _cpu_bound(per_cpu: int, floor: int) -> int:
    return max(floor, per_cpu * (os.cpu_count() or 1))


# Config fields with limits of their own: dotted name (list items as `field[]`) -> (low, high).
FIELD_LIMITS: dict[str, tuple[float, float]] = {
    "seed": (0, SEED_MAX),
    "eval.seed": (0, SEED_MAX),
    "sweep.seed": (0, SEED_MAX),
    "data.resolution": (8, 1024),
    "data.loader_workers": (0, _cpu_bound(4, 64)),
    "model.g.latent_dim": (1, 16384),
    "model.g.bottom": (1, 1024),
    "model.g.embed_dim": (1, 65536),
    "model.g.depths[]": (1, 256),
    "model.g.heads": (1, 1024),
    "model.g.mlp_ratio": (0, 64),
    "model.g.window_size": (1, 1024),
    "model.g.window_min_res": (1, 1024),
    "model.g.modulation_tokens": (1, 4096),
    "model.g.latent_classes": (0, 16384),
    "model.g.conv_ch": (8, 65536),
    "model.g.locality.schedule[][]": (0, 1_000_000),
    "model.g.locality.off_epoch": (0, 1_000_000),
    "model.g.locality.last_blocks": (1, 256),
    "model.d.embed_dim": (1, 65536),
    "model.d.depth": (1, 256),
    "model.d.patch_size": (1, 1024),
    "model.d.heads": (1, 1024),
    "model.d.mlp_ratio": (0, 64),
    "model.d.pixel_clusters": (0, 16384),
    "model.d.conv_ch": (8, 65536),
    "optim.lr_g": (0, 10),
    "optim.lr_d": (0, 10),
    "optim.n_critic": (1, 1000),
    "optim.batch_d": (1, 1 << 20),
    "optim.batch_g": (1, 1 << 20),
    "optim.accum": (1, 4096),
    "optim.ema_kimg": (0, MAX_KIMG),
    "optim.ema_rampup": (0, 1_000),
    "train.kimg": (0, MAX_KIMG),
    "train.log_kimg": (0, MAX_KIMG),
    "train.checkpoint_kimg": (0, MAX_KIMG),
    "train.grid_kimg": (0, MAX_KIMG),
    "train.eval_kimg": (0, MAX_KIMG),
    "train.keep_last": (1, 10_000),
    "train.nan_retries": (0, 1000),
    "loss.reg_every": (1, 10_000),
    "eval.n_fake": (2, MAX_IMAGES),
    "eval.batch": (1, 65536),
    "resources.workers": (1, 100_000),
    "resources.gpus_per_worker": (0, 64),
    "resources.cpus_per_worker": (0, 4096),
    "sweep.num_samples": (1, MAX_SAMPLES),
    "sweep.max_concurrent": (0, MAX_SAMPLES),
    "sweep.grace_reports": (1, 1_000_000),
    "sweep.reduction_factor": (2, 1000),
    "sweep.max_failures": (0, MAX_SAMPLES),
}
# CLI arguments that are not config fields: name -> (low, high).
ARG_LIMITS: dict[str, tuple[float, float]] = {
    "sample.n": (1, 100_000),
    "sample.interpolate": (0, 1024),
    "table.top": (1, 100_000),
    "study.seeds": (1, 100),
}


def limits_for(field: str) -> tuple[float, float]:
    """(low, high) of a config field or CLI argument name."""
    return FIELD_LIMITS.get(field) or ARG_LIMITS[field]


# ------------------------------------------------------------------------- single values


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e19 else f"{x:g}"


def check_number(value: Any, *, what: str, low: float, high: float, whole: bool) -> None:
    """Finite and within [low, high]; ``what`` names it in the message."""
    kind = "a whole number" if whole else "a finite number"
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{what}={value!r} is not a finite number; give {kind} from {_fmt(low)} to {_fmt(high)}")
    if not low <= value <= high:
        shown = value if isinstance(value, int) and abs(value) < 10**30 else f"{value:.3g}"
        raise InputError(f"{what}={shown} is out of range; give {kind} from {_fmt(low)} to {_fmt(high)}")


def check_text(value: str, *, what: str, limit: int = MAX_TEXT) -> None:
    """No control characters (NUL, newline, escape ...) and at most ``limit`` characters."""
    if len(value) > limit:
        raise InputError(f"{what} is {len(value)} characters long; give at most {limit}")
    bad = _CONTROL.search(value)
    if bad:
        raise InputError(f"{what} holds the control character {bad.group()!r} at position {bad.start()}; remove it")


def check_name(value: str, *, what: str) -> None:
    """A run, sweep or space name: becomes a folder name, so it must not be a path."""
    if not isinstance(value, str) or len(value) > MAX_NAME or not NAME_RE.fullmatch(value):
        shown = (
            value if isinstance(value, str) and len(value) <= 80 else f"{str(value)[:40]}... ({len(str(value))} chars)"
        )
        raise InputError(
            f"{what}={shown!r} is not a valid name; use 1 to {MAX_NAME} letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', no spaces), e.g. my-run_2"
        )


# ----------------------------------------------------------------------- a whole config


def _walk(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(dotted path, limit key, leaf value) of every leaf of a pydantic model instance."""
    fields = getattr(type(node), "model_fields", None)
    if fields is not None:
        for name in fields:
            sub = f"{path}.{name}" if path else name
            yield from _walk(getattr(node, name), sub)
    elif isinstance(node, (list, tuple)):
        yield path, path + "#len", node
        for i, item in enumerate(node):
            for shown, key, leaf in _walk(item, f"{path}[{i}]"):
                yield shown, key.replace(f"{path}[{i}]", f"{path}[]", 1), leaf
    else:
        yield path, path, node


def config_errors(cfg: Any) -> list[str]:
    """Every limit a validated config breaks, one message per field (empty when all hold)."""
    errors: list[str] = []
    for shown, key, value in _walk(cfg, ""):
        try:
            if key.endswith("#len"):
                if len(value) > MAX_LIST:
                    raise InputError(f"{shown} has {len(value)} items; give at most {MAX_LIST}")
            elif isinstance(value, bool) or value is None:
                continue
            elif isinstance(value, (int, float)):
                low, high = FIELD_LIMITS.get(
                    key, (-INT_MAX - 1, INT_MAX) if isinstance(value, int) else (-FLOAT_MAX, FLOAT_MAX)
                )
                check_number(value, what=shown, low=low, high=high, whole=isinstance(value, int))
            elif isinstance(value, str):
                check_text(value, what=shown)
                if key in NAME_FIELDS:
                    check_name(value, what=shown)
        except InputError as e:
            errors.append(str(e))
    return errors
