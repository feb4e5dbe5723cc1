"""Shared command-line plumbing: user mistakes become one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from screening.errors import UserError

# Exceptions that mean "the user asked for something that cannot be done", not a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,  # DataError, ImageError, BundleError
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)


def run_cli(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
) -> int:
    """Parse ``argv`` and call ``run``; report user errors as ``prog: error: message``."""
    args = parser.parse_args(argv)
    try:
        return run(args)
    except USER_ERRORS as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonneg_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def add_threshold_option(p: argparse.ArgumentParser) -> None:
    """``--threshold``, the same for the batch tool and the app (check it with :func:`check_threshold`)."""
    p.add_argument("--threshold", type=float,
                   help="referral threshold on malignancy probability (default: the model's, chosen for 90%% "
                        "sensitivity; MODEL_CARD.md lists others)")


def check_threshold(value: float | None) -> None:
    """Before any work: a threshold is a probability (argparse's own error would print two lines)."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise UserError(f"--threshold must be between 0 and 1, got {value}")
