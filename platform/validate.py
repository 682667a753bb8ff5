"""Input limits: the one place that says which numbers, names, paths and YAML documents are accepted.

Every value a user hands the platform (a CLI argument, a config field from a preset, a YAML file
or a ``--set`` override, a manifest read back from a checkpoint) passes these rules before any
store, run, folder or process is created. The argparse types below and the config schema use the
same tables, so a limit is written once. A refusal is an :class:`InputError` whose message names
the value, the limit and the fix; the CLI prints it as one paragraph with exit code 2.

Standard library and PyYAML only: the CLI imports this module while parsing arguments.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


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
    "model.g.conv_ch": (8, 65536),
    "model.g.locality.schedule[][]": (0, 1_000_000),
    "model.g.locality.off_epoch": (0, 1_000_000),
    "model.g.locality.last_blocks": (1, 256),
    "model.d.embed_dim": (1, 65536),
    "model.d.depth": (1, 256),
    "model.d.patch_size": (1, 1024),
    "model.d.heads": (1, 1024),
    "model.d.mlp_ratio": (0, 64),
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


def contained(root: str | Path, child: str | Path, *, what: str) -> Path:
    """``root / child`` resolved; refused when it would land outside ``root``."""
    base = Path(root).resolve()
    path = (base / child).resolve()
    if path != base and base not in path.parents:
        raise InputError(f"{what} {child} would be written to {path}, outside {base}; use a plain name")
    return path


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


# ---------------------------------------------------------------------------------- YAML


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (the later one would silently win)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key (a list or mapping): SafeLoader reports it
                break
            if first is not None:
                raise InputError(
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1} (first at line {first.line + 1}); "
                    "keep one of them (the later one would silently win)"
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, *, where: str) -> Any:
    """YAML text -> data: depth, aliases and duplicate keys checked; errors as InputError."""
    depth = aliases = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):  # events: no recursion, unlike compose
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    line = event.start_mark.line + 1
                    raise InputError(
                        f"{where} nests deeper than {MAX_YAML_DEPTH} levels (at line {line}); "
                        "a config needs 4: flatten it"
                    )
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    raise InputError(f"{where} uses more than {MAX_YAML_ALIASES} aliases (*name); write the values out")
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"{where} is not valid YAML{at}: {getattr(e, 'problem', None) or e}; fix the syntax") from None
    except (ValueError, TypeError, OverflowError) as e:  # e.g. a timestamp or base-64 value out of range
        if isinstance(e, InputError):
            raise
        raise InputError(f"{where} holds a value YAML cannot read ({e}); fix or quote it") from None


def read_yaml_file(path: str | Path) -> Any:
    """A YAML file of at most MAX_YAML_BYTES of UTF-8 text -> data."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_YAML_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read config file {path}: {e.strerror or e}; check the path") from None
    if len(data) > MAX_YAML_BYTES:
        raise InputError(
            f"config file {path} is larger than {MAX_YAML_BYTES // 1024} KiB; a config is a few KB: "
            "check that it is the right file"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"config file {path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "give a YAML text file saved as UTF-8"
        ) from None
    return parse_yaml(text, where=str(path))


def parse_set_value(key: str, value: str) -> Any:
    """The value of ``--set key=value`` read as YAML (plain text when it is not YAML)."""
    check_text(value, what=f"--set {key}", limit=MAX_SET_CHARS)
    if not value.strip():
        return ""
    try:
        return parse_yaml(value, where=f"--set {key}")
    except InputError as e:
        if "nests deeper" in str(e) or "aliases" in str(e):
            raise
        return value  # not YAML: the text itself (the schema says whether text is allowed)


# --------------------------------------------------------------------------- argparse types


def _parse_number(text: str, flag: str, whole: bool) -> float:
    try:
        return int(text) if whole else float(text)
    except ValueError:
        kind = "whole number" if whole else "number"
        raise argparse.ArgumentTypeError(f"invalid {kind} {text!r}; give {flag} a {kind}") from None


def arg_number(field: str, flag: str, *, whole: bool = True):
    """argparse type: a number within the limits of config field or argument ``field``."""
    low, high = limits_for(field)

    def parse(text: str):
        value = _parse_number(text.strip(), flag, whole)
        try:
            check_number(value, what=flag, low=low, high=high, whole=whole)
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e).replace(f"{flag}=", f"{flag} ", 1)) from None
        return value

    parse.__name__ = "whole number" if whole else "number"
    return parse


def arg_name(flag: str):
    """argparse type: a safe name (becomes a folder name)."""

    def parse(text: str) -> str:
        try:
            check_name(text, what=flag)
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    parse.__name__ = "name"
    return parse


def arg_text(flag: str):
    """argparse type: text without control characters, at most MAX_TEXT characters."""

    def parse(text: str) -> str:
        try:
            check_text(text, what=flag)
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    parse.__name__ = "text"
    return parse


def arg_out_dir(flag: str):
    """argparse type: an output folder (it may not exist yet; it must not be a file)."""
    text_type = arg_text(flag)

    def parse(text: str) -> str:
        text_type(text)
        p = Path(text)
        if p.exists() and not p.is_dir():
            raise argparse.ArgumentTypeError(f"{flag} {text} is a file, not a folder; give a folder (it is created)")
        return text

    parse.__name__ = "folder"
    return parse


def arg_out_file(flag: str):
    """argparse type: an output file (replaced if it exists; it must not be a folder)."""
    text_type = arg_text(flag)

    def parse(text: str) -> str:
        text_type(text)
        p = Path(text)
        if text.endswith(("/", os.sep)) or p.is_dir():
            raise argparse.ArgumentTypeError(f"{flag} {text} is a folder; give a file name, e.g. {p / 'report.html'}")
        parent = p.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise argparse.ArgumentTypeError(f"{flag} {text}: {parent} is a file, not a folder; give another path")
        return text

    parse.__name__ = "file"
    return parse


def arg_port(flag: str):
    """argparse type: a TCP port number 1 ... 65535 (whether it is free is checked on bind)."""

    def parse(text: str) -> int:
        value = _parse_number(text.strip(), flag, True)
        if not 1 <= value <= 65535:
            raise argparse.ArgumentTypeError(f"{flag} {value} is not a TCP port; give a number from 1 to 65535")
        return int(value)

    parse.__name__ = "port"
    return parse


# ------------------------------------------------------------------------------- ports


def port_holder(port: int) -> str:
    """Who listens on TCP ``port`` on this machine, as 'pid N (command)', from /proc (Linux)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":  # LISTEN
                inodes.add(parts[9])
    if not inodes:
        return "another program"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return f"pid {proc.name} ({cmd[:120]})"
        except OSError:
            continue
    return "a process of another user"


def check_port_free(host: str, port: int, *, flag: str = "--port") -> None:
    """Refuse a port that cannot be bound on ``host`` now, naming what holds it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise InputError(f"--host {host!r} is not an address of this machine ({e}); use 127.0.0.1") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
                raise InputError(
                    f"{flag} {port} on {host} is in use by {port_holder(port)}; choose another {flag} "
                    "or stop that server"
                ) from None
            raise InputError(
                f"cannot listen on {host}:{port} ({e.strerror or e}); "
                f"use --host 127.0.0.1 and a {flag} from 1024 to 65535"
            ) from None
