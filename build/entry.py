"""PyInstaller entry point for the SkinScreen executable (see screening/__main__.py)."""

import multiprocessing
import sys

from screening.__main__ import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
