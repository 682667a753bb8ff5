"""The demo's own sweep, end to end: `experiments/sweep_digits.py --demo` (what `make demo` runs),
tracked in the session's real MLflow server, then `transgan-lab table` and `transgan-lab report`
on it, the report opened in headless Chromium, and the MLflow UI showing its trials.

The demo runs exactly as `make demo` does (its preset, search space, ASHA settings, local Ray
runtime, results table) except that it is shortened so the suite stays within its time budget:
3 trials instead of 6, 2 training steps each with an evaluation after each step, 200 generated
images per evaluation. The expected tables are computed here from the MLflow client directly, not
from the analysis layer under test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_report_browser import _chromium, chromium, mlflow_ui_views, render_report, shots  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NAME = "demo-in-ci"
EXPERIMENT = "demo-in-ci"
SHORTER = [
    "train.kimg=0.512",
    "train.log_kimg=0.256",
    "train.eval_kimg=0.256",
    "train.checkpoint_kimg=0.256",
    "train.grid_kimg=0.256",
    "eval.n_fake=200",
    "eval.batch=100",
]
N_TRIALS = 3


@pytest.fixture(scope="module")
def demo(mlflow_server, tmp_path_factory):
    """Run the demo script once for the module; return where its sweep lives and what MLflow holds."""
    from mlflow.tracking import MlflowClient

    out = tmp_path_factory.mktemp("demo")
    ray_tmp = Path("/tmp") / f"tgld-{os.getpid()}"  # short: Ray's unix sockets live under it
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    cmd = [
        sys.executable,
        str(REPO / "experiments" / "sweep_digits.py"),
        "--demo",
        "--samples",
        str(N_TRIALS),
        "--name",
        NAME,
        "--out",
        str(out),
        "--address",
        "local",
        "--set",
        f"tracking.uri={mlflow_server.uri}",
        "--set",
        f"tracking.experiment={EXPERIMENT}",
        *[a for kv in SHORTER for a in ("--set", kv)],
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env, cwd=out)
    (out / "demo.log").write_text(p.stdout + p.stderr)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert "TransGAN Lab demo: 3 trials on the digits data (0.512 kimg each)" in p.stdout
    assert "sweep wall time:" in p.stdout

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([exp_id], filter_string=f"tags.`transgan.sweep_id` = '{NAME}'")
    parents = [r for r in runs if r.data.tags.get("transgan.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("transgan.kind") == "trial"]
    assert len(parents) == 1 and len(children) == N_TRIALS
    parent = parents[0]
    assert all(c.data.tags.get("mlflow.parentRunId") == parent.info.run_id for c in children)
    return {
        "uri": mlflow_server.uri,
        "exp_id": exp_id,
        "parent": parent.info.run_id,
        "stdout": p.stdout,
        "stderr": p.stderr,
        "ids": {r.info.run_name: r.info.run_id for r in runs},
        "children": children,
    }


def _ranked(children) -> list[tuple[str, float]]:
    """Scored trials by final digits-FID, best first: straight from the MLflow client."""
    scored = [
        (c.info.run_name, c.data.metrics["digits_fid"])
        for c in children
        if c.info.status == "FINISHED" and "digits_fid" in c.data.metrics
    ]
    return sorted(scored, key=lambda nv: (nv[1], nv[0]))


def test_demo_log_has_no_warning_that_is_not_the_users(demo):
    """Ray's raylet start-up concurrency warning and Optuna's ExperimentalWarning are configured
    away where they arise (init_ray, the sweep driver)."""
    log = demo["stdout"] + demo["stderr"]
    assert "worker processes have been started" not in log
    assert "ExperimentalWarning" not in log


def test_demo_sweep_terminal_table_fits_120_columns(demo):
    cli = Path(sys.executable).parent / "transgan-lab"
    r = subprocess.run(
        [str(cli), "table", "sweep", "--sweep", NAME, "--tracking-uri", demo["uri"]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert max(len(line) for line in r.stdout.splitlines()) <= 120, r.stdout
    header = next(line for line in r.stdout.splitlines() if line.startswith("Rank "))
    assert "kimg" in header and "G updates" in header and "digits-FID ↓" in header
    assert "train." not in r.stdout.split("searched params:")[1].split("\n")[0]  # no bookkeeping field listed
    assert "digits-FID: 200 fake vs " in r.stdout  # the protocol as a footnote, not its JSON
    assert '{"' not in r.stdout


def test_demo_sweep_table(demo):
    ranked = _ranked(demo["children"])
    assert ranked, "no trial of the demo finished with a digits-FID"
    cli = Path(sys.executable).parent / "transgan-lab"
    r = subprocess.run(
        [str(cli), "table", "--sweep", NAME, "--tracking-uri", demo["uri"], "--format", "markdown"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and NAME in line]
    header = next(line for line in r.stdout.splitlines() if line.startswith("| Rank"))
    assert "| kimg | G updates |" in header, header  # training length also in generator updates
    names = [re.search(rf"({re.escape(NAME)}-t\d{{3}})", row.replace("\\_", "_")).group(1) for row in rows]
    assert names == [n for n, _ in ranked], (names, ranked, r.stdout)
    # the best trial's digits-FID as MLflow holds it, in bold, in the first row
    best = ranked[0][1]
    bold = re.findall(r"\*\*([0-9.]+)\*\*", rows[0])
    assert any(abs(float(b) - best) <= 0.01 * max(1.0, abs(best)) for b in bold), (rows[0], best)
    # the demo's own results table (printed at its end) names the same best trial
    best_line = re.search(r"^best trial: (\S+) \(digits_fid = ([0-9.e+]+)", demo["stdout"], flags=re.M)
    assert best_line, demo["stdout"][-2000:]
    assert ranked[0][0].endswith(best_line.group(1)) and float(best_line.group(2)) == pytest.approx(best, rel=1e-3)
    # ... and where its samples are: the newest grid of that trial, digits enlarged to >= 48 px
    from PIL import Image

    grid_line = re.search(r"^its samples \(fixed latents, at [0-9.]+ kimg\): (\S+)$", demo["stdout"], flags=re.M)
    assert grid_line, demo["stdout"][-2000:]
    grid = Path(grid_line.group(1))
    assert grid.parent.parent.name == f"{NAME}-{best_line.group(1)}" and grid.name.startswith("grid-")
    with Image.open(grid) as im:
        assert min(im.size) >= 2 * 48  # at least two rows of samples of at least 48 px


def test_demo_sweep_report_renders_in_chromium(chromium, demo, shots, tmp_path):  # noqa: F811
    from PIL import Image, ImageStat

    out = tmp_path / "demo-report.html"
    _, dom, n_img = render_report(NAME, demo["uri"], out, tmp_path / "p1")
    assert n_img >= 2  # figures and the trials' sample grids
    rows = re.findall(r'<tr class="row">(.*?)</tr>', dom, flags=re.S)
    assert [re.findall(r"<td[^>]*>(.*?)</td>", row)[1] for row in rows] == [n for n, _ in _ranked(demo["children"])]

    shot = shots / "demo-report.png"
    _chromium(
        ["--window-size=1280,2000", "--virtual-time-budget=15000", f"--screenshot={shot}", out.as_uri()],
        tmp_path / "p2",
    )
    with Image.open(shot) as im:
        stat = ImageStat.Stat(im.convert("L"))
        assert stat.stddev[0] > 20, f"screenshot looks blank (pixel std {stat.stddev[0]:.1f})"


def test_mlflow_ui_shows_the_demo_trials_under_its_sweep(chromium, demo, shots, tmp_path):  # noqa: F811
    layout, compare = mlflow_ui_views(chromium, demo, shots / "demo-mlflow-runs.png", tmp_path)
    parent = layout[demo["parent"]]
    assert parent["name"] == NAME
    for c in demo["children"]:
        row = layout[c.info.run_id]
        assert row["name"] == c.info.run_name
        assert row["top"] > parent["top"] and row["left"] > parent["left"] + 10, (c.info.run_name, row, parent)
    # the compare view shows each trial's sampled learning rate as MLflow recorded it
    names = compare["Run Name:"]
    assert sorted(names) == sorted(c.info.run_name for c in demo["children"])
    by_name = {c.info.run_name: c for c in demo["children"]}
    for i, name in enumerate(names):
        assert float(compare["optim.lr_g"][i]) == pytest.approx(float(by_name[name].data.params["optim.lr_g"]))
