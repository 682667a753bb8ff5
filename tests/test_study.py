"""Paper studies for real: `transgan-lab study` on a real Ray runtime and MLflow server, the
published files, the spread marks, and the committed studies under docs/studies/."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from contextlib import redirect_stdout

import pytest
from conftest import REPO

from transgan_lab.analysis import load
from transgan_lab.analysis.tables.model import Cell, Column, Section, Table, mark_best, within_spread
from transgan_lab.platform import tracking
from transgan_lab.platform.cli import main as cli_main
from transgan_lab.platform.config import ConfigError
from transgan_lab.platform.study import STUDIES, plan, study_id

STUDIES_DIR = REPO / "docs" / "studies"


# --------------------------------------------------------------------------- fast checks


def test_every_study_plans_valid_configs_for_every_dataset():
    for study, sdef in STUDIES.items():
        for dataset, variants in sdef.variants.items():
            runs = plan(study, dataset=dataset, seeds=3)
            assert len(runs) == 3 * len(variants)
            assert [r.seed for r in runs[:3]] == [0, 1, 2]
            assert len({r.slug for r in runs}) == len(runs)  # run names inside a study are unique
            labels = list(dict.fromkeys(r.variant for r in runs))
            assert labels == [v for v, _ in variants]
    # the digits study trains long enough to be a GAN, not a smoke test (>= 500 G updates per run)
    cfg = plan("table1", dataset="digits", seeds=1)[0].config
    g_updates = cfg.train.kimg * 1000 / cfg.optim.batch_d / cfg.optim.n_critic
    assert g_updates >= 500


def test_study_id_follows_every_config():
    a = plan("table3", dataset="digits", seeds=2)
    assert study_id("table3", "digits", a) == study_id("table3", "digits", plan("table3", dataset="digits", seeds=2))
    longer = plan("table3", dataset="digits", seeds=2, overrides=["train.kimg=40"])
    assert study_id("table3", "digits", longer) != study_id("table3", "digits", a)
    assert study_id("table3", "digits", plan("table3", dataset="digits", seeds=3)) != study_id("table3", "digits", a)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"study": "table9"}, ["unknown study 'table9'", "table1"]),
        ({"study": "table1", "dataset": "lsun"}, ["no 'lsun' variants", "--dataset"]),
        ({"study": "table1", "seeds": 0}, ["--seeds 0", "from 1 to 100"]),
        ({"study": "table2", "only": ["TransGAN"]}, ["--only ['TransGAN']", "TransGAN + DiffAugment"]),
        ({"study": "table1", "overrides": ["optim.lr_g=-1"]}, ["variant 'conv G / conv D'", "optim.lr_g"]),
    ],
)
def test_bad_study_input_names_the_problem(kwargs, words):
    study = kwargs.pop("study")
    with pytest.raises(ConfigError) as e:
        plan(study, **kwargs)
    for w in words:
        assert w in str(e.value)


def test_bad_study_input_exits_2_before_ray(tmp_path):
    env_tmp = tmp_path / "raytmp"
    p = subprocess.run(
        [sys.executable, "-m", "transgan_lab", "study", "table2", "--only", "nope", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env={**os.environ, "RAY_TMPDIR": str(env_tmp), "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert p.returncode == 2 and "--only ['nope'] names no variant of table2" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and not env_tmp.exists() and not (tmp_path / "o").exists()


def _cell(mean, std, n=3):
    return Cell(value=mean, std=std, n=n, n_row=n)


def test_spread_marks_ties_with_the_best_only():
    # Welch: |diff| < 2 * sqrt(s1^2/n1 + s2^2/n2)
    assert within_spread(_cell(10.0, 3.0), _cell(13.0, 3.0))  # 3 < 2 * 2.449
    assert not within_spread(_cell(10.0, 1.0), _cell(13.0, 1.0))  # 3 > 2 * 0.816
    assert not within_spread(_cell(10.0, None, 1), _cell(10.5, 3.0))  # one seed: no spread, no tie
    col = Column("fid", "FID", "metric", direction="min")
    rows = [{"fid": _cell(50.0, 2.0)}, {"fid": _cell(52.0, 2.0)}, {"fid": _cell(80.0, 2.0)}]
    t = Table("t", "t", [col], [Section("ours", rows)])
    mark_best(t)
    assert [(r["fid"].bold, r["fid"].tie) for r in rows] == [(True, False), (False, True), (False, False)]
    assert any(n.startswith("≈ = within the spread") for n in t.notes)


# --------------------------------------------------------------------------- a real study


@pytest.mark.slow
def test_smoke_study_runs_records_publishes_and_resumes(ray_runtime, mlflow_server, tmp_path):
    """table2 smoke: 2 variants x 2 seeds as Tune trials of Ray Train runs in a real MLflow server;
    the published Markdown is what `table --parquet` prints; the same command again resumes."""
    args = ["study", "table2", "--dataset", "smoke", "--seeds", "2", "--kimg", "0.128"]
    args += ["--out", str(tmp_path / "out"), "--tracking-uri", mlflow_server.uri, "--publish", str(tmp_path / "docs")]
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert cli_main(args) == 0
    out = buf.getvalue()
    runs = plan("table2", dataset="smoke", seeds=2, overrides=["train.kimg=0.128"])
    name = study_id("table2", "smoke", runs)

    exp = tracking.ensure_experiment(mlflow_server.uri, runs[0].config.tracking.experiment)
    trials = tracking.find_runs(mlflow_server.uri, exp, {"transgan.sweep_id": name, "transgan.kind": "trial"})
    got = sorted((t.data.tags["transgan.variant"], t.data.tags["transgan.seed"]) for t in trials)
    want = sorted((r.variant, str(r.seed)) for r in runs)
    assert got == want and all(t.info.status == "FINISHED" for t in trials)
    assert all(t.data.tags["transgan.study"] == "table2" for t in trials)
    for t in trials:
        assert t.data.metrics["kimg"] == pytest.approx(0.128) and math.isfinite(t.data.metrics["digits_fid"])

    dest = tmp_path / "docs" / "table2"
    for f in ("table.md", "table.tex", "runs.parquet", "curves.png"):
        assert (dest / f).stat().st_size > 0, f
    assert sorted(p.name for p in (dest / "grids").glob("*.png")) == [
        "transgan-diffaugment.png",
        "transgan-no-augmentation.png",
    ]
    md = (dest / "table.md").read_text()
    assert "TransGAN, no augmentation" in md and "0.128 kimg" in md and name in md
    assert md.split("\n")[0] in out.replace("Table 2", "### Table 2")  # the terminal table has the same title
    tex = (dest / "table.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and tex.count(r"\\") >= 4

    # the Markdown rebuilds byte for byte from the Parquet export alone
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert cli_main(["table", "table2", "--parquet", str(dest / "runs.parquet"), "--format", "markdown"]) == 0
    assert buf.getvalue() == md
    assert '"n_fake":' not in md  # the one-line protocol; --verbose prints the whole of it
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert cli_main(["table", "table2", "--parquet", str(dest / "runs.parquet"), "--verbose"]) == 0
    assert '"n_fake":64' in buf.getvalue()
    assert len(load.import_parquet(dest / "runs.parquet")) == len(runs) + 1  # trials and the study's parent

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert cli_main(args) == 0  # the same command: resumes the finished study, runs nothing again
    assert f"resuming {name}" in buf.getvalue()
    again = tracking.find_runs(mlflow_server.uri, exp, {"transgan.sweep_id": name, "transgan.kind": "trial"})
    assert sorted(t.info.run_id for t in again) == sorted(t.info.run_id for t in trials)
    assert (dest / "table.md").read_text() == md


# --------------------------------------------------------------------------- the published studies


PUBLISHED = sorted(p.parent for p in STUDIES_DIR.glob("table*/runs.parquet"))


def test_the_four_studies_are_published():
    assert [p.name for p in PUBLISHED] == ["table1", "table2", "table3", "table4"], (
        f"docs/studies holds {[p.name for p in PUBLISHED]}; publish each with "
        "`transgan-lab study tableN --dataset digits --seeds 3 --publish docs/studies`"
    )


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda p: p.name)
def test_published_table_rebuilds_byte_identical_from_its_parquet(folder):
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = cli_main(["table", folder.name, "--parquet", str(folder / "runs.parquet"), "--format", "markdown"])
    assert code == 0
    assert buf.getvalue() == (folder / "table.md").read_text()
    df = load.import_parquet(folder / "runs.parquet")
    trials = df[df["kind"] == "trial"]
    assert trials.groupby("variant")["seed"].nunique().min() >= 3  # >= 3 seeds per variant
    assert set(trials["status"]) == {"FINISHED"}
    assert (folder / "curves.png").exists()
    assert len(list((folder / "grids").glob("*.png"))) == trials["variant"].nunique()
