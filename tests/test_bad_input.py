"""Bad input, table-driven: every case through the real CLI entry point.

Each case must end with exit code 2 and one paragraph on stderr that names the problem (the
expected words below) and the fix, show no traceback, and leave nothing behind: the working
directory and the --out folder are listed before and after. Most cases call
``transgan_lab.platform.cli.main`` in this process (one import of torch for all of them); a
handful go through ``python -m transgan_lab`` in subprocesses for the real exit code, the
absence of a traceback, and ``--debug`` showing one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_MODEL

from transgan_lab.platform.cli import main

REPO = Path(__file__).resolve().parents[1]

TINY = [
    *TINY_MODEL,
    "eval.n_fake=64",
    "eval.batch=64",
]


def _sets(items):
    out = []
    for s in items:
        out += ["--set", s]
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Files the cases point at: broken YAML, a tiny real checkpoint, empty dataset folders."""
    from transgan_lab.platform.config import config_hash, dynamics_hash, load_config
    from transgan_lab.trainers import checkpoint as ckpt
    from transgan_lab.trainers.hashing import as_dict
    from transgan_lab.trainers.models import build_generator

    w = tmp_path_factory.mktemp("bad-input-world")
    (w / "broken.yaml").write_text("data: {dataset: digits\nmodel: [\n")
    (w / "list.yaml").write_text("- data\n- model\n")
    (w / "loop.yaml").write_text("base: loop.yaml\n")
    (w / "typo.yaml").write_text("base: digits-tiny\ntrain: {kimgs: 3}\n")
    (w / "unknown-base.yaml").write_text("base: cifar11-s\n")
    (w / "tabs.yaml").write_text("data:\n\tdataset: digits\n")
    (w / "empty-folder").mkdir()
    (w / "not-images").mkdir()
    (w / "not-images" / "readme.txt").write_text("no pictures here")
    (w / "cifar-bad").mkdir()
    (w / "cifar-bad" / "cifar-10-batches-py").mkdir()
    for i in range(1, 6):  # right names, garbage content
        (w / "cifar-bad" / "cifar-10-batches-py" / f"data_batch_{i}").write_bytes(b"not a pickle")
    # A tiny real checkpoint (manifest + verified G_ema), as the engine writes it.
    cfg = load_config("digits-tiny", TINY)
    G = build_generator(cfg)
    ckpt.save_checkpoint(
        w / "run" / "checkpoints",
        step=0,
        state={"G_ema": G.state_dict()},
        meta={
            "nimg": 0,
            "kimg": 0.0,
            "config": as_dict(cfg),
            "config_hash": config_hash(cfg),
            "dynamics_hash": dynamics_hash(cfg),
        },
    )
    (w / "ckpt-damaged").mkdir()
    (w / "ckpt-damaged" / "manifest.json").write_text("{not json")
    # Hostile YAML: binary, deep, duplicate keys, too large, alias bombs, code tags, control characters.
    (w / "binary.yaml").write_bytes(bytes(range(256)))
    (w / "deep-list.yaml").write_text("train: " + "[" * 20000 + "]" * 20000 + "\n")
    (w / "deep-map.yaml").write_text("".join("  " * i + f"k{i}:\n" for i in range(40)) + "  " * 40 + "v: 1\n")
    (w / "dup-section.yaml").write_text(
        "base: digits-tiny\noptim: {lr_g: 2.0e-4}\ntrain: {kimg: 1}\noptim: {lr_d: 1.0e-4}\n"
    )
    (w / "dup-field.yaml").write_text("base: digits-tiny\noptim:\n  lr_g: 2.0e-4\n  lr_g: 3.0e-4\n")
    (w / "huge.yaml").write_text("base: digits-tiny\n" + "# padding\n" * 120_000)
    (w / "aliases.yaml").write_text(
        "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"b{i}: &b{i} [*{'a' if i == 0 else f'b{i - 1}'}] \n" for i in range(70))
    )
    (w / "code-tag.yaml").write_text("base: digits-tiny\nname: !!python/object/apply:os.system ['echo pwned']\n")
    (w / "nul-root.yaml").write_text('base: digits-tiny\ndata: {root: "/data\\0/x"}\n')
    (w / "escape-name.yaml").write_text("base: digits-tiny\nname: ../../outside\n")
    for i in range(20):  # a 'base' chain 20 files long
        (w / f"chain{i}.yaml").write_text(f"base: chain{i + 1}.yaml\n" if i < 19 else "base: digits-tiny\n")
    (w / "a-file").write_text("not a folder")
    (w / "store").mkdir()
    (w / "store" / "mlflow.db").write_bytes(b"")
    return w


