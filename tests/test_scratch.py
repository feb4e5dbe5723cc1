"""The app's private scratch folder and its sweep (``screening.scratch``)."""

import os
import sys
import time

import pytest

from screening.errors import UserError
from screening.scratch import private_root, sweep


def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_sweep_deletes_old_files_and_the_folders_it_empties_only(tmp_path):
    old, new = tmp_path / "uploads" / "h1" / "old.jpg", tmp_path / "uploads" / "h2" / "new.jpg"
    for path in (old, new):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    empty_recent = tmp_path / "work-1" / "just-made"  # a folder a running app is about to write into
    empty_recent.mkdir(parents=True)
    for path in (old, old.parent):
        age(path, 7200)
    assert sweep(tmp_path, max_age=3600) == 1
    assert not old.parent.exists() and new.exists() and empty_recent.exists() and tmp_path.exists()
    assert sweep(tmp_path, max_age=3600, now=time.time() + 7200) == 1  # two hours on: everything
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_private_root_is_this_users_alone(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    root = private_root()
    assert root.parent == tmp_path and root.stat().st_mode & 0o777 == 0o700
    assert private_root() == root  # the same folder every run, so a run can sweep an earlier one's files
    root.chmod(0o755)  # made by someone else, or opened up: patient images would be readable by others
    with pytest.raises(UserError, match="open to others"):
        private_root()
