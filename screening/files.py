"""Writing a file so that nothing is lost: a report, record or sign-in file is either the old
one or the whole new one, never half of either."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from screening.errors import UserError

# the temporary file is named after the one it becomes, cut so that the longest name a file
# system allows for ``out`` (255 bytes) still leaves room for the temporary name's additions
NAME_KEPT = 40
HELD_OPEN = "open in another program (Excel, a PDF reader) or read-only: close it, or write another file"
# a write that failed for want of room: said as such, naming the file (Python's message names neither)
NO_ROOM = {getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, name)}


class NoRoom(UserError):
    """A write that failed because the disk, or the user's quota, is full: the next one will too."""


def sha256_of(source: str | Path | bytes) -> str:
    """The SHA-256 of a file's bytes (what ``sha256sum FILE`` prints): an image's identity in the
    audit log and the worklist, a model file's in its bundle."""
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    with open(source, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_atomically(out: Path, write_to: Callable[[Path], None], suffix: str = ".tmp") -> None:
    """Call ``write_to`` on a temporary file beside ``out``, then rename it over ``out``: an
    interrupted or failed write leaves ``out`` as it was. ``suffix`` ends the temporary file's
    name (Keras saves only to a name ending in .keras)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name[:NAME_KEPT]}.", suffix=suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            write_to(tmp)
        except OSError as err:
            if err.errno not in NO_ROOM:
                raise
            raise NoRoom(f"cannot write {out}: {err.strerror} (the disk is full, or your quota is used up); "
                         "free some space or write it to another disk") from None
        tmp.chmod(_file_mode(out))  # mkstemp's 0600 would make the file private
        try:
            os.replace(tmp, out)
        except PermissionError as err:  # Windows: the file is open in Excel, a PDF reader...
            raise UserError(f"cannot replace {out}: {err.strerror}; it may be {HELD_OPEN}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _file_mode(out: Path) -> int:
    """The replaced file's mode, or what a new file gets under the current umask."""
    if out.exists():
        return out.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def existing(folder: Path) -> Path:
    """``folder``, or where it does not exist yet, the folder it would be made in."""
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def unwritable(folder: Path) -> str | None:
    """Why no file can be made in ``folder`` (or, where it does not exist yet, in the folder it
    would be made in), or None. A trial file, not ``os.access``, which passes a read-only disk
    for an administrator and ignores Windows' access lists: found out only after the scoring."""
    try:
        with tempfile.NamedTemporaryFile(dir=existing(folder), prefix=".skinscreen-"):
            return None
    except OSError as err:
        return err.strerror or str(err)


def in_use(path: Path) -> str | None:
    """Why an existing ``path`` cannot be replaced, or None: on Windows a file open in Excel
    cannot be, and that was found out only once the work to replace it was done."""
    try:
        with open(path, "r+b"):
            return None
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"{err.strerror or err}; it may be {HELD_OPEN}"


def check_output_folder(folder: Path, option: str, what: str) -> None:
    """Refuse, before any work, an output ``folder`` (given as ``option``, to hold ``what``)
    that is a file, or in which no file can be made."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {folder} is a file; give a folder for {what}")
    if why := unwritable(folder):
        raise UserError(f"cannot write {what} in {folder}: not writable ({why})")


def check_room(folder: Path, needed: int, what: str) -> None:
    """``NoRoom`` unless the disk of ``folder`` has ``needed`` bytes free for ``what``: said
    before the work, not when its result is written, an hour of scoring later."""
    free = shutil.disk_usage(existing(folder)).free
    if free < needed:
        raise NoRoom(f"not enough free space for {what} in {folder}: {free / 2**20:.0f} MB free, about "
                     f"{needed / 2**20:.0f} MB needed; free some space or write it to another disk")


def same_disk(a: Path, b: Path) -> bool:
    """Whether files made in folders ``a`` and ``b`` take room from one disk."""
    return existing(a).stat().st_dev == existing(b).stat().st_dev
