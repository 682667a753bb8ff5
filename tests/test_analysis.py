"""analysis/: runs logged into a real MLflow server -> tidy frame -> aggregates -> tables in every format.

Golden files live in tests/golden/ and are compared exactly. After an intended change of the
output, regenerate them with

    TGL_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/test_analysis.py -q

and review the diff (`git diff tests/golden`) before committing.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
from pathlib import Path

import analysis_runs as R
import pandas as pd
import pytest

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("TGL_REGEN_GOLDEN") == "1"
EXT = {"terminal": "txt", "markdown": "md", "latex": "tex", "html": "html", "csv": "csv"}
STUDIES_EXP = "analysis-studies"
SWEEP_EXP = "analysis-sweep"
SWEEP_ID = "golden-sweep"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with TGL_REGEN_GOLDEN=1 to create it, then review it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from its golden file (TGL_REGEN_GOLDEN=1 regenerates)"
    )


@pytest.fixture(scope="module")
def store(mlflow_server):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    if client.get_experiment_by_name(STUDIES_EXP) is None:
        R.log_studies(client, STUDIES_EXP)
        R.log_sweep(client, SWEEP_EXP, SWEEP_ID, images=False)
    return mlflow_server.uri


@pytest.fixture(scope="module")
def runs(store) -> pd.DataFrame:
    from transgan_lab.analysis import load

    return load.load_runs(tracking_uri=store, experiment=STUDIES_EXP)


@pytest.fixture(scope="module")
def sweep_runs(store) -> pd.DataFrame:
    from transgan_lab.analysis import load

    return load.load_runs(tracking_uri=store, sweep_id=SWEEP_ID)


# ------------------------------------------------------------------------------------ load


def test_frame_has_one_typed_row_per_run(runs):
    n_expected = sum(len(s) for *_, s in R.TABLE1) + 1 + 5 + 6 + 1 + sum(len(s) for *_, s in R.TABLE4) + 2
    assert len(runs) == n_expected == runs["run_id"].nunique()
    assert str(runs["seed"].dtype) == "Int64"
    assert str(runs["param.model.g.embed_dim"].dtype) == "Int64"
    assert str(runs["param.optim.lr_g"].dtype) == "Float64"
    assert str(runs["param.data.hflip"].dtype) == "boolean"
    assert str(runs["final.digits_fid"].dtype) == "Float64"
    assert str(runs["start_time"].dtype) == "datetime64[ms, UTC]"
    r = runs.set_index("run_name").loc["t1-transgan-vit-s1"]
    assert (r["kind"], r["study"], r["variant"], r["seed"], r["status"]) == (
        "train",
        "table1",
        "Transformer G + Transformer D",
        1,
        "FINISHED",
    )
    assert r["final.digits_fid"] == 13.0 and r["best.digits_fid"] == 12.5 and r["best_kimg.digits_fid"] == 5.12
    assert r["final.digits_is"] == 2.2 and r["best.digits_is"] == 2.3
    assert r["last_kimg"] == 7.68 and r["duration_s"] == 600.0
    assert r["median.img_per_s"] == 1000.0 and r["final.g_params"] == 1_234_567.0
    preset = R.flat_params("digits-tiny", [])
    assert (
        r["param.model.g.depths"] == preset["model.g.depths"] and r["param.augment.policy"] == preset["augment.policy"]
    )
    assert json.loads(r["protocol.digits_fid"]) == R.protocol("digits_fid")
    assert r["protocol.digits_fid"] == json.dumps(R.protocol("digits_fid"), sort_keys=True, separators=(",", ":"))
    assert runs.set_index("run_name").loc["t1-transgan-vit-s3", "status"] == "FAILED"


def test_store_errors_name_the_fix(tmp_path):
    from transgan_lab.analysis import load

    with pytest.raises(load.TrackingUnavailable, match="no run store at .*make demo"):
        load.load_runs(tracking_uri=f"sqlite:///{tmp_path}/none.db")
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(load.TrackingUnavailable, match="plain directory store"):
        load.load_runs(tracking_uri=str(tmp_path))


def test_unknown_experiment_lists_known(store):
    from transgan_lab.analysis import load

    with pytest.raises(load.AnalysisError, match=f"no MLflow experiment named 'nope'; known: .*{STUDIES_EXP}"):
        load.load_runs(tracking_uri=store, experiment="nope")


# ------------------------------------------------------------------------------- aggregate


def test_mean_std_over_seeds_match_numpy(runs):
    from transgan_lab.analysis.aggregate import aggregate

    agg = aggregate(runs[runs["study"] == "table1"], metrics=["digits_fid", "digits_is"]).set_index("variant")
    assert agg.attrs["pick_label"] == "final EMA value"
    for variant, _, _, seeds in R.TABLE1:
        row = agg.loc[variant]
        for m, idx in (("digits_fid", 1), ("digits_is", 2)):
            mean, std = R.expected_mean_std([s[idx][-1] for s in seeds])
            assert row[f"{m}.mean"] == pytest.approx(mean, abs=1e-12) and row[f"{m}.std"] == pytest.approx(
                std, abs=1e-12
            )
            assert row[f"{m}.n"] == len(seeds)
        assert row["n"] == len(seeds) and row["seeds"] == ",".join(str(s[0]) for s in seeds)  # FAILED seed 3 left out
    best = aggregate(runs[runs["study"] == "table1"], metrics=["digits_fid"], pick="best").set_index("variant")
    assert best.attrs["pick_label"] == "best during training"
    mean, _ = R.expected_mean_std([min(s[1]) for s in R.TABLE1[0][3]])
    assert best.loc[R.TABLE1[0][0], "digits_fid.mean"] == pytest.approx(mean, abs=1e-12)
    single = aggregate(runs[runs["run_name"] == "t1-conv-conv-s0"], metrics=["digits_fid"])
    assert single.loc[0, "digits_fid.n"] == 1 and math.isnan(single.loc[0, "digits_fid.std"])


def test_refuses_to_merge_different_protocols(runs):
    from transgan_lab.analysis.aggregate import ProtocolMismatch, aggregate, protocol_id, select_protocol

    t2 = runs[runs["study"] == "table2"]
    with pytest.raises(ProtocolMismatch) as e:
        aggregate(t2, metrics=["digits_fid", "digits_is"])
    msg = str(e.value)
    p2000 = protocol_id(json.dumps(R.protocol("digits_fid"), sort_keys=True, separators=(",", ":")))
    p500 = protocol_id(json.dumps(R.protocol("digits_fid", n_fake=500), sort_keys=True, separators=(",", ":")))
    assert "refusing to merge or rank the runs of study=table2, dataset=digits, variant=translation + cutout" in msg
    assert (
        f"protocol {p2000} (2 runs: t2-21-s0-n2000, t2-21-s1-n2000)" in msg
        and f"protocol {p500} (1 run: t2-21-s2-n500)" in msg
    )
    assert "n_fake: 2000 vs 500" in msg and "--protocol ID" in msg
    kept = select_protocol(t2, [p2000])
    assert sorted(kept["run_name"]) == ["t2-2-s0-n2000", "t2-2-s1-n2000", "t2-21-s0-n2000", "t2-21-s1-n2000"]
    agg = aggregate(kept, metrics=["digits_fid", "digits_is"]).set_index("variant")
    assert agg.loc["translation + cutout", "digits_fid.mean"] == 20.5 and agg.loc["translation + cutout", "n"] == 2
    assert list(select_protocol(t2, [p500])["run_name"]) == ["t2-21-s2-n500"]
    with pytest.raises(Exception, match="not found among these runs"):
        select_protocol(t2, ["deadbeef"])


def test_refuses_to_average_different_configs(runs):
    from transgan_lab.analysis.aggregate import aggregate
    from transgan_lab.analysis.load import AnalysisError

    mixed = runs[runs["study"] == "table4"].assign(variant="all sizes")
    with pytest.raises(
        AnalysisError,
        match=r"not one configuration \(model.g.depths: \[2, 1, 1\] vs \[2, 2, 1\]; "
        r"model.g.embed_dim: 128 vs 192 vs 256\)",
    ):
        aggregate(mixed, metrics=["digits_fid"])


def test_speed_and_memory_settings_do_not_split_a_configuration(runs):
    """Seeds of one variant run with and without torch.compile, activation checkpointing or CUDA
    graphs (same dynamics: a memory or speed choice per machine) are still one configuration."""
    from transgan_lab.analysis.aggregate import aggregate
    from transgan_lab.analysis.load import AnalysisError

    one = runs[runs["study"] == "table1"]
    plain = aggregate(one, metrics=["digits_fid"]).set_index("variant")
    flags = ["param.train.compile", "param.train.activation_checkpointing", "param.train.cuda_graphs"]
    mixed = one.assign(**{c: [str(i % 2 == 0) for i in range(len(one))] for c in flags})
    agg = aggregate(mixed, metrics=["digits_fid"]).set_index("variant")
    assert agg["digits_fid.mean"].tolist() == plain["digits_fid.mean"].tolist()
    assert (agg["n"] == plain["n"]).all() and (agg["n"] > 1).all()
    with pytest.raises(AnalysisError, match=r"not one configuration \(optim.lr_g: "):  # a dynamics field does
        aggregate(mixed.assign(**{"param.optim.lr_g": [str(i % 2) for i in range(len(one))]}), metrics=["digits_fid"])


def test_published_baselines_keep_verification():
    from transgan_lab.analysis import baselines

    pub = baselines.load_published()
    v1 = pub[(pub["model"] == "TransGAN-XL (v1)") & (pub["dataset"] == "cifar10")].iloc[0]
    assert (v1["is"], v1["fid"], bool(v1["is_verified"]), bool(v1["fid_verified"])) == (8.64, 11.89, True, True)
    auto = pub[(pub["model"] == "AutoGAN") & (pub["dataset"] == "cifar10") & (pub["study"] == "sota")].iloc[0]
    assert (auto["fid"], bool(auto["fid_verified"]), auto["is"], bool(auto["is_verified"])) == (
        12.42,
        True,
        8.55,
        False,
    )
    assert set(pub["study"]) == {"sota", "celeba", "table1", "table2", "table3", "table4"}
    assert pub["source"].notna().all()


def test_published_file_without_flags_is_refused(tmp_path):
    from transgan_lab.analysis import baselines
    from transgan_lab.analysis.load import AnalysisError

    bad = tmp_path / "p.csv"
    text = baselines.default_path().read_text().splitlines()
    bad.write_text("\n".join([text[0], "sota,X,cifar10,32,8.0,,10.0,,maybe,yes,somewhere,,"]) + "\n")
    with pytest.raises(AnalysisError, match=r"is values without is_verified yes/no at line 2 \(X, cifar10\)"):
        baselines.load_published(bad)


# ---------------------------------------------------------------------------------- tables

CASES = {  # golden stem -> (study, kwargs)
    "table1": ("table1", {}),
    "table1-best": ("table1", {"pick": "best"}),
    "table2-protocol": ("table2", {"protocols": ["57eca5bf"]}),
    "table3": ("table3", {}),
    "table4": ("table4", {}),
    "sota": ("sota", {}),
    "celeba": ("celeba", {}),
}


@pytest.fixture(scope="module")
def built(runs, sweep_runs) -> dict:
    """Each case's tables, built once (rendering is what the format tests vary)."""
    from transgan_lab.analysis import tables

    out = {case: tables.build(runs, study=study, **kw) for case, (study, kw) in CASES.items()}
    out["sweep"] = tables.build(sweep_runs, study="sweep", sweep_id=SWEEP_ID, top=4)
    return out


