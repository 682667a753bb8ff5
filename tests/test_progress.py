"""What `transgan-lab train` shows while it trains: the MLflow store and the `ui` command at start and
end, a live tqdm line on a terminal, one plain line per report in a log."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from transgan_lab.platform.progress import TrainProgress


class ListReporter:
    """A reporter that keeps what it is given (what the engine's other reporters receive)."""

    def __init__(self):
        self.calls = []

    def report(self, metrics, checkpoint_dir=None, files=None):
        self.calls.append((dict(metrics), checkpoint_dir, files))


REPORTS = [
    {"step": 8, "kimg": 0.256, "train_s": 10.0, "img_per_s": 25.6, "loss_d": -0.5, "loss_g": 1.25},
    {"step": 16, "kimg": 0.512, "train_s": 20.0, "img_per_s": 25.6, "loss_d": -0.25, "loss_g": 1.5, "digits_fid": 87.5},
    {"step": 24, "kimg": 0.768, "train_s": 30.0, "img_per_s": 25.6, "loss_d": -0.125, "loss_g": 1.75},
]


def test_plain_lines_when_not_a_terminal():
    inner, out = ListReporter(), io.StringIO()
    p = TrainProgress(inner, total_kimg=1.024, stream=out)
    assert p.live is False  # a StringIO is no terminal
    for i, m in enumerate(REPORTS):
        p.report(m, checkpoint_dir=f"ck{i}", files={"grid": "g.png"} if i == 1 else None)
    p.close()
    assert [c[1] for c in inner.calls] == ["ck0", "ck1", "ck2"] and inner.calls[1][2] == {"grid": "g.png"}
    assert [c[0] for c in inner.calls] == REPORTS  # every report passed on unchanged
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    # 10 s per 0.256 kimg -> 0.256 kimg left after the last report = 10 s
    assert lines[2] == (
        "[train] 0.768/1.024 kimg ( 75%) | G updates 24 | 26 img/s | ETA 0:10 | loss_d -0.125 loss_g 1.750 | "
        "digits-FID 87.50"
    )
    assert lines[0].endswith("ETA 0:30 | loss_d -0.500 loss_g 1.250")  # no evaluation yet


def test_live_line_on_a_terminal():
    out = io.StringIO()
    p = TrainProgress(ListReporter(), total_kimg=1.024, stream=out, live=True)
    for m in REPORTS:
        p.report(m)
    p.close()
    text = out.getvalue()
    assert "\r" in text  # redrawn in place
    final = text.split("\r")[-1]
    assert "0.77/1.024 kimg" in final and " 75%" in final
    assert "G updates 24" in final and "digits-FID 87.50" in final and "loss_g 1.750" in final


@pytest.mark.slow
def test_cli_train_prints_progress_and_the_store(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "transgan_lab", "train", "digits-tiny", "--kimg", "0.512", "--out", str(tmp_path)]
    cmd += ["--set", "train.log_kimg=0.256", "--set", "train.eval_kimg=0.512", "--set", "eval.n_fake=200"]
    cmd += ["--set", "train.checkpoint_kimg=0.512", "--set", "train.grid_kimg=0.512"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    store = f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    hint = f"MLflow store: {store}  (open it: transgan-lab ui --tracking-uri '{store}')"
    assert lines[0] == hint and lines[-1] == hint, p.stdout
    progress = [line for line in lines if line.startswith("[train] ")]
    assert [re.match(r"\[train\] ([0-9.]+)/0\.512 kimg", line).group(1) for line in progress] == ["0.256", "0.512"]
    assert all(re.search(r"\| G updates \d+ \| \d+ img/s \| ETA \d+:\d\d \| loss_d ", line) for line in progress)
    assert re.search(r"\| digits-FID \d+\.\d\d$", progress[-1]), progress[-1]


def test_sweep_overall_bar_and_eta():
    import time

    from transgan_lab.platform.sweep.callbacks import Progress

    p = Progress("digits_fid", 4)
    p.t0 = time.monotonic() - 60.0  # two trials took a minute: two more take another
    assert p.overall(2) == "[##########..........] 2/4 trials done, ETA 1:00"
    assert p.overall(0).endswith("0/4 trials done, ETA ?") and p.overall(4).startswith("[" + "#" * 20 + "]")
