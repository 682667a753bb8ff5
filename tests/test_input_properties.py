"""Property-based tests of the config layer (Hypothesis): random input never ends in a traceback.

Random ``--set`` keys and values and random YAML documents (well-formed ones built from the
schema's own section and field names, and raw text) go through the real CLI entry point,
``transgan_lab.platform.cli.main``, in this process. Every outcome must be exit code 0 or 2 with
no traceback, and a refused input must leave the working directory and --out folder as they were.
``config show`` and ``train --dry-run`` resolve the whole config and create nothing when they
succeed either, so any new file is a defect.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transgan_lab.platform import config as C
from transgan_lab.platform.cli import main

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# The schema's own dotted keys (so many examples reach the numeric and name rules), and its words.
KNOWN_KEYS = sorted(C.flatten(C.load_config("digits-tiny").model_dump(mode="json")))
WORDS = sorted({part for k in KNOWN_KEYS for part in k.split(".")} | {"base", "preset", "name"})

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**63, 1e12, 1e-300, 1e300]),
)
texts = st.text(max_size=40)
scalars = st.one_of(numbers, texts, st.booleans(), st.none())
# YAML spellings a user types after `=`: numbers, inf/nan, lists, maps, nesting, quotes, bare text.
value_text = st.one_of(
    numbers.map(repr),
    st.sampled_from(
        [
            ".inf",
            "-.inf",
            ".nan",
            "nan",
            "inf",
            "~",
            "null",
            "[]",
            "{}",
            "[1, 2",
            "'x",
            "&a [*a]",
            "!!python/object/apply:os.system ['true']",
            "[" * 50 + "]" * 50,
            "1e400",
            "0x10",
            "0o7",
            "2001-12-14",
            "!!binary aGk=",
            "? a",
            "- x",
            "a: b",
            "{a: {b: {c: 1}}}",
        ]
    ),
    texts,
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(WORDS), inner, max_size=4)
        ),
        max_leaves=8,
    ).map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()),
)
keys = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    st.text(max_size=30),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(".".join),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(WORDS), inner, max_size=5)),
    max_leaves=25,
)


def _listing(*roots: Path) -> set[str]:
    out = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            out.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return out


def _run(argv: list[str], *roots: Path) -> tuple[int, str]:
    """main(argv) with its output captured; asserts the outcome rules and returns (code, stderr)."""
    before = _listing(*roots)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(argv)  # an exception escaping here is the traceback the property forbids
    text = err.getvalue()
    assert rc in (0, 2), (argv, rc, text)
    assert "Traceback" not in text, text
    if rc == 2:
        assert text.strip().startswith(("error:", "usage:")) and "\n\n" not in text.strip(), text
    assert _listing(*roots) == before, f"{argv} created files"
    return rc, text


@contextlib.contextmanager
def _sandbox():
    with tempfile.TemporaryDirectory(prefix="tgl-prop-") as d:
        root = Path(d)
        (root / "cwd").mkdir()
        (root / "out").mkdir()
        old = os.getcwd()
        os.chdir(root / "cwd")
        try:
            yield root
        finally:
            os.chdir(old)


@SETTINGS
@given(sets=st.lists(st.tuples(keys, value_text), min_size=1, max_size=3))
def test_random_set_overrides_never_crash_and_never_write(sets):
    argv = []
    for k, v in sets:
        argv += ["--set", f"{k}={v}"]
    with _sandbox() as root:
        _run(["config", "show", "digits-tiny", *argv], root / "cwd", root / "out")
        _run(
            ["train", "digits-tiny", *argv, "--dry-run", "--no-tracking", "--out", str(root / "out")],
            root / "cwd",
            root / "out",
        )


@SETTINGS
@given(doc=documents, base=st.booleans())
def test_random_yaml_documents_never_crash_and_never_write(doc, base):
    if base and isinstance(doc, dict):
        doc = {"base": "digits-tiny", **doc}
    with _sandbox() as root:
        cfg = root / "conf" / "c.yaml"
        cfg.parent.mkdir()
        cfg.write_text(yaml.safe_dump(doc))
        _run(["config", "show", str(cfg)], root / "cwd", root / "out", cfg.parent)
        _run(
            ["train", str(cfg), "--dry-run", "--no-tracking", "--out", str(root / "out")],
            root / "cwd",
            root / "out",
            cfg.parent,
        )


@SETTINGS
@given(raw=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_random_bytes_as_a_yaml_file_never_crash(raw):
    with _sandbox() as root:
        cfg = root / "conf" / "c.yaml"
        cfg.parent.mkdir()
        cfg.write_bytes(raw)
        rc, err = _run(["config", "show", str(cfg)], root / "cwd", root / "out", cfg.parent)
        if rc == 2 and b"\x80" in raw[:1]:
            assert "UTF-8" in err