@pytest.mark.parametrize("fmt", list(EXT))
@pytest.mark.parametrize("case", list(CASES) + ["sweep"])
def test_tables_match_golden(built, case, fmt):
    from transgan_lab.analysis import tables

    check_golden(f"{case}.{EXT[fmt]}", tables.render(built[case], fmt))


def test_table_cells_carry_the_numbers(runs, sweep_runs):
    """Independent of the goldens: the rendered CSV parses back to numpy's mean/std, bold on the best."""
    import csv

    from transgan_lab.analysis import tables

    rows = list(csv.DictReader(io.StringIO(tables.render(tables.build(runs, study="table1"), "csv"))))
    by = {r["variant"]: r for r in rows}
    for variant, _, _, seeds in R.TABLE1:
        mean, std = R.expected_mean_std([s[1][-1] for s in seeds])
        assert float(by[variant]["digits_fid_mean"]) == pytest.approx(mean, rel=1e-9)
        assert float(by[variant]["digits_fid_std"]) == pytest.approx(std, rel=1e-9)
    assert [r["variant"] for r in rows if r["digits_fid_best"] == "1"] == ["Transformer G + Transformer D"]
    assert [r["variant"] for r in rows if r["digits_is_best"] == "1"] == ["Conv G + Conv D"]
    sota = list(csv.DictReader(io.StringIO(tables.render(tables.build(runs, study="sota"), "csv"))))
    ours = [r for r in sota if r["section"] == "Our runs"]
    pub = {r["variant"]: r for r in sota if r["section"] != "Our runs"}
    assert (
        len(ours) == 1 and ours[0]["fid_mean"] == "20.75" and ours[0]["fid_best"] == "0"
    )  # one ranked row: nothing to bold
    assert (pub["AutoGAN"]["fid_verified"], pub["AutoGAN"]["is_verified"]) == ("yes", "no")
    assert all(r["fid_best"] == "0" for r in pub.values())  # published rows are never ranked
    sweep = list(
        csv.DictReader(io.StringIO(tables.render(tables.build(sweep_runs, study="sweep", sweep_id=SWEEP_ID), "csv")))
    )
    assert [r["trial"] for r in sweep] == [f"{SWEEP_ID}-t{t}" for t in ("002", "000", "003", "001", "004")]
    assert [r["pareto"] for r in sweep] == ["yes", "", "yes", "", ""]
    assert sweep[0]["param:optim.lr_g"] == "0.0004" and sweep[0]["param:model.g.embed_dim"] == "256"


