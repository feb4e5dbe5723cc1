"""Build the one-folder desktop bundle: ``python build/build.py`` -> dist/SkinScreen/SkinScreen.

Runs PyInstaller on build/skinscreen.spec (work files in build/work, output in dist/),
then prints the bundle's size and the build time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# Symbol tables nothing in the program reads: jaxlib's Linux wheel ships its library with one
# (334 MiB, 241 stripped), as does Debian's libpython (17 MiB of 23). Named, not every library:
# `strip` breaks those auditwheel patched (numpy's OpenBLAS: "ELF load command address/offset
# not page-aligned").
STRIPPED = ("jaxlib/libjax_common.so", "libpython3.11.so.1.0")


def strip_symbols(out: Path) -> int:
    """Strip :data:`STRIPPED` in the bundle where GNU strip is at hand; bytes saved."""
    if shutil.which("strip") is None:
        return 0
    saved = 0
    for name in STRIPPED:
        lib = out / "_internal" / name
        if lib.is_file() and not lib.is_symlink():
            before = lib.stat().st_size
            if subprocess.run(["strip", "--strip-unneeded", str(lib)], check=False).returncode == 0:
                saved += before - lib.stat().st_size
    return saved


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    if shutil.which("pyinstaller") is None and subprocess.run(
            [sys.executable, "-m", "PyInstaller", "--version"], capture_output=True, check=False).returncode != 0:
        print('build.py: error: PyInstaller is not installed; run: pip install ".[build]"', file=sys.stderr)
        return 2
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
           "--distpath", str(ROOT / "dist"), "--workpath", str(ROOT / "build" / "work"),
           str(ROOT / "build" / "skinscreen.spec")]
    code = subprocess.run(cmd, cwd=ROOT / "build", check=False).returncode
    if code:
        return code
    out = ROOT / "dist" / "SkinScreen"
    shutil.copy(ROOT / "screening" / "USER_GUIDE.md", out / "USER_GUIDE.md")  # beside the program, for its users
    saved = strip_symbols(out)
    print(f"built {out} in {time.perf_counter() - start:.0f} s; size {folder_size(out) / 2**20:.0f} MiB"
          + (f" ({saved / 2**20:.0f} MiB of symbol tables stripped)" if saved else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
