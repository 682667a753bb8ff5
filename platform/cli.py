"""`transgan-lab` command line: config, summary, train, sweep, study, eval, import-official, sample, table,
report, ui (the parser is in ``cli_parser``).

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

from transgan_lab.platform.cli_parser import build_parser


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
