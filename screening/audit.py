"""The app's audit log (``--audit-log FILE``): who assessed which image, when, and what the
tool answered, for a clinic that must account for each use of patient images.

One JSON object per line, appended. An image is named by its SHA-256, not its file name (which
may hold a patient's name): the clinic finds the entry of a given image by hashing it
(``sha256sum``), and the log alone discloses no patient. Nothing in it is ever rewritten.

Each entry carries ``prev``, the SHA-256 of the line before it, so the entries form a chain:
an entry changed, removed or inserted later breaks it at that point, which
``python -m screening.audit FILE`` finds. A chain alone cannot show that the newest entries
were cut off, or that the whole log was rewritten from some entry on with new hashes; the
hash the check prints, kept elsewhere (a ticket, an e-mail), and checked later with
``--anchor`` shows that everything up to it is still as it was.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from screening.cli import described, run_cli
from screening.errors import UserError

try:  # several app processes may append to one log: each reads the last line under the lock
    import fcntl
except ImportError:  # Windows: one process per log (the threading lock still holds)
    fcntl = None

TAIL_CHUNK = 1 << 16
FIRST_LINE_MOST = 1 << 20  # a log's first entry (the app's start) is short; another file's first line may be all of it
SHOWN_BREAKS = 20  # a log pasted over with another file breaks at every line: the first few say where
ENTRY_START = b'{"time": "'  # how every entry the app writes begins, even one whose write was cut short


def last_line(fd: int) -> bytes:
    """The file's last line with its newline (possibly a write cut short, without one); b"" if empty."""
    end = os.fstat(fd).st_size
    tail = b""
    while end > 0:
        start = max(0, end - TAIL_CHUNK)
        os.lseek(fd, start, os.SEEK_SET)  # not os.pread: Windows has none (writes append wherever this points)
        tail = os.read(fd, end - start) + tail
        end = start
        cut = tail.rfind(b"\n", 0, len(tail) - 1)
        if cut >= 0:
            return tail[cut + 1:]
    return tail


def entry_of(line: bytes) -> dict | None:
    """The entry a line holds; None for a line that is none (another file's, or one cut short)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and "action" in entry else None


def first_line(fd: int) -> bytes:
    """The file's first line (at most ``FIRST_LINE_MOST`` bytes of it)."""
    os.lseek(fd, 0, os.SEEK_SET)
    head = b""
    while len(head) < FIRST_LINE_MOST and b"\n" not in head and (chunk := os.read(fd, TAIL_CHUNK)):
        head += chunk
    return head.split(b"\n", 1)[0]


def _flock(fd: int, lock: bool) -> bool:
    """Take (or release) the lock that orders several processes' entries; False where there is
    none, or where the file system refuses it (some network shares): an entry is never withheld
    for want of it, and one process's entries stay chained by the threading lock."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if lock else fcntl.LOCK_UN)
    except OSError:
        return False
    return True


class AuditLog:
    """Appends entries to ``path`` (created owner-only), each in one write so that entries from
    several users at once never interleave; refused at start-up if it cannot be written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._created = not path.exists()
        try:
            # O_BINARY: Windows would otherwise write each newline as CRLF, and the hashes read back would differ
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
        except OSError as err:
            raise UserError(f"--audit-log {path}: cannot be written ({err.strerror or err})") from None
        try:  # entries appended to a document named by mistake would change it
            first = first_line(self._fd) if os.fstat(self._fd).st_size else None
            why = "" if first is None or entry_of(first) or first.startswith(ENTRY_START) else \
                "not an audit log (its first line is no entry); name a new file, or one the app wrote"
        except OSError as err:
            why = f"cannot be read ({err.strerror or err})"
        if why:
            os.close(self._fd)
            raise UserError(f"--audit-log {path}: {why}")
        self._lock = threading.Lock()

    def write(self, action: str, user: str | None = None, client: str | None = None, **details) -> None:
        entry = {"time": datetime.now().astimezone().isoformat(timespec="seconds"), "action": action,
                 "user": user, "client": client, **details}
        try:
            with self._lock:
                locked = _flock(self._fd, True)
                try:
                    before = last_line(self._fd)
                    # A last line cut short (a full disk, a crash) is ended, so that it stays one bad line.
                    end = b"" if not before or before.endswith(b"\n") else b"\n"
                    entry["prev"] = hashlib.sha256(before + end).hexdigest() if before else None
                    os.write(self._fd, end + (json.dumps(entry, ensure_ascii=False) + "\n").encode())
                finally:
                    if locked:
                        _flock(self._fd, False)
        except OSError as err:  # a full disk: the caller withholds the result rather than leave no trace
            raise UserError(f"the audit log {self.path} cannot be written ({err.strerror or err})") from None

    def sign_in(self, user: str, accepted: bool, client: str | None = None) -> None:
        """A sign-in, let in or refused (a failure here is printed: the page cannot show it)."""
        try:
            self.write("sign-in" if accepted else "sign-in refused", user=user, client=client)
        except UserError as err:
            print(f"warning: {err}", file=sys.stderr)

    def abandon(self) -> None:
        """The app did not start after all (a port taken, a model refused): close, and remove the
        file if this created it and nothing was written, so a refused start leaves no trace."""
        os.close(self._fd)
        try:
            if self._created and self.path.stat().st_size == 0:
                self.path.unlink()
        except OSError:
            pass

    def stop(self) -> None:
        """The last entry, as the app exits."""
        try:
            self.write("stop")
            os.close(self._fd)
        except (UserError, OSError):
            pass


