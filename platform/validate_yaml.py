"""YAML documents as input: a config file or a ``--set`` value, read with the limits of ``validate``
(size, UTF-8, nesting depth, aliases, duplicate keys); every refusal is an ``InputError``.

Standard library and PyYAML only: the config loader reads presets through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from transgan_lab.platform.validate import (
    MAX_SET_CHARS,
    MAX_YAML_ALIASES,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    InputError,
    check_text,
)


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