def test_mixed_protocol_table_is_refused(runs):
    from transgan_lab.analysis import tables
    from transgan_lab.analysis.aggregate import ProtocolMismatch

    with pytest.raises(ProtocolMismatch, match="refusing to merge or rank the table2 runs on digits"):
        tables.build(runs, study="table2")


def test_unverified_values_are_marked_in_every_format(runs):
    from transgan_lab.analysis import tables

    built = tables.build(runs, study="sota")
    assert "8.55†" in tables.render(built, "terminal") and "8.55†" in tables.render(built, "markdown")
    assert r"8.55$^\dagger$" in tables.render(built, "latex")
    assert '8.55<sup class="unverified" title="unverified">†</sup>' in tables.render(built, "html")
    assert "unverified" in tables.render(built, "terminal") and "TransGAN-XL (v1)" in tables.render(built, "markdown")


# --------------------------------------------------------------------------------- parquet


def test_parquet_round_trip_preserves_tables(runs, sweep_runs, built, tmp_path):
    from transgan_lab.analysis import load, tables

    for name, df in (("studies", runs), ("sweep", sweep_runs)):
        path = load.export_parquet(df, tmp_path / f"{name}.parquet")
        back = load.import_parquet(path)
        pd.testing.assert_frame_equal(back, df, check_exact=True)
        cases = {"sweep": ("sweep", {"sweep_id": SWEEP_ID, "top": 4})} if name == "sweep" else CASES
        for case, (study, kw) in cases.items():
            again = tables.build(back, study=study, **kw)
            for fmt in EXT:
                assert tables.render(again, fmt) == tables.render(built[case], fmt), (case, fmt)
    other = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(other)
    with pytest.raises(load.AnalysisError, match="was not written by `transgan-lab table --export`"):
        load.import_parquet(other)


