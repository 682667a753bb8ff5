"""`transgan-lab report SWEEP`: ONE self-contained HTML file (tables, figures and grids as base64 PNG).

Nothing in the file points outside it: no external scripts, styles, fonts or images, so it opens
offline and can be mailed. A tiny inline script writes `data-images-loaded="<ok>/<total>"` on
<body> (and the text of the hidden #tgl-render-status) once every image has decoded, for headless checks.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from transgan_lab import metric_registry
from transgan_lab.analysis import figures, load, tables
from transgan_lab.analysis.aggregate import PICK_LABELS, value_column
from transgan_lab.analysis.pareto import pareto_mask

HIGHLIGHT = 3  # the best trials by rank, drawn thicker in the curves

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;
  color:#222;background:#fff}
h1{font-size:1.5em;margin-bottom:4px}
h2{font-size:1.15em;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:.9em} figure{margin:12px 0} figcaption{color:#555;font-size:.85em}
img.fig{max-width:100%;border:1px solid #eee}
.samples{display:flex;flex-wrap:wrap;gap:16px} .samples figure{margin:0}
img.grid{image-rendering:pixelated;border:1px solid #eee}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:8px}
.scroll{overflow-x:auto}
table.tgl-table{border-collapse:collapse;font-size:.85em;margin:8px 0}
table.tgl-table td.text{white-space:nowrap}
table.tgl-table tfoot td{white-space:normal;overflow-wrap:anywhere}
table.tgl-table caption{text-align:left;font-weight:600;padding:4px 0}
table.tgl-table th,table.tgl-table td{padding:3px 8px;border-bottom:1px solid #e5e5e5}
table.tgl-table thead th{border-bottom:2px solid #333;text-align:left}
table.tgl-table td.metric,table.tgl-table td.number{text-align:right;font-variant-numeric:tabular-nums}
table.tgl-table tr.section th{text-align:left;font-style:italic;background:#f6f6f6}
table.tgl-table tfoot td{color:#555;font-size:.85em;border:none}
sup.unverified{color:#b00}
.note{background:#fff8e1;border-left:3px solid #f0b400;padding:6px 10px;font-size:.9em}
"""

