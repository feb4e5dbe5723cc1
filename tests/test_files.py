"""Atomic writes (``screening.files``): the reports, records and sign-in file rely on them."""

import errno
import os

import pytest

from screening.files import NoRoom, write_atomically

POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and name lengths")


@pytest.mark.parametrize("error, raised, said", [
    (OSError(errno.ENOSPC, "No space left on device"), NoRoom,
     r"cannot write .*report.csv: No space left on device \(the disk is full"),  # Python's names no file
    (OSError(errno.EIO, "Input/output error"), OSError, "Input/output error"),
])
def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path, error, raised, said):
    out = tmp_path / "report.csv"
    out.write_text("old")

    def fails(tmp):
        tmp.write_text("half of the new")
        raise error

    with pytest.raises(raised, match=said):
        write_atomically(out, fails)
    assert out.read_text() == "old" and os.listdir(tmp_path) == ["report.csv"]
    write_atomically(out, lambda tmp: tmp.write_text("new"))
    assert out.read_text() == "new" and os.listdir(tmp_path) == ["report.csv"]


@POSIX
def test_a_new_file_is_readable_as_any_and_a_replaced_one_keeps_its_mode(tmp_path):
    out = tmp_path / "report.csv"
    umask = os.umask(0o022)
    try:
        write_atomically(out, lambda tmp: tmp.write_text("new"))
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    out.chmod(0o600)
    write_atomically(out, lambda tmp: tmp.write_text("private"))
    assert out.stat().st_mode & 0o777 == 0o600


@POSIX
def test_the_longest_name_the_file_system_allows_can_be_written(tmp_path):
    out = tmp_path / ("é" * 125 + ".pdf")  # 254 bytes: the temporary name must not grow past 255
    write_atomically(out, lambda tmp: tmp.write_bytes(b"%PDF"))
    assert out.read_bytes() == b"%PDF"


def test_a_file_held_open_elsewhere_is_named_and_kept(tmp_path, monkeypatch):
    """Windows refuses to replace a workbook open in Excel (simulated: Linux does not)."""
    import screening.files
    from screening.errors import UserError
    from screening.files import in_use

    out = tmp_path / "report.xlsx"
    out.write_text("open in Excel")

    def refused(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(screening.files.os, "replace", refused)
    with pytest.raises(UserError, match=r"cannot replace .*report.xlsx: Permission denied; it may be open in another"):
        write_atomically(out, lambda tmp: tmp.write_text("new"))
    assert out.read_text() == "open in Excel" and os.listdir(tmp_path) == ["report.xlsx"]
    assert in_use(out) is None and in_use(tmp_path / "new.xlsx") is None
    monkeypatch.setattr(screening.files, "open", refused, raising=False)
    assert in_use(out).startswith("Permission denied; it may be open in another program (Excel")
