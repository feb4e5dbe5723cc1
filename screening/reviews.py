"""The reader's notes in a worklist, carried over when ``batch.py --overwrite`` replaces it: a
clinic that scores its inbox again each night keeps what was written in the day's worklist,
where before it was gone. The reader's columns are ``review`` and any column the reader added
to the Results sheet (a clinic's "action", "seen by", "appointment").

A row's notes go back only to the same image: the same file name and the same bytes (the
workbook's ``sha256`` column), never to another image that has the name (``IMG_0001.jpg`` from a
second camera, a DICOM export's ``IM0001`` of another patient). Notes on images not in the new
worklist, or changed, are kept on a sheet of their own, so that none is lost.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from pathlib import Path

import pandas as pd

from screening.errors import UserError

SHEET = "Earlier reviews"
ITEM = "reviews"  # the Summary sheet's item
HASH = "sha256"  # the workbook's column of each file's SHA-256: what a note follows
DATE = "worklist date"  # SHEET's: when the worklist a note was written in was made
KEYS = ["file", DATE, HASH]  # what a note is about, beside the reader's columns


def check(path: Path) -> None:
    """Refuse, before any scoring, a worklist :func:`read` could not read."""
    _open(path).close()


def read(path: Path, own: Collection[str]) -> pd.DataFrame:
    """Every row with a note in the worklist ``path`` (its Results sheet, and its :data:`SHEET`):
    ``file``, the reader's columns (``review``, then those the reader added: any not in ``own``,
    the columns SkinScreen writes), :data:`DATE` and :data:`HASH`; no rows for a worklist without
    notes, but the reader's columns still (a column set up for notes to come stays)."""
    book = _open(path)
    try:
        results, summary, earlier = (_table(book, name) for name in ("Results", "Summary", SHEET))
    finally:
        book.close()
    notes = []
    if "file" in results.columns:
        date = dict(zip(summary.get("item", ()), summary.get("value", ()))).get("date", "")
        mine = [c for c in results.columns if c == "review" or c not in {*own, *KEYS}]
        notes.append(results[["file", *mine, *[HASH] * (HASH in results.columns)]].assign(**{DATE: date}))
    if "file" in earlier.columns:
        notes.append(earlier)
    table = pd.concat(notes, ignore_index=True) if notes else pd.DataFrame()
    mine = [c for c in table.columns if c not in KEYS and c != "review"]
    table = table.reindex(columns=["file", "review", *mine, DATE, HASH])
    return table[table[["review", *mine]].map(_written).any(axis=1)].reset_index(drop=True)


def reader_columns(notes: pd.DataFrame) -> list[str]:
    """The reader's columns of :func:`read`'s table: ``review``, then those the reader added."""
    return [c for c in notes.columns if c not in KEYS]


def _open(path: Path):
    """The workbook, read-only. A file that is not one SkinScreen can read is a
    :class:`UserError`: replacing it could lose notes no one has seen (a password-protected
    workbook is one)."""
    from openpyxl import load_workbook

    try:
        return load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001  whatever the file holds: zipfile's, openpyxl's, XML errors
        raise UserError(f"{path} cannot be read as a worklist (password-protected, damaged, or not an Excel workbook: "
                        f"{type(err).__name__}), so the notes written in it could not be kept; move it away "
                        "or give another --out") from None


def _table(book, name: str) -> pd.DataFrame:
    """A sheet as a table, its first row the header; empty where the workbook has no such sheet.
    A column without a header is named for its letter ("column M"), a repeated header numbered
    ("action (2)"): pandas needs each name once, and the reader sees where the notes came from."""
    from openpyxl.utils import get_column_letter

    if name not in book.sheetnames:
        return pd.DataFrame()
    rows = list(book[name].iter_rows(values_only=True))
    if not rows:
        return pd.DataFrame()
    names: list[str] = []
    for j, header in enumerate(rows[0], start=1):
        text = _text(header).strip() or f"column {get_column_letter(j)}"
        names.append(next(n for n in (text, *(f"{text} ({k})" for k in range(2, j + 2))) if n not in names))
    return pd.DataFrame(rows[1:], columns=names)


def _written(value: object) -> bool:
    return _text(value).strip() != ""


def carry(files: Sequence[str], hashes: Sequence[str],
          notes: pd.DataFrame) -> tuple[dict[int, dict[str, object]], pd.DataFrame]:
    """Which row of the new worklist (its ``files`` and their ``hashes``) each row of notes goes
    back to, as row position -> {reader's column: value}, and the rows of notes that go back to
    none (:data:`SHEET`'s rows)."""
    where = {(name, digest): i for i, (name, digest) in enumerate(zip(files, hashes))}
    mine = reader_columns(notes)
    carried: dict[int, dict[str, object]] = {}
    left = []
    for k, note in enumerate(notes.to_dict("records")):
        i = where.get((_text(note["file"]), _text(note[HASH])))
        if i is None or i in carried:  # another image, or a second row of notes on one (kept: never overwritten)
            left.append(k)
        else:
            carried[i] = {c: note[c] for c in mine if _written(note[c])}
    return carried, notes.iloc[left].reset_index(drop=True)


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def summary_text(carried: int, kept: int) -> str:
    """The Summary sheet's :data:`ITEM` and the terminal's note."""
    back = f"{carried} carried over from the worklist this one replaced"
    if not kept:
        return back
    return f"{back}; {kept} on the sheet '{SHEET}': of images not in this worklist, or changed since"
