"""Shared command-line plumbing: user mistakes become one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable

from screening.errors import UserError

# Exceptions that mean "the user asked for something that cannot be done" or "the computer
# could not do it" (a full disk, a network drive gone: every OSError), not a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,  # DataError, ImageError, BundleError
    OSError,  # FileNotFoundError, PermissionError, ... and ENOSPC
)
# SIGTERM (kill, a service manager), SIGHUP (the terminal window closed), SIGBREAK (Windows'
# Ctrl+Break): each ends a command as Ctrl+C does, so that what it clears on the way out (the
# app's uploads, a zip's unpacked images, a half-written report's temporary file) is cleared.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGBREAK") if hasattr(signal, name))


def run_cli(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
) -> int:
    """Parse ``argv`` and call ``run``; report user errors as ``prog: error: message``."""
    args = parser.parse_args(argv)
    stop_like_ctrl_c()
    try:
        return run(args)
    except USER_ERRORS as err:  # one line, even where a library's message has several
        print(f"{parser.prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def stop_like_ctrl_c() -> None:
    """Make each of ``STOP_SIGNALS`` stop the command as Ctrl+C does; one that is ignored stays
    ignored (``nohup python app.py`` must outlive its terminal). Signals reach the main thread
    alone, so a command run from another thread keeps the handlers it found."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        for stop in STOP_SIGNALS:
            if signal.getsignal(stop) is signal.SIG_DFL:
                signal.signal(stop, interrupt)


def described(doc: str | None) -> str:
    """A module docstring as ``--help`` shows it: without reStructuredText's double backquotes,
    which are for the API documentation, not for someone reading a terminal."""
    return (doc or "").replace("``", "")


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


def add_malignancy_options(p: argparse.ArgumentParser, prevalence: bool = True) -> None:
    """``--threshold`` and (with ``prevalence``) ``--prevalence``, the same for the batch tool,
    the app and evaluation (check them with :func:`check_malignancy_options`)."""
    p.add_argument("--threshold", type=float,
                   help="referral threshold on malignancy probability (default: the model's, chosen for 90%% "
                        "sensitivity; MODEL_CARD.md lists others, at the validation images' malignant share, and "
                        "'evaluate' on your own images labelled malignant or benign lists theirs)")
    if prevalence:
        p.add_argument("--prevalence", type=float, metavar="SHARE",
                       help="the share of malignant lesions among the lesions you assess, such as 0.05: the "
                            "malignancy probability is converted to it (default: as among the validation images, "
                            "about 0.19); no referral decision changes")


def add_scoring_options(p: argparse.ArgumentParser) -> None:
    """How a folder of images is scored, the same for the batch tool and evaluation."""
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="flip test-time augmentation (default: the model's setting)")
    p.add_argument("--batch-size", type=positive_int, default=32,
                   help="images the model scores at once (default: 32; less uses less memory)")
    p.add_argument("--workers", type=positive_int, default=max(2, os.cpu_count() or 2),
                   help="image decoding threads (default: one per CPU core, at least 2)")


def check_malignancy_options(args: argparse.Namespace) -> None:
    """Before any work: both are probabilities (argparse's own error would print two lines)."""
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold must be between 0 and 1, got {args.threshold}")
    if getattr(args, "prevalence", None) is not None and not 0.0 < args.prevalence < 1.0:
        raise UserError(f"--prevalence must be a share between 0 and 1, such as 0.05, got {args.prevalence}")


def add_version_option(p: argparse.ArgumentParser) -> None:
    """``--version``: the software, its Keras and JAX, and the packaged model (for a support
    question, or to check which model produced a report)."""

    class Version(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(version_text())
            parser.exit()

    p.add_argument("--version", action=Version, nargs=0, help="show the software and model versions and exit")


def version_text() -> str:
    import jax
    import keras

    from screening import __version__
    from screening.inference import DEFAULT_MODEL

    try:
        meta = json.loads((DEFAULT_MODEL / "bundle.json").read_text())
        model = f"{meta.get('name')} {meta.get('version')}, sha256 {str(meta.get('sha256'))[:16]}..."
    except (OSError, ValueError):
        model = "none installed"
    return f"SkinScreen {__version__} (Keras {keras.__version__}, JAX {jax.__version__}); packaged model: {model}"
