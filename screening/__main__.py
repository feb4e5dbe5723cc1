"""``python -m screening`` and the desktop executable: the app by default, ``batch`` for batch mode.

    SkinScreen                        start the app and open the browser
    SkinScreen --no-browser --port P  serve headless
    SkinScreen batch FOLDER --out report.xlsx [batch.py options]
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "batch":
        from screening.batch import main as batch_main

        return batch_main(argv[1:])
    from screening.app import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
