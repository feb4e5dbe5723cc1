"""The reader's notes in a worklist's ``review`` column, carried over when ``batch.py
--overwrite`` replaces the worklist: a clinic that scores its inbox again each night keeps the
notes written in the day's worklist, where before they were gone.

A note goes back only to the same image: the same file name and the same bytes (the workbook's
``sha256`` column), never to another image that has the name (``IMG_0001.jpg`` from a second
camera, a DICOM export's ``IM0001`` of another patient). Notes on images not in the new
worklist, or changed, are kept on a sheet of their own, so that none is lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from screening.errors import UserError

SHEET = "Earlier reviews"
ITEM = "reviews"  # the Summary sheet's item
HASH = "sha256"  # the workbook's column of each file's SHA-256: what a note follows
COLUMNS = ["file", "review", "worklist date", HASH]  # SHEET's


def check(path: Path) -> None:
    """Refuse, before any scoring, a worklist :func:`read` could not read."""
    _open(path).close()


def read(path: Path) -> pd.DataFrame:
    """Every note in the worklist ``path`` (its Results sheet's ``review`` column, and its
    :data:`SHEET`), as rows of :data:`COLUMNS`; none for a worklist without notes."""
    book = _open(path)
    try:
        results, summary, earlier = (_table(book, name) for name in ("Results", "Summary", SHEET))
    finally:
        book.close()
    notes = []
    if {"file", "review"} <= set(results.columns):
        written = results[results["review"].map(_written)]
        date = dict(zip(summary.get("item", ()), summary.get("value", ()))).get("date", "")
        notes.append(written.reindex(columns=["file", "review", HASH]).assign(**{"worklist date": date}))
    if {"file", "review"} <= set(earlier.columns):
        notes.append(earlier[earlier["review"].map(_written)].reindex(columns=COLUMNS))
    return pd.concat(notes, ignore_index=True)[COLUMNS] if notes else pd.DataFrame(columns=COLUMNS)


def _open(path: Path):
    """The workbook, read-only. A file that is not one SkinScreen can read is a
    :class:`UserError`: replacing it could lose notes no one has seen (a password-protected
    workbook is one)."""
    from openpyxl import load_workbook

    try:
        return load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001  whatever the file holds: zipfile's, openpyxl's, XML errors
        raise UserError(f"{path} cannot be read as a worklist (password-protected, damaged, or not an Excel workbook: "
                        f"{type(err).__name__}), so the notes in its review column could not be kept; move it away "
                        "or give another --out") from None


def _table(book, name: str) -> pd.DataFrame:
    """A sheet as a table, its first row the header; empty where the workbook has no such sheet."""
    if name not in book.sheetnames:
        return pd.DataFrame()
    rows = list(book[name].iter_rows(values_only=True))
    return pd.DataFrame(rows[1:], columns=[str(c) for c in rows[0]]) if rows else pd.DataFrame()


def _written(value: object) -> bool:
    return _text(value).strip() != ""


def carry(files: Sequence[str], hashes: Sequence[str], notes: pd.DataFrame) -> tuple[dict[int, object], pd.DataFrame]:
    """Which row of the new worklist (its ``files`` and their ``hashes``) each note goes back
    to, as row position -> note, and the notes that go back to none (:data:`SHEET`'s rows)."""
    where = {(name, digest): i for i, (name, digest) in enumerate(zip(files, hashes))}
    carried: dict[int, object] = {}
    left = []
    for k, note in enumerate(notes.to_dict("records")):
        i = where.get((_text(note["file"]), _text(note[HASH])))
        if i is None or i in carried:  # another image, or a second note on one (kept: never overwritten)
            left.append(k)
        else:
            carried[i] = note["review"]
    return carried, notes.iloc[left].reset_index(drop=True)


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def summary_text(carried: int, kept: int) -> str:
    """The Summary sheet's :data:`ITEM` and the terminal's note."""
    back = f"{carried} carried over from the worklist this one replaced"
    if not kept:
        return back
    return f"{back}; {kept} on the sheet '{SHEET}': of images not in this worklist, or changed since"
