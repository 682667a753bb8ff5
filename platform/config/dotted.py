"""Dotted config keys (``model.g.embed_dim``; ``model.g.depths.0`` is a list item): the one setter.

Overrides (``--set``) and sampled search-space parameters both write into a config dict through
``set_dotted``; ``trainers.hashing.flatten`` is the inverse (dict -> dotted keys).
"""

from __future__ import annotations

from typing import Any


class DottedKeyError(LookupError):
    """``key`` cannot be set: ``part`` is missing, not a list index, or not a section."""

    def __init__(self, key: str, part: str, problem: str):
        super().__init__(f"{key}: {part!r} {problem}")
        self.key, self.part, self.problem = key, part, problem


def set_dotted(tree: dict, key: str, value: Any, *, create: bool = False) -> None:
    """Set ``tree[a][b][i] = value`` for ``key = "a.b.i"`` in place (a digit part indexes a list).

    ``create``: missing sections on the way become empty dicts (a raw preset need not hold every
    section); otherwise every part must exist already.
    """
    parts = key.split(".")
    node: Any = tree
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise DottedKeyError(key, part, f"is not an index of a list of {len(node)} items")
            slot: Any = int(part)
        elif isinstance(node, dict):
            if part not in node and not (create and last):
                if not create:
                    raise DottedKeyError(key, part, "is unknown")
                node[part] = {}
            slot = part
        else:
            raise DottedKeyError(key, parts[i - 1], "is not a section")
        if last:
            node[slot] = value
        else:
            node = node[slot]
