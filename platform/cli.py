"""`transgan-lab` command line: config, summary, train, sweep, eval, sample, table, report, ui.

Every command resolves and validates its whole input before it starts anything (a Ray runtime,
a tracking run, an output folder). User errors print one paragraph naming the problem and the
fix and exit with code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from transgan_lab.platform import validate_args as V


class UserError(Exception):
    """Bad input: printed as one paragraph, exit code 2."""


# Exceptions that are the user's to fix, with their subclasses, by class name (the modules that
# define them are imported lazily: the CLI must stay fast).
_USER_ERRORS = (
    "ConfigError",
    "DatasetError",
    "MetricsUnavailable",
    "CheckpointError",
    "UserError",
    "TrackingUnavailable",
    "AnalysisError",
    "InputError",
)


def is_user_error(e: BaseException) -> bool:
    return any(cls.__name__ in _USER_ERRORS for cls in type(e).__mro__)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)" after every option that has a default worth stating: not for flags
    (off unless given), options without one (None: the help says what happens) or a help text that
    already names its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def parsers(ap: argparse.ArgumentParser):
    """``ap`` and every sub-command parser under it, depth first: (command words, parser)."""
    stack = [((), ap)]
    while stack:
        words, p = stack.pop(0)
        yield words, p
        for action in p._actions:  # argparse has no public walk of its sub-parsers
            if isinstance(action, argparse._SubParsersAction):
                stack += [((*words, name), sub) for name, sub in action.choices.items()]


def _preset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "preset",
        type=V.arg_text("PRESET"),
        metavar="PRESET",
        help="preset name (see `transgan-lab config list`) or a YAML path",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr_g=2e-4 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="transgan-lab", description=__doc__.splitlines()[0])
    ap.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # config
    p = sub.add_parser("config", help="show or list experiment configs")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    cs = csub.add_parser("show", help="print the resolved config and its hashes")
    _preset_args(cs)
    cs.add_argument("--json", action="store_true", help="JSON instead of YAML")
    cs.add_argument("--flat", action="store_true", help="dotted keys, as logged to MLflow")
    csub.add_parser("list", help="list the presets: description, resolution, G and D parameters")

    # summary
    p = sub.add_parser("summary", help="parameters and forward FLOPs per image of G and D")
    _preset_args(p)
    p.add_argument("--json", action="store_true", help="print the four counts as JSON")

    # train
    p = sub.add_parser("train", help="train one run in this process (no Ray needed)")
    _preset_args(p)
    p.add_argument("--kimg", type=float, help="training length in thousands of real images shown to D")
    p.add_argument(
        "--out",
        type=V.arg_out_dir("--out"),
        default="runs",
        help="output root: run folders, and the MLflow store when tracking.uri is unset",
    )
    p.add_argument(
        "--resume",
        type=V.arg_text("--resume"),
        metavar="DIR",
        help="resume from a run directory or checkpoint directory",
    )
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume even though the training-dynamics config changed (recorded)",
    )
    p.add_argument("--ray", action="store_true", help="run on Ray Train with resources.workers workers")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and resources, then exit")

    # sweep
    p = sub.add_parser("sweep", help="Ray Tune + Optuna sweep, every trial a Ray Train run, tracked in MLflow")
    _preset_args(p)
    p.add_argument(
        "--space",
        type=V.arg_name("--space"),
        help="search space name in platform/sweep/spaces.py (default: sweep.space)",
    )
    p.add_argument(
        "--samples",
        type=V.arg_number("sweep.num_samples", "--samples"),
        help="number of trials (default: sweep.num_samples)",
    )
    p.add_argument("--name", type=V.arg_name("--name"), help="sweep name; rerunning the same name resumes it")
    p.add_argument(
        "--out",
        type=V.arg_out_dir("--out"),
        default="runs",
        help="output root (Ray storage and the default MLflow store)",
    )
    p.add_argument(
        "--address",
        type=V.arg_text("--address"),
        help="Ray address (default: start a local runtime, or 'auto' on a cluster)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and resources, then exit")

    # study
    p = sub.add_parser(
        "study", help="run a paper study (every variant x seed a Ray Train run in MLflow), then tabulate it"
    )
    p.add_argument("study", type=V.arg_name("STUDY"), metavar="STUDY", help="table1 | table2 | table3 | table4")
    p.add_argument(
        "--dataset",
        type=V.arg_name("--dataset"),
        default="digits",
        help="which variants: digits (sized for a 2-core CPU), cifar10 (the paper's scale), smoke (seconds)",
    )
    p.add_argument(
        "--seeds", type=V.arg_number("study.seeds", "--seeds"), default=3, help="runs per variant, seeds 0..N-1"
    )
    p.add_argument(
        "--kimg", type=V.arg_number("train.kimg", "--kimg", whole=False), help="training length of every run"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value of every run, e.g. --set eval.n_fake=2000 (repeatable)",
    )
    p.add_argument("--only", action="append", default=[], metavar="LABEL", help="run only this variant (repeatable)")
    p.add_argument(
        "--max-concurrent", type=V.arg_number("sweep.max_concurrent", "--max-concurrent"), help="runs at once"
    )
    p.add_argument(
        "--out",
        type=V.arg_out_dir("--out"),
        default="runs",
        help="output root (Ray storage and the default MLflow store)",
    )
    p.add_argument("--tracking-uri", type=V.arg_text("--tracking-uri"), help="MLflow tracking URI")
    p.add_argument(
        "--address",
        type=V.arg_text("--address"),
        help="Ray address (default: start a local runtime, or 'auto' on a cluster)",
    )
    p.add_argument(
        "--publish",
        type=V.arg_out_dir("--publish"),
        help="afterwards write the table, figures, grids and a Parquet export under DIR/<study>/",
    )
    p.add_argument("--dry-run", action="store_true", help="validate and list the runs, start nothing")

    # eval
    p = sub.add_parser("eval", help="evaluate a checkpoint's EMA generator")
    p.add_argument(
        "checkpoint", type=V.arg_text("CHECKPOINT"), metavar="CHECKPOINT", help="checkpoint directory or run directory"
    )
    p.add_argument(
        "--metrics",
        type=V.arg_text("--metrics"),
        help="comma list of fid,is,kid,digits_fid,digits_is (default: the run's eval.metrics)",
    )
    p.add_argument(
        "--n", type=V.arg_number("eval.n_fake", "--n"), help="number of generated images (default: eval.n_fake)"
    )
    p.add_argument("--batch", type=V.arg_number("eval.batch", "--batch"), help="generation batch size")
    p.add_argument(
        "--inception-weights", type=V.arg_text("--inception-weights"), help="path to the TF-Inception weights file"
    )
    p.add_argument("--json", action="store_true", help="print values and protocols as JSON")
    p.add_argument(
        "--protocol",
        choices=["ours", "official"],
        default="ours",
        help="'official': also compute fid/is under the official TransGAN evaluation, side by side",
    )
    p.add_argument(
        "--official-stats",
        type=V.arg_text("--official-stats"),
        metavar="NPZ",
        help="the official fid_stat/*.npz file (--protocol official)",
    )

    # import-official
    p = sub.add_parser("import-official", help="convert an official TransGAN checkpoint into one of our run folders")
    p.add_argument(
        "checkpoint",
        type=V.arg_text("CKPT"),
        metavar="CKPT",
        help="the official checkpoint file (train_derived.py's dict)",
    )
    p.add_argument(
        "--preset",
        type=V.arg_text("--preset"),
        required=True,
        help="our preset that is the file's official counterpart (README table)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value after the counterpart's own overrides (repeatable)",
    )
    p.add_argument(
        "--out",
        type=V.arg_out_dir("--out"),
        required=True,
        help="run folder to create (eval, sample and train --resume take it)",
    )
    p.add_argument(
        "--official-d",
        type=V.arg_text("--official-d"),
        help="official --dis_model of the file when it does not record it",
    )
    p.add_argument("--fresh-optimizers", action="store_true", help="do not import the official Adam states")
    p.add_argument(
        "--generator-only",
        action="store_true",
        help="accept a bare generator state dict (G = G_ema = file; D and optimizers start fresh)",
    )

    # sample
    p = sub.add_parser("sample", help="write PNG samples from a checkpoint's EMA generator")
    p.add_argument(
        "checkpoint", type=V.arg_text("CHECKPOINT"), metavar="CHECKPOINT", help="checkpoint directory or run directory"
    )
    p.add_argument("--n", type=V.arg_number("sample.n", "--n"), default=16, help="number of samples")
    p.add_argument(
        "--seed", type=V.arg_number("seed", "--seed"), default=0, help="latent seed (sample i: this seed and index i)"
    )
    p.add_argument("--out", type=V.arg_out_dir("--out"), default="samples", help="folder for the PNG files")
    p.add_argument(
        "--grid",
        action="store_true",
        help="also write one grid image (nearest-neighbour enlarged, as the training grids)",
    )
    p.add_argument(
        "--interpolate",
        type=V.arg_number("sample.interpolate", "--interpolate"),
        default=0,
        metavar="K",
        help="K-step latent interpolations",
    )

    # table
    p = sub.add_parser("table", help="paper-style tables from recorded runs")
    p.add_argument(
        "study",
        type=V.arg_text("STUDY"),
        nargs="?",
        default="sweep",
        help="table1|table2|table3|table4|sota|celeba|sweep (default: sweep)",
    )
    p.add_argument("--sweep", type=V.arg_text("--sweep"), help="sweep id (for `sweep`; default: the newest sweep)")
    p.add_argument(
        "--tracking-uri",
        type=V.arg_text("--tracking-uri"),
        help="MLflow tracking URI (default: sqlite:///runs/mlflow.db)",
    )
    p.add_argument("--experiment", type=V.arg_text("--experiment"), default=None, help="MLflow experiment name")
    p.add_argument(
        "--parquet", type=V.arg_text("--parquet"), help="read runs from this Parquet export instead of MLflow"
    )
    p.add_argument("--export", type=V.arg_out_file("--export"), help="write the loaded runs to this Parquet file")
    p.add_argument(
        "--format",
        default="terminal",
        choices=["terminal", "markdown", "latex", "html", "csv"],
        help="output format (terminal: fits 120 columns; latex: booktabs)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="print each metric's full protocol JSON under the table (a sweep table: every column too)",
    )
    p.add_argument("--pick", default="final", choices=["final", "best"], help="per-run value rule")
    p.add_argument("--top", type=V.arg_number("table.top", "--top"), default=10, help="rows of a sweep table")
    p.add_argument(
        "--protocol",
        action="append",
        default=[],
        metavar="ID",
        help="keep only runs scored under this evaluation protocol id "
        "(ids are listed when runs mix protocols; repeatable)",
    )

    # report
    p = sub.add_parser("report", help="self-contained HTML report of a sweep")
    p.add_argument("sweep", type=V.arg_text("SWEEP"), nargs="?", help="sweep id (default: the newest sweep)")
    p.add_argument(
        "--tracking-uri",
        type=V.arg_text("--tracking-uri"),
        help="MLflow tracking URI (default: sqlite:///runs/mlflow.db)",
    )
    p.add_argument("--experiment", type=V.arg_text("--experiment"), default=None, help="MLflow experiment name")
    p.add_argument("--out", type=V.arg_out_file("--out"), default="report.html", help="the HTML file to write")

    # ui
    p = sub.add_parser("ui", help="MLflow UI on 127.0.0.1 for the run store")
    p.add_argument(
        "--tracking-uri", type=V.arg_text("--tracking-uri"), help="store to show (default: sqlite:///runs/mlflow.db)"
    )
    p.add_argument("--port", type=V.arg_port("--port"), default=5000, help="port of the UI")
    p.add_argument(
        "--host",
        type=V.arg_text("--host"),
        default="127.0.0.1",
        help="bind address (default 127.0.0.1: this machine only)",
    )
    for _, parser in parsers(ap):
        parser.formatter_class = HelpFormatter
    return ap


# Where each command is implemented: module, function. Modules are imported on use only.
COMMANDS = {
    "config": ("transgan_lab.platform.cli", "cmd_config"),
    "summary": ("transgan_lab.platform.commands", "cmd_summary"),
    "train": ("transgan_lab.platform.commands", "cmd_train"),
    "sweep": ("transgan_lab.platform.sweep.cli", "cmd_sweep"),
    "study": ("transgan_lab.platform.study", "cmd_study"),
    "eval": ("transgan_lab.platform.commands", "cmd_eval"),
    "sample": ("transgan_lab.platform.commands", "cmd_sample"),
    "import-official": ("transgan_lab.platform.official", "cmd_import_official"),
    "table": ("transgan_lab.analysis.cli", "cmd_table"),
    "report": ("transgan_lab.analysis.cli", "cmd_report"),
    "ui": ("transgan_lab.platform.tracking.ui", "cmd_ui"),
}


LIST_WIDTH = 120  # `config list`: one line per preset, cut to this many columns


def cmd_config(args: argparse.Namespace) -> int:
    import json

    import yaml

    from transgan_lab.platform import config as C

    if args.config_command == "list":
        from transgan_lab.trainers.flops import param_counts

        rows = []
        for name in C.preset_names():
            cfg = C.load_config(name, [])
            n = param_counts(cfg)
            res = f"{cfg.data.resolution}x{cfg.data.resolution}"
            rows.append((name, res, f"G {n['g_params'] / 1e6:6.2f}M  D {n['d_params'] / 1e6:5.2f}M"))
        widths = [max(len(r[i]) for r in rows) for i in range(2)]
        for row, name in zip(rows, C.preset_names()):
            head = f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]}"
            room = LIST_WIDTH - len(head) - 2
            text = C.preset_description(name)
            print(f"{head}  {text if len(text) <= room else text[: room - 1].rstrip() + '…'}")
        return 0
    cfg = C.load_config(args.preset, args.overrides)
    data = cfg.model_dump(mode="json")
    if args.flat:
        data = C.flatten(data)
    if args.json:
        print(
            json.dumps(
                {"config": data, "config_hash": C.config_hash(cfg), "dynamics_hash": C.dynamics_hash(cfg)}, indent=2
            )
        )
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")
        print(f"# config_hash: {C.config_hash(cfg)}  dynamics_hash: {C.dynamics_hash(cfg)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed usage + error; its code for bad args is 2
        return int(e.code or 0)
    module, func = COMMANDS[args.command]
    from transgan_lab.platform import procs

    try:
        with procs.signals_raise():  # SIGTERM/SIGHUP unwind like Ctrl-C: every started process is ended
            return int(getattr(importlib.import_module(module), func)(args) or 0)
    except procs.Terminated as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if is_user_error(e):
            if args.debug or os.environ.get("TRANSGAN_LAB_DEBUG"):
                traceback.print_exc()
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
