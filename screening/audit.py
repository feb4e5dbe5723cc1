"""The app's audit log (``--audit-log FILE``): who assessed which image, when, and what the
tool answered, for a clinic that must account for each use of patient images.

One JSON object per line, appended. An image is named by its SHA-256, not its file name (which
may hold a patient's name): the clinic finds the entry of a given image by hashing it
(``sha256sum``), and the log alone discloses no patient. Nothing in it is ever rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from datetime import datetime
from pathlib import Path

from screening.errors import UserError


def sha256_of(source: str | Path | bytes) -> str:
    """The SHA-256 of an image file's bytes (what ``sha256sum FILE`` prints)."""
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    with open(source, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class AuditLog:
    """Appends entries to ``path`` (created owner-only), each in one write so that entries from
    several users at once never interleave; refused at start-up if it cannot be written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as err:
            raise UserError(f"--audit-log {path}: cannot be written ({err.strerror or err})") from None
        self._lock = threading.Lock()

    def write(self, action: str, user: str | None = None, client: str | None = None, **details) -> None:
        entry = {"time": datetime.now().astimezone().isoformat(timespec="seconds"), "action": action,
                 "user": user, "client": client, **details}
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
        try:
            with self._lock:
                os.write(self._fd, line)
        except OSError as err:  # a full disk: the caller withholds the result rather than leave no trace
            raise UserError(f"the audit log {self.path} cannot be written ({err.strerror or err})") from None

    def sign_in(self, user: str, accepted: bool) -> None:
        """A sign-in, let in or refused (a failure here is printed: the page cannot show it)."""
        try:
            self.write("sign-in" if accepted else "sign-in refused", user=user)
        except UserError as err:
            print(f"warning: {err}", file=sys.stderr)

    def stop(self) -> None:
        """The last entry, as the app exits."""
        try:
            self.write("stop")
            os.close(self._fd)
        except (UserError, OSError):
            pass