# ------------------------------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> tuple[int, str, str]:
    from transgan_lab.platform.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_cli_table_on_newest_sweep_export_and_parquet(store, tmp_path):
    export = tmp_path / "sweep.parquet"
    rc, out, err = _cli(
        [
            "table",
            "--tracking-uri",
            store,
            "--experiment",
            SWEEP_EXP,
            "--format",
            "csv",
            "--top",
            "4",
            "--export",
            str(export),
        ]
    )
    assert rc == 0, err
    check_golden("sweep.csv", out)  # the newest sweep of the experiment is golden-sweep
    rc, out2, err = _cli(["table", "sweep", "--parquet", str(export), "--format", "csv", "--top", "4"])
    assert rc == 0 and out2 == out, err
    rc, out, err = _cli(["table", "table2", "--tracking-uri", store, "--experiment", STUDIES_EXP])
    assert rc == 2 and out == "" and err.startswith("error: refusing to merge or rank the table2 runs on digits")
    rc, out, err = _cli(
        [
            "table",
            "table2",
            "--tracking-uri",
            store,
            "--experiment",
            STUDIES_EXP,
            "--protocol",
            "57eca5bf",
            "--format",
            "markdown",
        ]
    )
    assert rc == 0, err
    check_golden("table2-protocol.md", out)
    rc, out, err = _cli(["table", "table9", "--tracking-uri", store])
    assert rc == 2 and "unknown study 'table9'" in err


