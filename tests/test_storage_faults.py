"""Storage faults during checkpointing, and damaged checkpoints at resume, through the CLI.

- Disk full: the run's checkpoints/ folder is a real tmpfs mount (`mount -t tmpfs -o size=...`,
  needs root; skipped with the reason otherwise) sized so that the third checkpoint cannot fit.
- File too large: RLIMIT_FSIZE in a subprocess (SIGXFSZ ignored, so the write raises EFBIG),
  lowered by the engine's ``on_step`` hook after the first checkpoints; runs anywhere.
Both: the previous checkpoint stays valid (checksums verify, it resumes), no partial checkpoint
or temp dir is left, and the error names the failed write and the intact checkpoint.
- Truncated / tampered checkpoints are detected by `train --resume`. (Flipped bytes, truncation
  and pickled code at the library level: tests/test_checkpoint.py; SIGKILL mid-checkpoint and
  NaN rollback: tests/test_train.py.)
"""

from __future__ import annotations

import json
import os
import shutil
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
    "train.log_kimg=0.032",
    "train.checkpoint_kimg=0.032",
    "train.grid_kimg=0",
    "train.keep_last=5",
    "train.precision=fp32",
]


def _argv(out: Path, kimg: float, *extra: str) -> list[str]:
    argv = ["train", "digits-tiny", "--kimg", str(kimg), "--out", str(out), "--no-tracking", *extra]
    for s in TINY:
        argv += ["--set", s]
    return argv


def _run_dir(out: Path) -> Path:
    from transgan_lab.platform.commands import run_dir_for
    from transgan_lab.platform.config import load_config

    return run_dir_for(load_config("digits-tiny", TINY + ["train.kimg=0.096"]), out)


def _steps(root: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in root.glob("ckpt-*"))


@pytest.mark.slow
def test_disk_full_during_checkpoint_keeps_the_previous_one(tmp_path, capsys):
    from transgan_lab.trainers import checkpoint as ckpt

    out = tmp_path / "out"
    run_dir = _run_dir(out)
    mnt = run_dir / "checkpoints"
    mnt.mkdir(parents=True)
    # ckpt-0 (no optimiser state) is ~1.1 MB and every later one ~2.2 MB for this model: 4.5 MB holds
    # steps 0 and 1, and step 2 runs out of space.
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4608k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(
            f"mounting a tmpfs is not permitted here ({p.stderr.strip()}); "
            "test_file_size_limit_during_checkpoint covers the failed write"
        )
    try:
        rc = main(_argv(out, 0.096))  # 3 steps of 32 images
        err = capsys.readouterr().err
        assert rc == 1, err
        assert "No space left on device" in err and "ckpt-00000001" in err and f"--resume {run_dir}" in err
        assert "Traceback" not in err
        assert _steps(mnt) == [0, 1]
        assert not [p.name for p in mnt.iterdir() if p.name.startswith(".")], "a temp dir was left behind"
        found, manifest = ckpt.latest_valid(mnt)
        assert found.name == "ckpt-00000001" and manifest["step"] == 1
        ckpt.load_checkpoint(found)  # every file verifies and loads
        saved = tmp_path / "saved"
        shutil.copytree(run_dir, saved)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    # The surviving checkpoint continues the run to the end, on healthy storage.
    shutil.rmtree(run_dir)
    shutil.copytree(saved, run_dir)
    rc = main(_argv(out, 0.096, "--resume", str(run_dir)))
    assert rc == 0, capsys.readouterr().err
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished" and status["step"] == 3
    assert _steps(run_dir / "checkpoints")[-1] == 3


_FSIZE_SCRIPT = r"""
import json, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing us
from transgan_lab.platform.config import load_config
from transgan_lab.trainers.train import NullReporter, train
cfg = load_config("digits-tiny", json.loads(sys.argv[2]))
def on_step(step, models):
    if step == 3:  # called before step 3 is checkpointed (0..2 are written): no file may now exceed 64 KiB
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
try:
    train(cfg, NullReporter(), out_dir=sys.argv[1], on_step=on_step)
except Exception as e:  # torch.save raises a RuntimeError while handling the OSError: report the cause
    from transgan_lab.platform.commands import _os_error_in_chain
    oe = _os_error_in_chain(e)
    if oe is None:
        raise
    print(json.dumps({"errno": oe.errno, "strerror": oe.strerror}))
    sys.exit(3)
"""


@pytest.mark.slow
def test_file_size_limit_during_checkpoint_keeps_the_previous_one(tmp_path):
    from transgan_lab.trainers import checkpoint as ckpt

    run_dir = tmp_path / "run"
    sets = TINY + ["train.kimg=0.128"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.run(
        [sys.executable, "-c", _FSIZE_SCRIPT, str(run_dir), json.dumps(sets)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 3, p.stderr[-3000:]
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert info["errno"] == 27, info  # EFBIG while writing the step-3 checkpoint
    root = run_dir / "checkpoints"
    assert _steps(root) == [0, 1, 2]
    assert not list(root.glob(".tmp-*")), "the failed temp dir was left behind"
    found, manifest = ckpt.latest_valid(root)
    assert found.name == "ckpt-00000002" and manifest["step"] == 2
    ckpt.load_checkpoint(found)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real 2-step run with checkpoints at steps 0, 1, 2."""
    out = tmp_path_factory.mktemp("storage-run") / "out"
    assert main(_argv(out, 0.064)) == 0
    from transgan_lab.platform.commands import run_dir_for
    from transgan_lab.platform.config import load_config

    run_dir = run_dir_for(load_config("digits-tiny", TINY + ["train.kimg=0.064"]), out)
    assert _steps(run_dir / "checkpoints") == [0, 1, 2]
    return out, run_dir


@pytest.mark.parametrize("damage", ["truncate", "tamper", "manifest"])
def test_damaged_checkpoint_is_detected_at_resume(finished_run, tmp_path, capsys, damage):
    out0, run_dir0 = finished_run
    run_dir = tmp_path / run_dir0.name
    shutil.copytree(run_dir0, run_dir)
    newest = run_dir / "checkpoints" / "ckpt-00000002"
    g = newest / "G.pt"
    if damage == "truncate":
        g.write_bytes(g.read_bytes()[: g.stat().st_size // 2])
    elif damage == "tamper":  # same size, one byte changed
        data = bytearray(g.read_bytes())
        data[len(data) // 2] ^= 0x01
        g.write_bytes(bytes(data))
    else:
        (newest / "manifest.json").write_text('{"step": 2, "files": ')
    # Pointing at the damaged checkpoint itself is refused, naming it.
    rc = main(_argv(tmp_path / "out", 0.064, "--resume", str(newest)))
    err = capsys.readouterr().err
    assert rc == 2 and "damaged" in err and "ckpt-00000002" in err and "Traceback" not in err
    # Pointing at the run: the damaged newest one is skipped with a warning and step 1 is used.
    with pytest.warns(UserWarning, match="skipping damaged checkpoint"):
        rc = main(_argv(tmp_path / "out", 0.064, "--resume", str(run_dir)))
    assert rc == 0, capsys.readouterr().err
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 2
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished" and status["step"] == 2
