"""The `transgan-lab` argument parser: every command, its options and their help texts.

Arguments are validated as they are parsed (``validate_args``), so a bad value is refused before
any command starts anything.
"""

from __future__ import annotations

import argparse

from transgan_lab.platform import validate_args as V

DESCRIPTION = "Train, sweep and compare transformer GANs (`transgan-lab COMMAND --help` for each command)."


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


# Options that several commands share, defined once.
def _overrides(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def _preset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "preset",
        type=V.arg_text("PRESET"),
        metavar="PRESET",
        help="preset name (see `transgan-lab config list`) or a YAML path",
    )
    _overrides(p, "override a config value, e.g. --set optim.lr_g=2e-4 (repeatable)")


def _out_root(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--out", type=V.arg_out_dir("--out"), default="runs", help=help_text)


def _ray_address(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        type=V.arg_text("--address"),
        help="Ray address (default: start a local runtime, or 'auto' on a cluster)",
    )


def _checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint", type=V.arg_text("CHECKPOINT"), metavar="CHECKPOINT", help="checkpoint directory or run directory"
    )


def _tracking_store(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tracking-uri",
        type=V.arg_text("--tracking-uri"),
        help="MLflow tracking URI (default: sqlite:///runs/mlflow.db)",
    )
    p.add_argument("--experiment", type=V.arg_text("--experiment"), default=None, help="MLflow experiment name")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="transgan-lab", description=DESCRIPTION)
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
    _out_root(p, "output root: run folders, and the MLflow store when tracking.uri is unset")
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
    _out_root(p, "output root (Ray storage and the default MLflow store)")
    _ray_address(p)
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
    _overrides(p, "override a config value of every run, e.g. --set eval.n_fake=2000 (repeatable)")
    p.add_argument("--only", action="append", default=[], metavar="LABEL", help="run only this variant (repeatable)")
    p.add_argument(
        "--max-concurrent", type=V.arg_number("sweep.max_concurrent", "--max-concurrent"), help="runs at once"
    )
    _out_root(p, "output root (Ray storage and the default MLflow store)")
    p.add_argument("--tracking-uri", type=V.arg_text("--tracking-uri"), help="MLflow tracking URI")
    _ray_address(p)
    p.add_argument(
        "--publish",
        type=V.arg_out_dir("--publish"),
        help="afterwards write the table, figures, grids and a Parquet export under DIR/<study>/",
    )
    p.add_argument("--dry-run", action="store_true", help="validate and list the runs, start nothing")

    # eval
    p = sub.add_parser("eval", help="evaluate a checkpoint's EMA generator")
    _checkpoint(p)
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
    _overrides(p, "override a config value after the counterpart's own overrides (repeatable)")
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
    _checkpoint(p)
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
    _tracking_store(p)
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
    _tracking_store(p)
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