@pytest.mark.slow
def test_cli_report_is_self_contained(store, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    if client.get_experiment_by_name("analysis-report") is None:
        R.log_sweep(client, "analysis-report", "report-sweep")
    out = tmp_path / "r" / "report.html"
    rc, stdout, err = _cli(["report", "--tracking-uri", store, "--experiment", "analysis-report", "--out", str(out)])
    assert rc == 0, err
    html = out.read_text()
    assert stdout.strip() == f"wrote {out}"
    assert "<h1>Sweep report: report-sweep</h1>" in html
    for t in ("t002", "t000", "t003", "t001", "t004"):
        assert f'<td class="text">report-sweep-{t}</td>' in html
    n_img = html.count("<img ")
    assert n_img == html.count('src="data:image/png;base64,') >= 5  # curves x4, importances, Pareto, samples
    assert not re.search(
        r"""(src|href)=["']?(https?:|//)|url\((https?:|//)|<link""", html
    )  # nothing fetched from outside
    assert "fANOVA importances (Optuna)" in html and "optim.lr_g" in html and "Pareto front" in html


# --------------------------------------------------------------------------------- figures


def test_curves_per_group_and_per_run(runs, store):
    from transgan_lab.analysis import figures, load

    t1 = runs[(runs["study"] == "table1") & (runs["status"] == "FINISHED")]
    curves = load.load_curves(run_ids=list(t1["run_id"]), metrics=["digits_fid"], tracking_uri=store)
    assert sorted(curves["kimg"].unique()) == [2.56, 5.12, 7.68] and len(curves) == 3 * len(t1)
    fig = figures.curves_figure(curves, metric="digits_fid", labels={}, groups=dict(zip(t1["run_id"], t1["variant"])))
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {
        "Conv G + Conv D (n=3)",
        "Transformer G + Conv D (n=2)",
        "Transformer G + Transformer D (n=3)",
    }
    want = [sum(s[1][i] for s in R.TABLE1[0][3]) / 3 for i in range(3)]  # mean over seeds at each kimg
    assert list(lines["Transformer G + Transformer D (n=3)"].get_ydata()) == pytest.approx(want)
    assert ax.get_xlabel().startswith("kimg")
    png = figures.png_bytes(
        figures.curves_figure(curves, metric="digits_fid", labels=dict(zip(t1["run_id"], t1["run_name"])))
    )
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(Exception, match="no history of metric 'fid'"):
        figures.curves_figure(curves, metric="fid", labels={})


def test_importances_and_pareto_front(sweep_runs):
    from transgan_lab.analysis import figures, tables

    parent, trials = tables.sweep_frames(sweep_runs, SWEEP_ID)
    searched = tables.searched_params(trials, parent)
    assert searched == ["model.g.embed_dim", "optim.lr_g"]
    fin = trials[trials["status"] == "FINISHED"]
    imp = figures.param_importances(fin, params=searched, objective_column="final.g_params", direction="min")
    assert set(imp) == set(searched) and sum(imp.values()) == pytest.approx(1.0)
    assert imp["model.g.embed_dim"] > imp["optim.lr_g"]  # g_params is a function of embed_dim alone
    assert imp == figures.param_importances(fin, params=searched, objective_column="final.g_params", direction="min")
    assert (
        figures.param_importances(fin.head(1), params=searched, objective_column="final.g_params", direction="min")
        == {}
    )
    pts = pd.DataFrame({"fid": [15.5, 16.0, 18.0, 21.0, 26.0], "params": [4.1, 4.1, 1.0, 1.0, 2.25]})
    assert list(tables.pareto_mask(pts, ["min", "min"])) == [True, False, True, False, False]
    assert list(tables.pareto_mask(pts, ["max", "max"])) == [False, True, False, False, True]
    # a sweep that lists its searched params in a transgan.searched tag wins over the differing params
    tagged = parent.assign(**{"tag.searched": '["optim.lr_g"]'})
    assert tables.searched_params(trials, tagged) == ["optim.lr_g"]
    # the sweep's trial driver logs each trial's sampled values as transgan.sampled (list entries split by index)
    sampled = trials.assign(
        **{"tag.sampled": '{"model.g.depths.0": 2, "model.g.depths.1": 1, "optim.lr_g": 0.0002, "nope": 1}'}
    )
    assert tables.searched_params(sampled, parent) == ["model.g.depths", "optim.lr_g"]


def test_sweep_objectives_from_the_parent_tag(sweep_runs):
    from transgan_lab.analysis import tables

    parent, trials = tables.sweep_frames(sweep_runs, SWEEP_ID)
    assert tables.sweep_objectives(trials, parent) == [
        "digits_fid",
        "g_params",
    ]  # eval.primary + sweep.objectives params
    tagged = parent.assign(**{"tag.objectives": "digits_is,img_per_s"})  # what the sweep driver writes on the parent
    assert tables.sweep_objectives(trials, tagged) == ["digits_is", "img_per_s"]


def test_analysis_never_imports_torch_or_ray():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import transgan_lab.analysis.load, transgan_lab.analysis.aggregate, transgan_lab.analysis.tables\n"
        "import transgan_lab.analysis.figures, transgan_lab.analysis.report, transgan_lab.analysis.cli\n"
        "from mlflow.tracking import MlflowClient\n"
        "import optuna.importance\n"
        "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"
