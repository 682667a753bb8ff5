"""The renderers and labels a person reads: terminal tables fit 120 columns, searched params and
metrics carry the registry's labels, protocols are one-line footnotes, LaTeX is booktabs."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from transgan_lab import metric_registry
from transgan_lab.analysis.tables.model import Cell, Column, Section, Table, protocol_short
from transgan_lab.analysis.tables.render import render_latex, render_terminal


def _wide_table(n_params: int) -> Table:
    keys = list(metric_registry.PARAMS)[:n_params]
    cols = [Column("rank", "Rank"), Column("trial", "Trial")]
    cols += [Column(f"param:{k}", metric_registry.param_label(k)) for k in keys]
    cols.append(Column("digits_fid", metric_registry.header("digits_fid"), "metric", direction="min"))
    rows = []
    for i in range(3):
        row = {"rank": Cell(text=str(i + 1)), "trial": Cell(text=f"demo-t00{i}")}
        row.update({f"param:{k}": Cell(text=f"{k[-6:]}-{i}") for k in keys})
        row["digits_fid"] = Cell(value=80.0 + i, n=1, n_row=1)
        rows.append(row)
    # least important first: the registry's order reversed (the last params go first)
    return Table(
        "sweep-demo",
        "Sweep demo",
        cols,
        [Section("Trials", rows)],
        ["a note " * 40],
        [f"param:{k}" for k in reversed(keys)],
    )


def test_terminal_table_fits_120_columns_and_names_what_it_left_out():
    t = _wide_table(12)
    out = render_terminal(t)
    assert max(len(line) for line in out.splitlines()) <= 120
    note = " ".join(line.strip() for line in out.split("not shown")[1].splitlines())
    shown = out.splitlines()[4]  # the header row
    left_out = [c.label for c in t.columns if c.key.startswith("param:") and c.label not in shown]
    assert left_out and note.startswith(
        ", to fit 120 columns (least important first): " + ", ".join(reversed(left_out))
    )
    assert "digits-FID ↓" in shown and "G width" in shown  # the metric and the most important param stay
    # narrow enough already: nothing is left out and no note says so
    small = render_terminal(_wide_table(2))
    assert "not shown" not in small and "G width" in small and "G depths" in small


def test_labels_come_from_the_registry():
    assert [metric_registry.param_label(k) for k in ("model.g.embed_dim", "model.d.patch_size", "augment.policy")] == [
        "G width",
        "D patch",
        "Aug.",
    ]
    assert metric_registry.param_label("model.mtct.weight") == "MT-CT λ"
    assert metric_registry.param_label("optim.ema_kimg") == "EMA (kimg)"  # the unit in the header
    assert metric_registry.param_label("train.some_new_field") == "train.some_new_field"
    assert [metric_registry.header(m) for m in ("fid", "is", "digits_fid", "g_params")] == [
        "FID ↓",
        "IS ↑",
        "digits-FID ↓",
        "G params",
    ]


def test_protocol_footnote_is_one_short_line():
    record = {
        "metric": "digits_fid",
        "extractor": "digits-cnn-v1",
        "classifier_sha256": "f77286ed0123456789",
        "n_fake": 1000,
        "n_real": 1797,
        "versions": {"torch": "2.14.1"},
        "data": {"dataset": "digits", "resolution": 16},
    }
    line = protocol_short("digits_fid", json.dumps(record))
    assert line.startswith("digits-FID: 1,000 fake vs 1,797 real, digits-cnn-v1 f77286ed (protocol ") and len(line) < 90
    assert protocol_short("fid", None) == "FID: protocol not recorded"


def test_latex_is_booktabs_and_compiles_where_a_latex_engine_is_installed(tmp_path):
    tex = render_latex(_wide_table(4))
    body = tex.splitlines()
    assert body.index(r"\toprule") < body.index(r"\midrule") < body.index(r"\bottomrule")
    assert r"\hline" not in tex and "|" not in tex.split(r"\begin{tabular}")[1].split("}")[0]
    assert r"digits-FID $\downarrow$" in tex and "↓" not in tex  # plain LaTeX, no unicode packages needed
    engine = shutil.which("pdflatex")
    if engine is None:
        pytest.skip(
            "no pdflatex here (Debian: apt-get install texlive-latex-base texlive-latex-recommended); structure checked"
        )
    doc = tmp_path / "t.tex"
    doc.write_text(
        "\\documentclass{article}\\usepackage[utf8]{inputenc}\\usepackage{booktabs}"
        f"\\begin{{document}}{tex}\\end{{document}}\n"
    )
    r = subprocess.run(
        [engine, "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and (tmp_path / "t.pdf").exists(), r.stdout[-3000:]