@dataclass
class Check:
    """What :func:`check` found: entries, the unchained ones before the chain began (logs
    written before entries were chained), each break, and the last line's hash."""

    entries: int = 0
    unchained: int = 0
    breaks: list[str] = field(default_factory=list)
    anchor_line: int | None = None
    last_hash: str | None = None


def check(path: Path, anchor: str | None = None) -> Check:
    """Follow the chain through ``path``; ``anchor``, a hash printed by an earlier check, must
    be the hash of one of its lines."""
    try:
        with open(path, "rb") as lines:  # line by line: years of entries need not fit in memory
            found = _follow(lines, anchor)
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror or err})") from None
    if found.breaks and not found.entries:  # another file named by mistake, not a log cut or edited
        n = len(found.breaks)
        raise UserError(f"{path}: not an audit log (none of its {n} line{'' if n == 1 else 's'} is an entry): give "
                        "the file the app's --audit-log wrote")
    return found


def _follow(lines: Iterable[bytes], anchor: str | None) -> Check:
    found = Check()
    prev: str | None = None
    chained = False
    for number, line in enumerate(lines, 1):
        entry = entry_of(line)
        if entry is None:
            found.breaks.append(f"line {number}: not an entry (a write cut short, or an edit)")
        else:
            found.entries += 1
            if "prev" not in entry and not chained:
                found.unchained += 1
            elif entry.get("prev") != prev:
                found.breaks.append(f"line {number}: does not follow line {number - 1} (line {number - 1} "
                                    "was changed, or entries between them removed or inserted)" if number > 1 else
                                    "line 1: the log does not begin here (entries before it were removed)")
            chained = chained or "prev" in entry
        prev = hashlib.sha256(line).hexdigest()
        if prev == anchor:
            found.anchor_line = number
    found.last_hash = prev
    return found


def parser() -> argparse.ArgumentParser:
    prog = "SkinScreen audit" if getattr(sys, "frozen", False) else "python -m screening.audit"
    p = argparse.ArgumentParser(prog=prog, description=described(__doc__))
    p.add_argument("log", type=Path, help="the file given to the app's --audit-log")
    p.add_argument("--anchor", metavar="HASH", help="a last-entry hash an earlier check printed: "
                   "the log must still hold that entry, unchanged, and all before it")
    return p


def main(argv: list[str] | None = None) -> int:
    def run(args: argparse.Namespace) -> int:
        found = check(args.log, args.anchor)
        for line in found.breaks[:SHOWN_BREAKS]:
            print(f"{args.log}: {line}")
        if len(found.breaks) > SHOWN_BREAKS:
            print(f"{args.log}: {len(found.breaks) - SHOWN_BREAKS} more breaks after these")
        anchor_lost = bool(args.anchor) and found.anchor_line is None
        if anchor_lost:
            print(f"{args.log}: no entry has the hash {args.anchor}: the entries up to it were changed or removed")
        elif args.anchor:
            print(f"{args.log}: the anchored entry is line {found.anchor_line}")
        broken = bool(found.breaks) or anchor_lost
        older = f" ({found.unchained} at the start written before entries were chained)" if found.unchained else ""
        entries = f"{found.entries} entr{'y' if found.entries == 1 else 'ies'}"
        print(f"{args.log}: {entries}{older}; chain {'BROKEN' if broken else 'intact'}")
        if found.last_hash and not broken:
            print(f"last entry's hash (keep it elsewhere, check later with --anchor): {found.last_hash}")
        return 1 if broken else 0

    return run_cli(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
