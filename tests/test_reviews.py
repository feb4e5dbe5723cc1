import openpyxl
import pandas as pd
import pytest

from screening import reviews
from screening.errors import UserError

FILES, HASHES = ["a.jpg", "IM0001", "bad.png"], ["aa11", "bb22", "cc33"]  # a new worklist's rows
OWN = ["file", "status", "flag", "review", "sha256"]  # the columns SkinScreen wrote (report.OWN_COLUMNS)
SHEET_COLUMNS = ["file", "review", "worklist date", "sha256"]  # the Earlier reviews sheet's, with no column added


def note(file: str, review: object, digest: str) -> dict:
    return {"file": file, "review": review, "worklist date": "2026-11-26T18:00:00+00:00", "sha256": digest}


def test_a_note_goes_back_to_the_same_image_only():
    notes = pd.DataFrame([
        note("a.jpg", "seen, routine", "aa11"),
        note("IM0001", "biopsy booked", "ff99"),  # another patient's IM0001
        note("renamed.jpg", "x", "cc33"),  # bad.png's bytes under another name: kept, not guessed
        note("gone.jpg", 5, "dd44"),  # an image no longer in the folder
        note("a.jpg", "a second note on a.jpg", "aa11"),  # from the Earlier reviews sheet: a.jpg has one already
        note("bad.png", "asked for it again", "cc33"),
        note("IM0001", "from a worklist before sha256 columns", float("nan")),
    ], columns=SHEET_COLUMNS)
    carried, kept = reviews.carry(FILES, HASHES, notes)
    assert carried == {0: {"review": "seen, routine"}, 2: {"review": "asked for it again"}}
    assert list(kept["file"]) == ["IM0001", "renamed.jpg", "gone.jpg", "a.jpg", "IM0001"]
    assert list(kept["review"])[:3] == ["biopsy booked", "x", 5]
    assert reviews.summary_text(2, 5) == ("2 carried over from the worklist this one replaced; 5 on the sheet "
                                          "'Earlier reviews': of images not in this worklist, or changed since")


def test_notes_are_read_from_the_results_and_the_earlier_reviews_sheets(tmp_path):
    path = tmp_path / "r.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"file": FILES, "status": "ok", "review": ["fine", None, "  "], "sha256": HASHES}).to_excel(
            writer, sheet_name="Results", index=False)
        pd.DataFrame({"item": ["images found", "date"], "value": [3, "2026-11-26T18:00:00+00:00"]}).to_excel(
            writer, sheet_name="Summary", index=False)
        pd.DataFrame([note("old.jpg", "from before", "ee55")]).to_excel(writer, sheet_name=reviews.SHEET, index=False)
    notes = reviews.read(path, OWN)
    assert list(notes.columns) == SHEET_COLUMNS
    assert list(notes["file"]) == ["a.jpg", "old.jpg"] and list(notes["review"]) == ["fine", "from before"]
    assert list(notes["sha256"]) == ["aa11", "ee55"] and notes["worklist date"][0] == "2026-11-26T18:00:00+00:00"


def test_a_workbook_without_notes_gives_none(tmp_path):
    path = tmp_path / "r.xlsx"
    openpyxl.Workbook().save(path)
    assert reviews.read(path, OWN).empty


def test_a_file_that_is_no_workbook_is_refused(tmp_path):
    path = tmp_path / "r.xlsx"
    path.write_bytes(b"not a workbook, or one with a password")
    with pytest.raises(UserError, match=r"cannot be read as a worklist \(password-protected, damaged, or not an Excel "
                                        r"workbook: BadZipFile\), so the notes"):
        reviews.read(path, OWN)


def test_columns_the_reader_added_are_notes_too(tmp_path):
    """A clinic's own columns ("action", one typed into without a header, a header twice, one set
    up and still empty) are the reader's as the review column is; SkinScreen's own are not."""
    path = tmp_path / "r.xlsx"
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "Results"
    for row in (["file", "status", "flag", "review", "sha256", "action", None, "action", "seen by"],
                ["a.jpg", "ok", "REFER", None, "aa11", "excise", None, None, None],
                ["b.jpg", "ok", "routine", None, "bb22", None, "called", "twice", None],
                ["c.jpg", "ok", "routine", None, "cc33", None, None, None, None]):
        ws.append(row)
    book.save(path)
    notes = reviews.read(path, OWN)
    assert reviews.reader_columns(notes) == ["review", "action", "column G", "action (2)", "seen by"]
    assert list(notes["file"]) == ["a.jpg", "b.jpg"]  # c.jpg: nothing written
    carried, kept = reviews.carry(["b.jpg", "a.jpg"], ["bb22", "aa11"], notes)
    assert carried == {1: {"action": "excise"}, 0: {"column G": "called", "action (2)": "twice"}} and kept.empty
