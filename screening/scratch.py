"""The app's private scratch folder: uploads, results, reports and records of patient images.

One folder per user, readable by that user alone (Gradio's default, ``<tmp>/gradio``, is
shared, and leaves many of its files readable by every account on the computer), and the
same folder every run, so
that what a run killed outright left behind (``kill -9``, a closed console window on
Windows, a crash) is found and deleted by the next run's sweep.
"""

from __future__ import annotations

import getpass
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from screening.errors import UserError
from screening.files import existing

# Patient images should not outlive their use: the scratch folder (uploads, results, reports,
# records, unpacked zip files) is swept every 10 minutes of files an hour old, whichever run
# left them, while the app runs; batch.py sweeps it once as it unpacks a zip file.
SWEEP = (600, 3600)  # every, and older than, in seconds


# Below this much free space where the scratch folder is, an upload, a Grad-CAM picture, a
# record or a report may not fit: Gradio's own writes then fail with a bare "Error" on the page.
MIN_FREE = 50 * 2**20


def low_space(folder: str | Path | None = None, incoming: int = 0) -> str | None:
    """What to say when the disk of ``folder`` (default: the temporary folder, the scratch
    folder's) is almost full, or would be with ``incoming`` bytes more (an upload's)."""
    folder = folder or tempfile.gettempdir()
    free = shutil.disk_usage(existing(Path(folder))).free
    if free - incoming >= MIN_FREE:
        return None
    asked = f", {incoming / 2**20:.0f} MB asked for" if free >= MIN_FREE else ""  # the file is what tips it
    return f"the disk holding {folder} is almost full ({free / 2**20:.0f} MB free{asked}): free some space on it"


def private_root() -> Path:
    """``<tmp>/skinscreen-<user>``, created readable by this user only; refused if another
    account owns it or others can read it (somebody else may have made it first)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    root = Path(tempfile.gettempdir()) / f"skinscreen-{user}"
    root.mkdir(mode=0o700, exist_ok=True)
    info = root.lstat()
    if hasattr(os, "getuid") and (root.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077):
        raise UserError(f"{root} belongs to another account or is open to others: remove it, or set TMPDIR "
                        "to a folder of your own")
    return root


def sweep(root: Path, max_age: float, now: float | None = None) -> int:
    """Delete the files under ``root`` last changed more than ``max_age`` seconds ago, then
    the folders that leaves empty (``root`` stays); return how many files went."""
    cutoff = (time.time() if now is None else now) - max_age
    removed, changed = 0, {}  # folder -> last change before this sweep emptied it
    for folder, dirs, files in os.walk(root, topdown=False):
        try:
            changed[folder] = Path(folder).lstat().st_mtime
        except OSError:
            continue
        for name in files:
            path = Path(folder, name)
            try:
                if path.lstat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:  # gone meanwhile, or in use (Windows): the next sweep tries again
                pass
        for name in dirs:
            path = Path(folder, name)
            try:
                if changed.get(str(path), cutoff) < cutoff and not any(path.iterdir()):
                    path.rmdir()
            except OSError:
                pass
    return removed


def sweep_every(root: Path, interval: float, max_age: float) -> None:
    """Sweep now, then every ``interval`` seconds, in a daemon thread (it ends with the app)."""

    def run() -> None:
        while True:
            sweep(root, max_age)
            time.sleep(interval)

    threading.Thread(target=run, name="skinscreen-sweep", daemon=True).start()
