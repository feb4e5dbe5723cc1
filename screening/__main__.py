"""``python -m screening`` and the desktop executable: the app by default, ``batch`` for batch mode.

    SkinScreen                        start the app and open the browser
    SkinScreen --no-browser --port P  serve headless
    SkinScreen batch FOLDER --out report.xlsx [batch.py options]
    SkinScreen audit LOG [--anchor HASH]  check an --audit-log's chain of entries
    SkinScreen evaluate --images FOLDER --labels CSV --out FOLDER
                                      the model on a clinic's own labelled images
    SkinScreen subgroups FOLDER [--metadata CSV]
                                      that evaluation's figures by sex, age, body site...
    (each with --help for its options)

A double-clicked executable has no command line, so its options (``--prevalence 0.05``,
``--audit-log FILE``, ``--auth-file FILE``...) can be saved, one or more per line, in
``SkinScreen-options.txt`` beside it; they apply when it starts without arguments.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from pathlib import Path

from screening.cli import described
from screening.errors import UserError

OPTIONS_FILE = "SkinScreen-options.txt"
# The commands besides the app, each a module's main: evaluate and subgroups give a clinic its
# own operating point, and its figures by group, without a Python installation.
COMMANDS = ("batch", "audit", "evaluate", "subgroups")


def saved_options(folder: Path) -> list[str]:
    """The options in ``folder/SkinScreen-options.txt`` (``#`` starts a comment; quotes around
    paths with spaces), or none where there is no such file. A backslash is a backslash, as in
    a Windows path (``C:\\logs\\audit.jsonl``), not a shell's escape."""
    path = folder / OPTIONS_FILE
    if not path.is_file():
        return []
    try:
        words = shlex.shlex(path.read_text(encoding="utf-8-sig"), posix=True)
        words.whitespace_split, words.escape = True, ""
        return list(words)
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot be read as options ({err})") from None


def keep_window_open() -> None:
    """A double-clicked program's console window closes as the program ends (Windows): its
    error message would flash by unread."""
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            input("Press Enter to close this window.")
        except (EOFError, KeyboardInterrupt):
            pass


def main(argv: list[str] | None = None) -> int:
    double_clicked = argv is None and len(sys.argv) == 1 and getattr(sys, "frozen", False)
    code: int | str | None = 1  # an unforeseen error's traceback also stays to be read
    try:
        code = _run(sys.argv[1:] if argv is None else argv, double_clicked)
    except SystemExit as stop:  # argparse refusing (or answering --version) a saved option
        code = stop.code
        raise
    finally:
        if double_clicked and code not in (0, None, 130):  # 130: Ctrl+C, typed in that window
            keep_window_open()
    return code


def _run(argv: list[str], double_clicked: bool) -> int:
    if double_clicked:
        try:
            argv = saved_options(Path(sys.executable).parent)
        except UserError as err:
            print(f"SkinScreen: {err}", file=sys.stderr)
            return 2
        if argv:
            print(f"SkinScreen: options from {OPTIONS_FILE}: {shlex.join(argv)}", file=sys.stderr)
    if argv and argv[0] in COMMANDS:
        return importlib.import_module(f"screening.{argv[0]}").main(argv[1:])
    if argv[:1] in (["-h"], ["--help"]):  # the app's options follow; first, the other commands
        print(described(__doc__).split("\n\n")[1] + "\n")
    if double_clicked:  # the window would stay blank while the model loads
        print("SkinScreen is starting; its page opens in the browser when it is ready.", file=sys.stderr, flush=True)
    from screening.app import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