@pytest.fixture(scope="module")
def busy_port():
    """A port this process listens on (what `ui --port` must refuse, naming the holder)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _snapshot(*roots: Path) -> set[str]:
    out = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                out.add(os.path.join(dirpath, n))
    return out


# (id, argv with {w} for the world folder and {out} for the output root, words the message must hold)
CASES = [
    # presets and YAML files
    ("unknown-preset", ["train", "cifar11-s"], ["unknown preset 'cifar11-s'", "choose one of", "digits-tiny"]),
    ("missing-yaml", ["train", "{w}/nope.yaml"], ["does not exist", "preset name"]),
    ("yaml-syntax", ["train", "{w}/broken.yaml"], ["not valid YAML", "line 2", "fix the syntax"]),
    ("yaml-tabs", ["summary", "{w}/tabs.yaml"], ["not valid YAML", "fix the syntax"]),
    ("yaml-not-mapping", ["train", "{w}/list.yaml"], ["must hold a mapping", "not list"]),
    ("yaml-base-loop", ["config", "show", "{w}/loop.yaml"], ["loops back", "remove the cycle"]),
    ("yaml-unknown-base", ["train", "{w}/unknown-base.yaml"], ["unknown preset 'cifar11-s'"]),
    ("yaml-unknown-key", ["train", "{w}/typo.yaml"], ["train.kimgs", "unknown key", "check the spelling"]),
    # config values through --set
    ("set-no-equals", ["train", "digits-tiny", "--set", "optim.lr_g"], ["expected key=value", "--set optim.lr_g=2e-4"]),
    ("set-empty-key", ["train", "digits-tiny", "--set", "=3"], ["key before '=' is empty"]),
    (
        "set-unknown-section",
        ["train", "digits-tiny", "--set", "optimizer.lr=1"],
        ["unknown key 'optimizer'", "known keys", "optim"],
    ),
    ("set-unknown-field", ["train", "digits-tiny", "--set", "optim.lr=1"], ["unknown key 'lr'", "lr_g"]),
    ("negative-lr", ["train", "digits-tiny", "--set", "optim.lr_g=-1"], ["optim.lr_g", "greater than 0"]),
    ("lr-not-number", ["train", "digits-tiny", "--set", "optim.lr_g=fast"], ["optim.lr_g", "number", "'fast'"]),
    (
        "embed-not-divisible",
        ["train", "digits-tiny", "--set", "model.g.embed_dim=100"],
        ["model.g.embed_dim=100", "divisible by 4^(stages-1)=16"],
    ),
    (
        "heads-not-dividing",
        ["train", "digits-tiny", "--set", "model.g.heads=3"],
        ["model.g.heads=3", "pick heads dividing"],
    ),
    (
        "bottom-vs-resolution",
        ["train", "digits-tiny", "--set", "model.g.bottom=8"],
        ["model.g.bottom=8", "data.resolution=16", "set model.g.bottom=4"],
    ),
    (
        "batch-vs-workers",
        ["train", "digits-tiny", "--set", "optim.batch_d=63", "--set", "resources.workers=2"],
        ["optim.batch_d=63", "not divisible", "workers"],
    ),
    (
        "patch-vs-resolution",
        ["summary", "digits-tiny", "--set", "model.d.patch_size=3"],
        ["model.d.patch_size=3", "pick a patch size"],
    ),
    (
        "fractional-gpus-ddp",
        ["train", "digits-tiny", "--set", "resources.workers=2", "--set", "resources.gpus_per_worker=0.5"],
        ["gpus_per_worker", "whole number"],
    ),
    (
        "precision-literal",
        ["train", "digits-tiny", "--set", "train.precision=fp16"],
        ["train.precision", "'bf16'", "'fp16'"],
    ),
    (
        "augment-op",
        ["train", "digits-tiny", "--set", "augment.policy=[rotate]"],
        ["augment.policy", "'translation'", "'rotate'"],
    ),
    ("digits-hflip", ["train", "digits-tiny", "--set", "data.hflip=true"], ["data.hflip=true", "set data.hflip=false"]),
    ("kimg-negative", ["train", "digits-tiny", "--kimg", "-5"], ["train.kimg", "greater than 0"]),
    # metric names
    (
        "metric-unknown",
        ["train", "digits-tiny", "--set", "eval.metrics=[fud]"],
        ["unknown metric(s) ['fud']", "choose from"],
    ),
    (
        "metric-primary-missing",
        ["train", "digits-tiny", "--set", "eval.primary=kid"],
        ["eval.primary='kid'", "add it or pick one"],
    ),
    (
        "metric-fid-on-grey",
        ["train", "digits-tiny", "--set", "eval.metrics=[fid]", "--set", "eval.primary=fid"],
        ["need RGB images", "data.channels=3"],
    ),
    ("eval-metric-unknown", ["eval", "{w}/run", "--metrics", "fud"], ["unknown metric(s) ['fud']"]),
    ("eval-n-too-small", ["eval", "{w}/run", "--n", "1"], ["--n 1", "from 2 to"]),
    ("eval-batch-zero", ["eval", "{w}/run", "--batch", "0"], ["--batch 0"]),
    # datasets: names, paths, formats
    (
        "dataset-unknown",
        ["train", "digits-tiny", "--set", "data.dataset=mnist"],
        ["data.dataset", "'cifar10'", "'mnist'"],
    ),
    (
        "dataset-root-missing",
        [
            "train",
            "digits-tiny",
            "--set",
            "data.dataset=cifar10",
            "--set",
            "data.channels=3",
            "--set",
            "eval.metrics=[fid]",
            "--set",
            "eval.primary=fid",
        ],
        ["data.root is required", "data.root=/path/to/cifar10"],
    ),
    (
        "cifar-files-missing",
        [
            "train",
            "digits-tiny",
            "--set",
            "data.dataset=cifar10",
            "--set",
            "data.root={w}/empty-folder",
            "--set",
            "data.channels=3",
            "--set",
            "eval.metrics=[fid]",
            "--set",
            "eval.primary=fid",
        ],
        ["cifar10", "data_batch_1", "missing"],
    ),
    (
        "cifar-files-garbage",
        [
            "train",
            "digits-tiny",
            "--set",
            "data.dataset=cifar10",
            "--set",
            "data.root={w}/cifar-bad",
            "--set",
            "data.channels=3",
            "--set",
            "eval.metrics=[fid]",
            "--set",
            "eval.primary=fid",
        ],
        ["data_batch_1"],
    ),
    (
        "folder-empty",
        [
            "train",
            "digits-tiny",
            "--set",
            "data.dataset=folder",
            "--set",
            "data.root={w}/empty-folder",
            "--set",
            "data.channels=3",
            "--set",
            "eval.metrics=[kid]",
            "--set",
            "eval.primary=kid",
        ],
        ["holds no images", "Put image files"],
    ),
    (
        "folder-no-images",
        [
            "train",
            "digits-tiny",
            "--set",
            "data.dataset=folder",
            "--set",
            "data.root={w}/not-images",
            "--set",
            "data.channels=3",
            "--set",
            "eval.metrics=[kid]",
            "--set",
            "eval.primary=kid",
        ],
        ["holds no images"],
    ),
    # checkpoint paths
    (
        "resume-missing",
        ["train", "digits-tiny", "--resume", "{w}/no-such-run"],
        ["does not exist", "run directory or a checkpoint"],
    ),
    ("resume-empty", ["train", "digits-tiny", "--resume", "{w}/empty-folder"], ["no checkpoints under", "train first"]),
    (
        "resume-damaged-manifest",
        ["train", "digits-tiny", "--resume", "{w}/ckpt-damaged"],
        ["damaged", "earlier checkpoint"],
    ),
    (
        "resume-config-changed",
        ["train", "digits-tiny", "--resume", "{w}/run"],
        ["training-dynamics config changed", "--allow-config-change"],
    ),
    ("eval-missing", ["eval", "{w}/no-such-run"], ["does not exist"]),
    ("eval-no-checkpoints", ["eval", "{w}/empty-folder"], ["no checkpoints under"]),
    ("sample-missing", ["sample", "{w}/no-such-run"], ["does not exist"]),
    ("sample-n-zero", ["sample", "{w}/run", "--n", "0"], ["--n 0", "from 1 to"]),
    ("sample-interpolate-one", ["sample", "{w}/run", "--interpolate", "1"], ["--interpolate 1", ">= 2"]),
    (
        "sample-out-unwritable",
        ["sample", "{w}/run", "--n", "1", "--out", "/proc/transgan-nope"],
        ["cannot write samples", "writable --out"],
    ),
    # tracking
    (
        "tracking-plain-dir",
        ["train", "digits-tiny", "--kimg", "0.032", "--set", "tracking.uri={w}/plain-store"],
        ["plain directory store", "sqlite:///"],
    ),
    (
        "tracking-unreachable",
        ["train", "digits-tiny", "--kimg", "0.032", "--set", "tracking.uri=http://127.0.0.1:9"],
        ["http://127.0.0.1:9", "not reachable", "start it"],
    ),
    ("ui-no-store", ["ui", "--tracking-uri", "sqlite:///{w}/none/mlflow.db"], ["no run store", "--tracking-uri"]),
    # CLI arguments (argparse: usage line + one error line, exit code 2)
    ("cli-unknown-command", ["trian", "digits-tiny"], ["invalid choice: 'trian'"]),
    ("cli-missing-preset", ["train"], ["required: PRESET"]),
    ("cli-kimg-not-number", ["train", "digits-tiny", "--kimg", "lots"], ["--kimg", "invalid float value: 'lots'"]),
    ("cli-unknown-flag", ["train", "digits-tiny", "--epochs", "3"], ["unrecognized arguments: --epochs"]),
    ("cli-table-format", ["table", "--format", "pdf"], ["--format", "invalid choice: 'pdf'"]),
    # --- hardening (issue 18): every class of input refused at the door ---
    # YAML files: encoding, size, depth, duplicate keys, aliases, tags, base chains, text
    ("yaml-binary", ["train", "{w}/binary.yaml"], ["is not UTF-8 text", "byte 0x80", "saved as UTF-8"]),
    ("yaml-deep-lists", ["config", "show", "{w}/deep-list.yaml"], ["nests deeper than 32 levels", "flatten it"]),
    ("yaml-deep-mappings", ["train", "{w}/deep-map.yaml"], ["nests deeper than 32 levels", "line 33"]),
    (
        "yaml-duplicate-section",
        ["train", "{w}/dup-section.yaml"],
        ["duplicate key 'optim' at line 4", "first at line 2", "keep one"],
    ),
    ("yaml-duplicate-field", ["summary", "{w}/dup-field.yaml"], ["duplicate key 'lr_g' at line 4", "first at line 3"]),
    ("yaml-too-large", ["train", "{w}/huge.yaml"], ["larger than 1024 KiB", "right file"]),
    ("yaml-alias-bomb", ["config", "show", "{w}/aliases.yaml"], ["more than 64 aliases", "write the values out"]),
    ("yaml-python-tag", ["train", "{w}/code-tag.yaml"], ["not valid YAML", "line 2", "python/object/apply"]),
    ("yaml-base-chain-too-deep", ["config", "show", "{w}/chain0.yaml"], ["more than 16 files deep", "shorten it"]),
    ("yaml-nul-in-path", ["train", "{w}/nul-root.yaml"], ["data.root", "control character '\\x00'", "remove it"]),
    ("yaml-name-escapes", ["train", "{w}/escape-name.yaml"], ["name='../../outside' is not a valid name", "no '/'"]),
    ("preset-as-path-out", ["train", "../digits-tiny"], ["unknown preset '../digits-tiny'", "choose one of"]),
    ("preset-name-too-long", ["summary", "p" * 300], ["File name too long", "give a preset name"]),
    ("preset-nul", ["config", "show", "digits\0tiny"], ["PRESET holds the control character", "remove it"]),
    # numbers: seeds, non-finite values, sizes, counts, list lengths
    (
        "seed-overflow",
        ["train", "digits-tiny", "--set", "seed=99999999999999999999999"],
        ["seed=99999999999999999999999 is out of range", "from 0 to 9223372036854775807"],
    ),
    ("seed-negative", ["train", "digits-tiny", "--set", "seed=-1"], ["seed=-1 is out of range", "whole number"]),
    (
        "eval-seed-2-pow-63",
        ["train", "digits-tiny", "--set", "eval.seed=9223372036854775808"],
        ["eval.seed=9223372036854775808"],
    ),
    (
        "sweep-seed-negative",
        ["sweep", "digits-tiny", "--set", "sweep.seed=-7", "--dry-run"],
        ["sweep.seed=-7 is out of range"],
    ),
    (
        "lr-infinite",
        ["train", "digits-tiny", "--set", "optim.lr_g=.inf"],
        ["optim.lr_g=inf is not a finite number", "from 0 to 10"],
    ),
    ("lr-nan", ["train", "digits-tiny", "--set", "optim.lr_d=nan"], ["optim.lr_d"]),
    ("kimg-infinite", ["train", "digits-tiny", "--kimg", "inf"], ["train.kimg=inf is not a finite number"]),
    ("kimg-nan", ["train", "digits-tiny", "--kimg", "nan"], ["train.kimg"]),
    (
        "kimg-runs-forever",
        ["train", "digits-tiny", "--kimg", "1e12"],
        ["train.kimg=1e+12 is out of range", "to 1000000"],
    ),
    (
        "n-fake-runs-forever",
        ["train", "digits-tiny", "--set", "eval.n_fake=1000000000000"],
        ["eval.n_fake=1000000000000 is out of range", "from 2 to 10000000"],
    ),
    (
        "batch-too-large",
        ["train", "digits-tiny", "--set", "optim.batch_d=1099511627776"],
        ["optim.batch_d=1099511627776 is out of range"],
    ),
    (
        "width-too-large",
        ["summary", "digits-tiny", "--set", "model.g.embed_dim=1000000000000"],
        ["model.g.embed_dim=1000000000000 is out of range"],
    ),
    (
        "float-too-large",
        ["train", "digits-tiny", "--set", "loss.gp_weight=1.0e+300"],
        ["loss.gp_weight=1e+300 is out of range"],
    ),
    (
        "int-from-huge-float",
        ["train", "digits-tiny", "--set", "optim.n_critic=1.0e+30"],
        ["optim.n_critic", "as an integer"],
    ),
    (
        "workers-too-many",
        ["train", "digits-tiny", "--ray", "--set", "resources.workers=1000000000"],
        ["resources.workers=1000000000 is out of range"],
    ),
    (
        "list-too-long",
        ["train", "digits-tiny", "--set", "model.g.depths=[" + ",".join(["1"] * 100) + "]"],
        ["model.g.depths has 100 items", "at most 64"],
    ),
    # names and text that become paths
    (
        "name-escapes-out",
        ["train", "digits-tiny", "--set", "name=../esc"],
        ["name='../esc' is not a valid name", "e.g. my-run_2"],
    ),
    ("name-absolute", ["train", "digits-tiny", "--set", "name=/tmp/x"], ["name='/tmp/x' is not a valid name"]),
    ("name-too-long", ["train", "digits-tiny", "--set", "name=" + "n" * 65], ["is not a valid name", "1 to 64"]),
    ("name-space", ["train", "digits-tiny", "--set", "name=my run"], ["name='my run' is not a valid name"]),
    (
        "text-escape-sequence",
        ["train", "digits-tiny", "--set", "tracking.experiment=\x1b[31mred"],
        ["tracking.experiment", "control character '\\x1b'"],
    ),
    (
        "set-value-too-deep",
        ["train", "digits-tiny", "--set", "model.g.depths=" + "[" * 40 + "]" * 40],
        ["--set model.g.depths nests deeper than 32"],
    ),
    (
        "set-value-too-long",
        ["train", "digits-tiny", "--set", "data.root=" + "r" * 70000],
        ["--set data.root is 70000 characters long", "at most 65536"],
    ),
    ("set-key-too-long", ["train", "digits-tiny", "--set", "k" * 300 + "=1"], ["the key is 300 characters long"]),
    (
        "sweep-name-escapes",
        ["sweep", "digits-tiny", "--name", "../../x", "--dry-run"],
        ["--name='../../x' is not a valid name"],
    ),
    (
        "sweep-space-path",
        ["sweep", "digits-tiny", "--space", "/etc/passwd", "--dry-run"],
        ["--space='/etc/passwd' is not a valid name"],
    ),
    # CLI counts and sizes
    (
        "eval-n-runs-forever",
        ["eval", "{w}/run", "--n", "1000000000000"],
        ["--n 1000000000000 is out of range", "from 2 to 10000000"],
    ),
    ("eval-batch-too-large", ["eval", "{w}/run", "--batch", "100000000"], ["--batch 100000000 is out of range"]),
    (
        "sweep-samples-zero",
        ["sweep", "digits-tiny", "--samples", "0", "--dry-run"],
        ["--samples 0 is out of range", "from 1 to 10000"],
    ),
    (
        "sweep-samples-negative",
        ["sweep", "digits-tiny", "--samples", "-4", "--dry-run"],
        ["--samples -4 is out of range"],
    ),
    (
        "sample-seed-negative",
        ["sample", "{w}/run", "--seed", "-1"],
        ["--seed -1 is out of range", "from 0 to 9223372036854775807"],
    ),
    (
        "sample-seed-overflow",
        ["sample", "{w}/run", "--seed", "18446744073709551616"],
        ["--seed 18446744073709551616 is out of range"],
    ),
    (
        "sample-n-too-many",
        ["sample", "{w}/run", "--n", "1000000000"],
        ["--n 1000000000 is out of range", "from 1 to 100000"],
    ),
    (
        "sample-interpolate-too-many",
        ["sample", "{w}/run", "--interpolate", "100000"],
        ["--interpolate 100000 is out of range"],
    ),
    ("table-top-zero", ["table", "--top", "0"], ["--top 0 is out of range"]),
    ("cli-count-not-whole", ["sweep", "digits-tiny", "--samples", "2.5", "--dry-run"], ["invalid whole number '2.5'"]),
    # output paths: folders where files go, files where folders go
    ("report-out-is-folder", ["report", "--out", "{out}"], ["--out", "is a folder", "give a file name"]),
    ("report-out-trailing-slash", ["report", "--out", "{out}/new/"], ["is a folder"]),
    ("report-out-under-a-file", ["report", "--out", "{w}/a-file/report.html"], ["a-file is a file, not a folder"]),
    ("table-export-is-folder", ["table", "--export", "{out}"], ["--export", "is a folder"]),
    ("train-out-is-file", ["train", "digits-tiny", "--out", "{w}/a-file"], ["--out", "is a file, not a folder"]),
    ("sample-out-is-file", ["sample", "{w}/run", "--out", "{w}/a-file"], ["is a file, not a folder"]),
    # ports and addresses for `ui`
    ("ui-port-negative", ["ui", "--port", "-1"], ["--port -1 is not a TCP port", "from 1 to 65535"]),
    ("ui-port-too-large", ["ui", "--port", "70000"], ["--port 70000 is not a TCP port"]),
    (
        "ui-port-in-use",
        ["ui", "--tracking-uri", "sqlite:///{w}/store/mlflow.db", "--port", "{busy}"],
        ["--port {busy} on 127.0.0.1 is in use by pid", "choose another --port"],
    ),
    (
        "ui-host-not-local",
        ["ui", "--tracking-uri", "sqlite:///{w}/store/mlflow.db", "--host", "192.0.2.1", "--port", "{busy}"],
        ["cannot listen on 192.0.2.1", "--host 127.0.0.1"],
    ),
]
FIRST_HARDENING_CASE = "yaml-binary"  # the cases from here on came with the input-hardening work


def _fill(argv, w, out, busy=0):
    return [a.replace("{w}", str(w)).replace("{out}", str(out)).replace("{busy}", str(busy)) for a in argv]


def _check_message(err: str, words: list[str]) -> None:
    text = err.strip()
    assert "Traceback" not in text, text
    assert "\n\n" not in text, f"more than one paragraph:\n{text}"
    assert "error:" in text, text
    for word in words:
        assert word in text, f"{word!r} missing from:\n{text}"


def test_at_least_30_cases_across_all_kinds():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


def test_hardening_added_at_least_40_cases():
    first = [c[0] for c in CASES].index(FIRST_HARDENING_CASE)
    assert first >= 54 and len(CASES) - first >= 40, (first, len(CASES))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_in_process(case, world, busy_port, tmp_path, monkeypatch, capsys):
    _, argv, words = case
    out = tmp_path / "out"
    out.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    argv = _fill(argv, world, out, busy_port)
    words = _fill(words, world, out, busy_port)
    if argv[0] in ("train", "sample") and "--out" not in argv and "--help" not in argv:
        argv += ["--out", str(out)]
    before = _snapshot(out, cwd, world)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    _check_message(err, words)
    assert _snapshot(out, cwd, world) == before, "a refused command left files behind"


# A few through real subprocesses: the console exit code, no traceback, and --debug.
SUBPROCESS = ["unknown-preset", "cli-kimg-not-number"]  # each start imports torch: keep it to a few


def _run_cli(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("TRANSGAN_LAB_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "transgan_lab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_bad_input_real_process_exit_code_and_debug(world, tmp_path):
    by_id = {c[0]: c for c in CASES}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    before = _snapshot(cwd, out)
    for cid in SUBPROCESS:
        _, argv, words = by_id[cid]
        argv = _fill(argv, world, out)
        if argv[0] == "train":
            argv += ["--out", str(out)]
        p = _run_cli(argv, cwd)
        assert p.returncode == 2, (cid, p.stderr)
        _check_message(p.stderr, words)
        assert p.stdout == "", (cid, p.stdout)
    # --debug: the same refusal, now with the traceback (and still exit code 2 and the message).
    p = _run_cli(["--debug", "train", "digits-tiny", "--set", "model.g.embed_dim=100", "--out", str(out)], cwd)
    assert p.returncode == 2
    assert "Traceback (most recent call last)" in p.stderr and "ConfigError" in p.stderr
    assert p.stderr.rstrip().splitlines()[-1].startswith("error: invalid config: model.g.embed_dim=100")
    assert _snapshot(cwd, out) == before


def test_program_errors_are_not_disguised_as_user_errors(monkeypatch, capsys):
    """Only user errors become exit code 2; a bug in a command still raises (with its traceback)."""
    import transgan_lab.platform.commands as commands

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(commands, "cmd_summary", broken)
    with pytest.raises(ZeroDivisionError):
        main(["summary", "digits-tiny"])
