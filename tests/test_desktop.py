"""The PyInstaller bundle builds, runs batch mode and serves the UI (pytest -m desktop).

Needs PyInstaller (pip install ".[build]"); building takes minutes, so it runs only when
asked for with ``-m desktop`` (CI does).
"""

import importlib.util
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [
    pytest.mark.desktop,
    pytest.mark.skipif(importlib.util.find_spec("PyInstaller") is None,
                       reason='PyInstaller not installed (pip install ".[build]")'),
]

sys.path.insert(0, str(ROOT / "build"))


@pytest.fixture(scope="module")
def exe():
    import smoke_test

    proc = subprocess.run([sys.executable, str(ROOT / "build" / "build.py")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert smoke_test.EXE.is_file()
    return smoke_test.EXE


def test_batch_mode_writes_a_workbook(exe):
    import smoke_test

    smoke_test.check_version(exe)
    smoke_test.check_saved_options(exe)
    smoke_test.check_add_user(exe)
    smoke_test.check_batch(exe)
    smoke_test.check_evaluate(exe)


def test_ui_answers_headless(exe):
    import smoke_test

    smoke_test.check_ui(exe)


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("readelf") is None
                    or shutil.which("strip") is None, reason="GNU binutils' strip and readelf, on Linux")
def test_the_bundle_leaves_out_symbol_tables_and_the_hub_client(exe):
    from build import STRIPPED

    internal = exe.parent / "_internal"
    for name in STRIPPED:  # 131 MiB of a 729 MiB bundle
        sections = subprocess.run(["readelf", "-S", str(internal / name)], capture_output=True, text=True, check=True)
        assert ".symtab" not in sections.stdout, name
    assert not (internal / "hf_xet").exists()