_SCRIPT = """
(function(){
  function done(){
    var imgs=Array.prototype.slice.call(document.images);
    var ok=imgs.filter(function(i){return i.complete && i.naturalWidth>0;}).length;
    document.body.setAttribute('data-images-loaded', ok+'/'+imgs.length);
    var s=document.getElementById('tgl-render-status');
    if(s){s.textContent=(ok===imgs.length?'images-ok ':'images-missing ')+ok+'/'+imgs.length;}
  }
  var imgs=Array.prototype.slice.call(document.images);
  Promise.all(imgs.map(function(i){return i.decode?i.decode().catch(function(){}):Promise.resolve();})).then(done);
  window.addEventListener('load', done);
})();
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img class="fig" alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _figure(fig, alt: str, caption: str, *, attrs: str = "") -> str:
    img = _img(figures.png_bytes(fig), alt)
    return f"<figure{attrs}>{img}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _sample_grid(title: str, image) -> str:
    """A trial's logged sample grid as it was saved (each sample >= 48 px, nearest-neighbour), not
    resampled: the browser shows its pixels as they are (`image-rendering: pixelated`)."""
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    src = base64.b64encode(buf.getvalue()).decode()
    img = f'<img class="grid" alt="{html.escape(title)}" width="{image.width}" src="data:image/png;base64,{src}">'
    return f"<figure>{img}<figcaption>{html.escape(title)}</figcaption></figure>"


def build_report_html(
    df: pd.DataFrame,  # tidy runs frame holding the sweep (parent + trials)
    *,
    sweep_id: str,  # the sweep's transgan.sweep_id
    curves: pd.DataFrame | None = None,  # load_curves of the trials (None: no curve figures)
    samples: Sequence[tuple[str, object]] = (),  # (title, PIL image) of the top trials' newest grids
    pick: str = "final",  # per-run value rule
    top: int = 10,  # rows of the top-k table
    source: str = "",  # where the runs came from (shown in the header)
) -> str:
    """The whole report as one HTML string."""
    table = tables.sweep_table(df, sweep_id=sweep_id, pick=pick, top=top)
    parent, trials = tables.sweep_frames(df, sweep_id)
    objectives = tables.sweep_objectives(trials, parent)
    searched = tables.searched_params(trials, parent)
    primary = objectives[0]
    labels = dict(zip(trials["run_id"], trials["run_name"].astype(str)))
    label_of = metric_registry.label
    ranked_names = [r["trial"].text for r in table.sections[0].rows]  # best first
    by_name = {name: rid for rid, name in labels.items()}
    top_ids = [by_name[n] for n in ranked_names if n in by_name][:HIGHLIGHT]  # in rank order, not trial order
    top_names = [labels[rid] for rid in top_ids]
    status_counts = trials["status"].value_counts().sort_index()
    parts = [
        f"<h1>Sweep report: {html.escape(sweep_id)}</h1>",
        f'<p class="meta">{len(trials)} trials ('
        + ", ".join(f"{int(n)} {html.escape(str(s))}" for s, n in status_counts.items())
        + f"); objectives: {html.escape(', '.join(objectives))}; per-run value: {html.escape(PICK_LABELS[pick])}"
        + (f"; source: {html.escape(source)}" if source else "")
        + f"; generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}</p>",
        '<p class="meta" id="tgl-render-status" hidden>images-pending</p>',  # read by headless checks only
        "<h2>Top trials</h2>",
        f'<div class="scroll">{tables.render_html(table)}</div>',
    ]

    if curves is not None and not curves.empty:
        parts.append("<h2>Training curves (step = images shown to D)</h2>")
        parts.append('<div class="grid">')
        for m in [primary] + [m for m in ("digits_is", "is", "loss_d", "loss_g") if m != primary]:
            if (curves["metric"] == m).any():
                fig = figures.curves_figure(
                    curves, metric=m, labels=labels, highlight=top_ids, metric_label=label_of(m)
                )
                parts.append(
                    _figure(
                        fig,
                        f"{m} vs kimg",
                        f"{label_of(m)} of every trial against kimg; drawn thicker: the top {len(top_names)} "
                        f"by {label_of(primary)}, best first: {', '.join(top_names)}.",
                        attrs=f' class="curves" data-highlight="{html.escape(",".join(top_names))}"',
                    )
                )
        parts.append("</div>")

    importances = {}
    need = figures.min_trials_for_importance(len(searched))
    n_scored = 0
    for o in objectives:
        col = value_column(o, pick) if value_column(o, pick) in trials else f"final.{o}"
        finished = trials[trials["status"] == "FINISHED"]
        n_scored = max(n_scored, int(finished[col].notna().sum()) if col in trials else 0)
        if col in trials and finished[col].notna().sum() >= need:
            imp = figures.param_importances(
                finished, params=searched, objective_column=col, direction=metric_registry.mode(o)
            )
            if imp:
                importances[label_of(o)] = imp
    parts.append("<h2>Parameter importances</h2>")
    if importances:
        parts.append(
            _figure(
                figures.importance_figure(importances),
                "parameter importances",
                "fANOVA importances (Optuna) of the searched params, from the finished trials' recorded values.",
            )
        )
        parts.append(
            f'<p class="note caveat">{html.escape(figures.IMPORTANCE_CAVEAT.format(n=n_scored, p=len(searched)))}</p>'
        )
        parts.append(
            "<ul>"
            + "".join(
                f"<li>{html.escape(o)}: " + ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in imp.items()) + "</li>"
                for o, imp in importances.items()
            )
            + "</ul>"
        )
    else:
        parts.append(
            f'<p class="note">Parameter importances need at least {need} finished, scored trials '
            f"({figures.MIN_TRIALS_FOR_IMPORTANCE}, or two per searched parameter: this sweep searched "
            f"{len(searched)}); it has {n_scored}, too few to say which parameter mattered.</p>"
        )

    if len(objectives) > 1:
        cols = [value_column(o, pick) if value_column(o, pick) in trials else f"final.{o}" for o in objectives[:2]]
        fin = trials[(trials["status"] == "FINISHED")]
        pts = fin[["run_name"] + cols].dropna().astype({c: float for c in cols}).reset_index(drop=True)
        if len(pts) >= 2:
            pts = pts.assign(
                pareto=pareto_mask(pts[cols], [metric_registry.mode(o) for o in objectives[:2]]),
                label=pts["run_name"].str.replace(f"{sweep_id}-", "", regex=False),
            )
            parts.append("<h2>Pareto front</h2>")
            parts.append(
                _figure(
                    figures.pareto_figure(
                        pts, x=cols[1], y=cols[0], x_label=label_of(objectives[1]), y_label=label_of(objectives[0])
                    ),
                    "Pareto front",
                    f"Finished trials on {label_of(objectives[0])} and {label_of(objectives[1])}; "
                    "red = not dominated by another trial.",
                )
            )

    parts.append("<h2>Samples</h2>")
    if samples:
        parts.append(
            '<p class="meta">Newest fixed-z EMA sample grid of each top trial, as logged (every sample at '
            "least 48 px, nearest-neighbour), best first.</p>"
        )
        parts.append('<div class="samples">' + "".join(_sample_grid(t, img) for t, img in samples) + "</div>")
    else:
        parts.append('<p class="note">No sample grids were logged for these trials.</p>')
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Sweep report: {html.escape(sweep_id)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )


def write_report(
    *,
    sweep_id: str | None = None,  # sweep id; None = the newest sweep in the store
    tracking_uri: str | None = None,  # MLflow URI (default: $MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db)
    experiment: str | None = None,  # experiment name; None = all
    out: str | Path = "report.html",  # the HTML file to write
    pick: str = "final",  # per-run value rule
    top: int = 10,  # rows of the top-k table and grids shown (at most 6)
) -> Path:
    """Load a sweep from MLflow and write its self-contained HTML report; returns the path."""
    sweep_id = sweep_id or load.newest_sweep_id(tracking_uri=tracking_uri, experiment=experiment)
    df = load.load_runs(tracking_uri=tracking_uri, experiment=experiment, sweep_id=sweep_id)
    _, trials = tables.sweep_frames(df, sweep_id)
    metrics = sorted({c.split(".", 1)[1] for c in trials.columns if c.startswith("final.")})
    wanted = [m for m in metrics if m in metric_registry.EVAL_METRICS or m in ("loss_d", "loss_g")]
    curves = load.load_curves(run_ids=list(trials["run_id"]), metrics=wanted, tracking_uri=tracking_uri)
    table = tables.sweep_table(df, sweep_id=sweep_id, pick=pick, top=top)
    cl = load.open_store(tracking_uri)
    by_name = dict(zip(trials["run_name"].astype(str), trials["run_id"]))
    samples = []
    for r in table.sections[0].rows[:6]:
        got = figures.newest_sample_image(cl, by_name[r["trial"].text])
        if got is not None:
            step, img = got
            samples.append((f"{r['trial'].text} @ {step / 1000:g} kimg", img))
    text = build_report_html(
        df,
        sweep_id=sweep_id,
        curves=curves,
        samples=samples,
        pick=pick,
        top=top,
        source=f"{load.store_uri(tracking_uri)}" + (f" / {experiment}" if experiment else ""),
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves no half file behind
        raise
    return out


__all__ = ["build_report_html", "write_report"]
