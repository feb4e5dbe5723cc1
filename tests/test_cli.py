"""Shared CLI plumbing (``screening.cli``): what every command's user sees on a mistake or --help."""

import argparse
import importlib

import pytest

from screening.cli import run_cli
from screening.errors import UserError

COMMANDS = ["app", "batch", "train", "evaluate", "compare", "subgroups", "model_card", "bench", "augmentation", "cv"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_reads_as_plain_text(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(f"screening.{command}").main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "``" not in out and ":mod:" not in out and ":func:" not in out


@pytest.mark.parametrize("error", [UserError("first line\nsecond line"), OSError(28, "No space left on device")])
def test_a_user_error_is_one_line_exit_2(error, capsys):
    def fails(args):
        raise error

    assert run_cli(argparse.ArgumentParser(prog="tool"), fails, []) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tool: error: ")
