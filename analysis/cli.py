"""`transgan-lab table` and `transgan-lab report` (argparse definitions live in platform/cli.py).

User errors raise ``AnalysisError`` (or ``TrackingUnavailable``); the command line prints them as
one paragraph with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from transgan_lab.analysis.load import AnalysisError


def _newest_sweep_in(df) -> str:
    parents = df[df["kind"] == "sweep"].sort_values("start_time")
    if parents.empty:
        raise AnalysisError("the Parquet export holds no sweep parent run; pass --sweep ID or export a sweep")
    return str(parents["sweep_id"].iloc[-1])


def cmd_table(args: argparse.Namespace) -> int:
    """Print one study's tables (or a sweep's top-k) in the chosen format; optionally export the runs."""
    from transgan_lab.analysis import load, tables

    study = args.study
    if study not in tables.STUDIES:
        raise AnalysisError(f"unknown study {study!r}; choose one of {', '.join(tables.STUDIES)}")
    sweep_id = getattr(args, "sweep", None)
    if args.parquet:
        df = load.import_parquet(args.parquet)
        if study == "sweep" and not sweep_id:
            sweep_id = _newest_sweep_in(df)
    elif study == "sweep":
        sweep_id = sweep_id or load.newest_sweep_id(tracking_uri=args.tracking_uri, experiment=args.experiment)
        df = load.load_runs(tracking_uri=args.tracking_uri, experiment=args.experiment, sweep_id=sweep_id)
    else:
        studies = ["sota", "celeba"] if study in ("sota", "celeba") else [study]
        df = load.load_runs(tracking_uri=args.tracking_uri, experiment=args.experiment, tags={"study": studies})
    if args.export:
        path = load.export_parquet(df, args.export)
        print(f"wrote {len(df)} runs to {path}", file=sys.stderr)
    built = tables.build(
        df,
        study=study,
        sweep_id=sweep_id,
        pick=args.pick,
        top=args.top,
        protocols=getattr(args, "protocol", None) or (),
        verbose=getattr(args, "verbose", False),
    )
    sys.stdout.write(tables.render(built, args.format))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the self-contained HTML report of a sweep (default: the newest)."""
    from transgan_lab.analysis import report

    path = report.write_report(
        sweep_id=args.sweep, tracking_uri=args.tracking_uri, experiment=args.experiment, out=args.out
    )
    print(f"wrote {path}")
    return 0
