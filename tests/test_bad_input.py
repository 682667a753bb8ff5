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

from transgan_lab.platform.cli import main

REPO = Path(__file__).resolve().parents[1]

TINY = [
    "model.g.embed_dim=64",
    "model.g.depths=[1,1,1]",
    "model.g.heads=2",
    "model.d.embed_dim=32",
    "model.d.depth=1",
    "model.d.heads=2",
    "optim.n_critic=1",
    "optim.batch_d=32",
    "optim.batch_g=32",
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
    return w


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
    ("eval-n-too-small", ["eval", "{w}/run", "--n", "1"], ["--n 1", "at least 2"]),
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
    ("sample-n-zero", ["sample", "{w}/run", "--n", "0"], ["--n 0", "at least one image"]),
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
]


def _fill(argv, w, out):
    return [a.replace("{w}", str(w)).replace("{out}", str(out)) for a in argv]


def _check_message(err: str, words: list[str]) -> None:
    text = err.strip()
    assert "Traceback" not in text, text
    assert "\n\n" not in text, f"more than one paragraph:\n{text}"
    assert "error:" in text, text
    for word in words:
        assert word in text, f"{word!r} missing from:\n{text}"


def test_at_least_30_cases_across_all_kinds():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_in_process(case, world, tmp_path, monkeypatch, capsys):
    _, argv, words = case
    out = tmp_path / "out"
    out.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    argv = _fill(argv, world, out)
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
