"""Every option of every `transgan-lab` command says what it does, with its default where it has one,
and `config list` describes each preset on one line."""

from __future__ import annotations

import argparse
import re

import pytest

from transgan_lab.platform import config as C
from transgan_lab.platform.cli import main
from transgan_lab.platform.cli_parser import build_parser, parsers


def _commands() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    return list(parsers(build_parser()))


def test_every_option_of_every_command_has_help():
    missing = []
    commands = _commands()
    assert {words[0] for words, _ in commands if words} >= {"train", "sweep", "sample", "report", "ui", "table"}
    for words, p in commands:
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):  # each sub-command: a line in the list
                missing += [(*words, c.dest) for c in action._choices_actions if not (c.help or "").strip()]
                continue
            if not (action.help or "").strip():
                missing.append((*words, action.option_strings[0] if action.option_strings else action.dest))
    assert missing == [], f"options without help text: {missing}"


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["ui"], "--port PORT           port of the UI (default: 5000)"),
        (["sample"], "number of samples (default: 16)"),
        (["table"], "(default: terminal)"),
        (["train"], "(default: runs)"),
    ],
)
def test_help_shows_the_defaults(argv, shown, capsys):
    assert main([*argv, "--help"]) == 0
    out = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert re.sub(r"\s+", " ", shown) in out
    assert "(default: None)" not in out and "(default: False)" not in out


def test_every_command_prints_its_help(capsys):
    for words, _ in _commands():
        if words[:1] == ("config",) and len(words) == 1:
            continue
        assert main([*words, "--help"]) == 0, words
        assert capsys.readouterr().out.startswith(f"usage: transgan-lab {' '.join(words)}".rstrip()), words


def test_config_list_describes_every_preset(capsys):
    assert main(["config", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = C.preset_names()
    assert [line.split()[0] for line in lines] == names
    assert all(len(line) <= 120 for line in lines), max(lines, key=len)
    digits = next(line for line in lines if line.startswith("digits-tiny "))
    # resolution, parameter counts (the same as `summary`) and the preset file's first sentence
    assert re.search(r"\b16x16 +G +0\.57M +D +0\.10M +The embedded default: scikit-learn's 1,797 handwritten", digits)
    assert re.search(
        r"\b32x32 +G +83\.31M +D +10\.21M +The v2 \(NeurIPS\) CIFAR-10 recipe", lines[names.index("cifar10-v2")]
    )
