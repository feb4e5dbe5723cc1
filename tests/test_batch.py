"""batch.py end to end on a folder of generated images and broken files."""

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes

import numpy as np
import openpyxl
import pandas as pd
import pytest
from PIL import Image

from screening.batch import main
from screening.info import CLASS_CODES
from screening.report import COLUMNS, OPERATING_POINT_ITEM, RECORDS_ITEM, operating_point_text
from tests.conftest import HEIC, ROOT, lesion_like, pdf_text
from tests.dicom_files import write_dicom


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    rgb = Image.fromarray(lesion_like(450, 600))
    rgb.save(d / "a_plain.jpg")
    rgb.convert("L").save(d / "b_gray.png")
    rgb.convert("RGBA").save(d / "c_alpha.PNG")
    rgb.convert("P").save(d / "d_palette.gif")
    rgb.convert("CMYK").save(d / "e_cmyk.jpg")
    Image.fromarray(lesion_like(300, 300)[..., 0].astype(np.uint16) * 257).save(d / "f_16bit.png")
    exif = rgb.getexif()
    exif[0x0112] = 6
    rgb.save(d / "g_rotated.jpg", exif=exif.tobytes())
    rgb.resize((3000, 2250)).save(d / "h_large.tif")
    rgb.save(d / "i ünïcode naïve.webp")
    Image.fromarray(lesion_like(60, 80)).save(d / "j_small.bmp")
    (d / "k_empty.jpg").write_bytes(b"")
    (d / "l_text.jpg").write_text("this is not an image")
    buf = io.BytesIO()
    rgb.save(buf, "JPEG")
    (d / "m_truncated.jpg").write_bytes(buf.getvalue()[:2000])
    Image.new("1", (10000, 10000)).save(d / "n_bomb.png")
    (d / "notes.txt").write_text("ignored: not an image extension")
    sub = d / "sub"
    sub.mkdir()
    rgb.save(sub / "z_nested.jpg")
    return d


OK = ["a_plain.jpg", "b_gray.png", "c_alpha.PNG", "d_palette.gif", "e_cmyk.jpg", "f_16bit.png", "g_rotated.jpg",
      "h_large.tif", "i ünïcode naïve.webp", "j_small.bmp"]
BROKEN = ["k_empty.jpg", "l_text.jpg", "m_truncated.jpg", "n_bomb.png"]


@pytest.fixture(scope="module")
def xlsx(folder, tiny_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "report.xlsx"
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--quiet", "--thumbnails"]) == 0
    return out


def test_every_image_file_gets_a_row_in_stable_order(xlsx):
    df = pd.read_excel(xlsx, sheet_name="Results")
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert list(df["file"]) == sorted(OK + BROKEN, key=str.casefold)
    status = dict(zip(df["file"], df["status"]))
    assert all(status[f] == "ok" for f in OK) and all(status[f] == "error" for f in BROKEN)


def test_scores_are_probabilities_and_flags_follow_threshold(xlsx):
    df = pd.read_excel(xlsx, sheet_name="Results").query("status == 'ok'")
    probs = df[[c for c in COLUMNS if c.startswith("p_")]]
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert ((df["malignancy_probability"] >= 0.3) == (df["flag"] == "REFER")).all()  # tiny bundle threshold 0.3
    rotated = df.set_index("file").loc["g_rotated.jpg"]
    assert (rotated["width"], rotated["height"]) == (450, 600)
    assert "very small" in df.set_index("file").loc["j_small.bmp", "warnings"]


def test_errors_have_readable_messages(xlsx):
    err = pd.read_excel(xlsx, sheet_name="Results").set_index("file")["error"]
    assert "not a readable image" in err["k_empty.jpg"] and "not a readable image" in err["l_text.jpg"]
    assert "truncated" in err["m_truncated.jpg"]
    assert "decompression bomb" in err["n_bomb.png"]


def test_workbook_formatting(xlsx, folder):
    wb = openpyxl.load_workbook(xlsx)
    assert wb.sheetnames == ["Results", "Summary", "About"]
    ws = wb["Results"]
    assert ws.freeze_panes == "B2" and ws.auto_filter.ref.startswith("A1:")
    col = COLUMNS.index("malignancy_probability") + 1
    assert ws.cell(row=2, column=col).number_format == "0.0%"
    rules = [r.formula[0] for rng in ws.conditional_formatting for r in rng.rules]
    assert any('="REFER"' in f for f in rules)
    assert ws.column_dimensions["A"].width >= len("i ünïcode naïve.webp")
    letters = {name: openpyxl.utils.get_column_letter(j) for j, name in enumerate(COLUMNS, start=1)}
    assert [n for n, letter in letters.items() if ws.column_dimensions[letter].hidden] == ["dicom"]  # no DICOM here
    assert len(ws._images) == len(OK)  # thumbnails for readable images
    preview_row = ws._images[0].anchor._from.row + 1
    assert {c.alignment.vertical for c in ws[preview_row]} == {"center"}  # text beside its preview
    flag = COLUMNS.index("flag")
    assert ws[preview_row][flag].alignment.horizontal == "center"  # not run into the percentage before it
    extras = [c.value for c in ws[1][len(COLUMNS):]]
    assert extras == ["review", "thumbnail", "sha256"]  # a blank column for the reader, the previews, the hashes
    review = len(COLUMNS) + 1
    assert all(ws.cell(row=r, column=review).value is None for r in range(2, ws.max_row + 1))
    last_column = openpyxl.utils.get_column_letter(review + 2)
    assert ws.column_dimensions[last_column].hidden  # for matching, not reading: not printed
    digest = hashlib.sha256((folder / "a_plain.jpg").read_bytes())
    assert ws.cell(row=2, column=review + 2).value == digest.hexdigest()  # a_plain.jpg's row
    assert ws.auto_filter.ref == f"A1:{last_column}{ws.max_row}"
    assert all(str(rng.sqref) == f"A2:{last_column}{ws.max_row}" for rng in ws.conditional_formatting)
    sheet = wb["Summary"]
    rows = {a.value: b for a, b in sheet.iter_rows(max_col=2)}
    assert rows["referral threshold (malignancy probability)"].number_format == "0.0%"
    assert sheet.column_dimensions["A"].width >= max(len(str(k)) for k in rows)  # no item cut off
    for name in ("Summary", "About"):  # a wrapped value gets the lines it needs, not one row over the next
        sheet = wb[name]
        for item, value in sheet.iter_rows(min_row=2, max_col=2):
            chars_per_line = sheet.column_dimensions["B"].width - 4
            if len(str(value.value or "")) > chars_per_line:
                assert sheet.row_dimensions[value.row].height >= 30, (name, item.value)
    summary = dict(pd.read_excel(xlsx, sheet_name="Summary").values)
    assert summary["images found"] == 14 and summary["errors"] == 4
    assert summary["model"] == "tiny-test-model" and len(summary["model sha256"]) == 64
    assert RECORDS_ITEM not in summary  # no --records
    assert summary[OPERATING_POINT_ITEM].startswith("not known")  # the tiny model has no validation figures
    about = pd.read_excel(xlsx, sheet_name="About")
    assert "not a medical device" in about.iloc[0]["meaning"]


def test_file_names_link_to_their_images(xlsx, folder):
    """A click on a file name opens the image; the link is relative, so moving the report and the
    images together keeps it (percent-encoded: spaces and accents)."""
    ws = openpyxl.load_workbook(xlsx)["Results"]
    for (cell,) in ws.iter_rows(min_row=2, max_col=1):
        target = cell.hyperlink.target
        assert not target.startswith(("/", "file:"))
        assert (xlsx.parent / unquote(target)).resolve() == (folder / cell.value).resolve()


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="time.tzset: POSIX only")
def test_the_report_is_dated_by_the_clinics_clock_with_its_offset(folder, tiny_bundle, tmp_path, monkeypatch):
    """As the PDF records and the audit log are: it said UTC, hours off the clinic's day."""
    monkeypatch.setenv("TZ", "IST-5:30")  # POSIX form, UTC+05:30: needs no time zone database
    time.tzset()
    try:
        out = tmp_path / "r.json"
        assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]) == 0
    finally:
        monkeypatch.undo()
        time.tzset()
    assert json.loads(out.read_text(encoding="utf-8"))["summary"]["date"].endswith("+05:30")


def test_recursive_and_csv(folder, tiny_bundle, tmp_path):
    out = tmp_path / "r.csv"
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--quiet", "--recursive"]) == 0
    df = pd.read_csv(out)
    assert "sub/z_nested.jpg" in set(df["file"]) and len(df) == len(OK) + len(BROKEN) + 1
    assert list(df.columns) == [*COLUMNS, "sha256"]  # as the workbook's Results, for a program that files them
    nested = hashlib.sha256((folder / "sub" / "z_nested.jpg").read_bytes()).hexdigest()
    assert df.loc[df["file"] == "sub/z_nested.jpg", "sha256"].item() == nested


def test_the_csv_carries_a_byte_order_mark_so_excel_reads_accented_names(tiny_bundle, tmp_path):
    """Excel (not available here) reads a CSV without one in the legacy code page: Mã¼ller."""
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(lesion_like()).save(images / "Müller, Zoë.jpg")
    out = tmp_path / "r.csv"
    assert main([str(images), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]) == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbffile,") and "Müller, Zoë.jpg".encode() in raw
    assert pd.read_csv(out)["file"].tolist() == ["Müller, Zoë.jpg"]  # pandas skips the mark


def test_file_names_that_look_like_formulas_stay_text(tiny_bundle, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    names = ["=1+1.jpg", "+2.jpg", "-3.jpg", "@SUM(1).jpg", "plain.jpg"]
    for name in names:
        Image.fromarray(lesion_like()).save(images / name)
    xlsx, csv = tmp_path / "r.xlsx", tmp_path / "r.csv"
    for out in (xlsx, csv):
        assert main([str(images), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]) == 0
    cells = [row[0] for row in openpyxl.load_workbook(xlsx)["Results"].iter_rows(min_row=2, max_col=1)]
    assert sorted(c.value for c in cells) == sorted(names) and {c.data_type for c in cells} == {"s"}
    assert sorted(pd.read_csv(csv)["file"]) == sorted(["'=1+1.jpg", "'+2.jpg", "'-3.jpg", "'@SUM(1).jpg", "plain.jpg"])


def test_file_names_with_control_characters_or_undecodable_bytes_are_shown_escaped(tiny_bundle, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(lesion_like()).save(images / "ctrl\x01char.jpg")
    try:  # a name in another encoding (Latin-1 0xFF); a file system that insists on UTF-8 refuses it
        Image.fromarray(lesion_like()).save(os.fsdecode(os.fsencode(str(images)) + b"/bad\xffname.jpg"))
    except OSError:
        pass
    odd = sorted(["ctrl\\x01char.jpg"] + (["bad\\xffname.jpg"] if len(list(images.iterdir())) == 2 else []))
    xlsx, csv, records = tmp_path / "r.xlsx", tmp_path / "r.csv", tmp_path / "records"
    assert main([str(images), "--out", str(xlsx), "--model", str(tiny_bundle), "--quiet", "--threshold", "0",
                 "--records", str(records)]) == 0  # openpyxl refused the control character: no report at all
    assert main([str(images), "--out", str(csv), "--model", str(tiny_bundle), "--quiet"]) == 0  # UTF-8 the byte
    ws = openpyxl.load_workbook(xlsx)["Results"]
    assert sorted(row[0].value for row in ws.iter_rows(min_row=2, max_col=1)) == odd == sorted(pd.read_csv(csv)["file"])
    for (cell,) in ws.iter_rows(min_row=2, max_col=1):  # the links still open the files themselves
        assert (xlsx.parent / os.fsdecode(unquote_to_bytes(cell.hyperlink.target))).is_file()
    assert len(list(records.rglob("*.pdf"))) == len(odd)


def test_a_lone_surrogate_in_a_windows_name_is_shown_escaped_in_every_report(tmp_path):
    """NTFS names are UTF-16 and may hold an unpaired surrogate, which Python keeps as it is and
    UTF-8 cannot encode: the report was lost (UnicodeEncodeError). No Linux file can be named so,
    hence the rows are built directly."""
    from screening.inference import Result
    from screening.report import RunInfo, rows, write

    name = "photo\ud800.jpg"
    df = rows([Result(source=name, error="not a readable image")], [name])
    info = RunInfo(folder="f", threshold=0.1, tta=False, model_name="m", model_version="v", model_sha256="s",
                   software_version="0", date="d", elapsed_s=1.0)
    for out in (tmp_path / "r.xlsx", tmp_path / "r.csv", tmp_path / "r.json"):
        write(df, out, info)
    assert openpyxl.load_workbook(tmp_path / "r.xlsx")["Results"]["A2"].value == "photo\\ud800.jpg"
    assert "photo\\ud800.jpg" in (tmp_path / "r.csv").read_text(encoding="utf-8")


def test_a_full_disk_is_one_line_and_the_earlier_report_stays(folder, tiny_bundle, tmp_path, capsys, monkeypatch):
    import screening.report

    def disk_full(df, path, *args):
        Path(path).write_bytes(b"PK half")
        raise OSError(28, "No space left on device", str(path))

    out = tmp_path / "r.xlsx"
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]) == 0
    earlier = out.read_bytes()
    monkeypatch.setattr(screening.report, "_write_excel", disk_full)
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--overwrite", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err
    assert out.read_bytes() == earlier and [p.name for p in tmp_path.iterdir()] == ["r.xlsx"]


def test_existing_report_is_never_overwritten_without_flag(folder, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "r.xlsx"
    out.write_bytes(b"precious")
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle)]) == 2
    assert "already exists; use --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    # not a workbook whose notes can be read (a password-protected one, say): refused before any scoring
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--overwrite"]) == 2
    assert capsys.readouterr().err == (f"screening-batch: error: {out} cannot be read as a worklist (password-"
                                       "protected, damaged, or not an Excel workbook: BadZipFile), so the notes "
                                       "written in it could not be kept; move it away or give another --out\n")
    assert out.read_bytes() == b"precious"
    openpyxl.Workbook().save(out)  # a workbook without notes is replaced
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--overwrite", "--quiet"]) == 0
    assert openpyxl.load_workbook(out).sheetnames[0] == "Results"
    assert [p.name for p in tmp_path.iterdir()] == ["r.xlsx"]  # no temporary files left
    assert out.stat().st_mode & 0o777 == 0o644 or out.stat().st_mode & 0o044  # readable like any file


def test_overwriting_a_worklist_keeps_the_readers_notes(tiny_bundle, tmp_path, capsys):
    """A clinic scores its inbox again each night with --overwrite: the notes written in the
    review column, and in columns the clinic added, went with the old workbook. Now each goes
    back to its image's row; notes on an image replaced by another of the same name, or gone,
    are kept on a sheet of their own, and go back if that image returns."""
    inbox, out = tmp_path / "inbox", tmp_path / "worklist.xlsx"
    inbox.mkdir()
    for i, name in enumerate(("IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg")):
        Image.fromarray(lesion_like(seed=i)).save(inbox / name)
    run = [str(inbox), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]
    assert main(run) == 0
    book = openpyxl.load_workbook(out)  # the dermatologist's notes, as Excel saves them
    ws = book["Results"]
    review = [c.value for c in ws[1]].index("review") + 1
    for row, text in ((2, "seen: routine"), (3, "=biopsy booked"), (4, 3)):
        ws.cell(row=row, column=review, value=text).data_type = "s" if isinstance(text, str) else "n"
    mine = ws.max_column + 1  # and columns of the clinic's own, after SkinScreen's
    unnamed = f"column {openpyxl.utils.get_column_letter(mine + 1)}"  # one typed into without a header
    for (row, column), value in {(1, mine): "action", (2, mine): "excise", (4, mine): "photo again",
                                 (3, mine + 1): "called patient", (1, mine + 2): "seen by", (1, mine + 3): "=sum"}.items():
        ws.cell(row=row, column=column, value=value).data_type = "s"
    book.save(out)
    original = (inbox / "IMG_0002.jpg").read_bytes()
    Image.fromarray(lesion_like(seed=7)).save(inbox / "IMG_0002.jpg")  # a second camera's IMG_0002
    (inbox / "IMG_0003.jpg").unlink()
    Image.fromarray(lesion_like(seed=5)).save(inbox / "IMG_0004.jpg")
    assert main([*run, "--overwrite"]) == 0
    assert capsys.readouterr().err == ("note: reviews: 1 carried over from the worklist this one replaced; 2 on the "
                                       "sheet 'Earlier reviews': of images not in this worklist, or changed since\n")
    results = pd.read_excel(out, sheet_name="Results")
    assert results["review"].tolist()[0] == "seen: routine" and results["review"][1:].isna().all()
    assert list(results.columns[-5:]) == ["sha256", "action", unnamed, "seen by", "=sum"]  # empty ones stay too
    assert results["action"].tolist()[0] == "excise" and results[["action", unnamed, "seen by"]][1:].isna().all(axis=None)
    earlier = pd.read_excel(out, sheet_name="Earlier reviews")
    assert list(earlier.columns) == ["file", "review", "action", unnamed, "seen by", "=sum", "worklist date",
                                     "sha256"]
    assert earlier["file"].tolist() == ["IMG_0002.jpg", "IMG_0003.jpg"]
    assert earlier["review"].tolist() == ["=biopsy booked", 3]  # a note that looks like a formula stays text
    assert earlier[unnamed].tolist()[0] == "called patient" and earlier["action"].tolist()[1] == "photo again"
    assert dict(pd.read_excel(out, sheet_name="Summary").values)["reviews"].startswith("1 carried over")
    (inbox / "IMG_0002.jpg").write_bytes(original)  # the first camera's image back: so is its note
    assert main([*run, "--overwrite"]) == 0
    results = pd.read_excel(out, sheet_name="Results")
    assert results["review"].tolist()[:2] == ["seen: routine", "=biopsy booked"]
    assert results["action"].tolist()[0] == "excise" and results[unnamed].tolist()[1] == "called patient"
    assert pd.read_excel(out, sheet_name="Earlier reviews")["file"].tolist() == ["IMG_0003.jpg"]
    assert main([*run[:2], str(tmp_path / "w.csv"), *run[3:]]) == 0  # another report: nothing to carry
    assert capsys.readouterr().err.count("reviews") == 2  # the two --overwrite runs' notes only


def test_a_report_open_in_another_program_is_refused_before_any_scoring(folder, tiny_bundle, tmp_path, capsys,
                                                                        monkeypatch):
    """Windows cannot replace a workbook open in Excel: found out after the scoring, before."""
    import screening.batch

    out = tmp_path / "r.xlsx"
    out.write_bytes(b"open in Excel")
    monkeypatch.setattr(screening.batch, "in_use", lambda path: "Permission denied; it may be open in Excel")
    monkeypatch.setattr(screening.batch, "_screen", lambda *a, **k: pytest.fail("scored"))
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot replace {out}: Permission denied; it may be open in Excel" in err
    assert out.read_bytes() == b"open in Excel"


@pytest.mark.parametrize("case, message", [
    ("missing", "folder not found"),
    ("empty", "no image files"),
    ("file", "not a folder or a zip file"),
    ("zip_damaged", "broken.zip: not a readable zip file (damaged)"),
    ("zip_empty", "no image files (jpg, jpeg, jfif, jpe, png, bmp"),
    ("suffix", "must end in .xlsx, .csv or .json"),
    ("out_folder", "is a folder; give a file name such as"),
    ("nodir", "does not exist"),
    ("threshold", "between 0 and 1"),
    ("prevalence", "--prevalence must be a share between 0 and 1, such as 0.05, got 5.0"),
    ("unrecorded", "does not record the share of malignant lesions it was calibrated at"),
    ("model", "not a SkinScreen model bundle"),
    ("records_full", "is not empty; use --overwrite"),
    ("records_file", "is a file; give a folder"),
    ("records_out", "is the report's own name (--out); give the records a folder of their own"),
    ("records_images", "is the folder of images; give the records a folder of their own"),
])
def test_user_errors_are_one_line(case, message, tiny_bundle, tmp_path, folder, capsys):
    src, out, extra = folder, tmp_path / "r.xlsx", ["--model", str(tiny_bundle)]
    if case == "missing":
        src = tmp_path / "nope"
    elif case == "empty":
        src = tmp_path / "empty"
        src.mkdir()
    elif case == "file":
        src = folder / "a_plain.jpg"
    elif case == "zip_damaged":
        src = tmp_path / "broken.zip"
        src.write_bytes(b"PK\x03\x04 not really")
    elif case == "zip_empty":
        src = tmp_path / "notes.zip"
        with zipfile.ZipFile(src, "w") as z:
            z.writestr("notes.txt", "no images here")
    elif case == "suffix":
        out = tmp_path / "r.pdf"
    elif case == "out_folder":  # a folder has no suffix
        out = tmp_path / "reports"
        out.mkdir()
    elif case == "nodir":
        out = tmp_path / "no" / "r.xlsx"
    elif case == "threshold":
        extra += ["--threshold", "2"]
    elif case in ("prevalence", "unrecorded"):  # 5 meant as 5%; the tiny model has no validation counts
        extra += ["--prevalence", "5" if case == "prevalence" else "0.05"]
    elif case == "model":
        extra = ["--model", str(tmp_path)]
    elif case == "records_out":  # neither exists yet: the records' folder was made, then the report failed on it
        extra += ["--records", str(out)]
    elif case == "records_images":  # each record beside its image, an earlier PDF of that name replaced
        extra += ["--records", str(folder / "."), "--overwrite"]
    elif case.startswith("records"):
        records = tmp_path / "records"
        if case == "records_full":
            records.mkdir()
            (records / "earlier.pdf").write_bytes(b"an earlier run's record")
        else:
            records.write_text("a file")
        extra += ["--records", str(records)]
    assert main([str(src), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert list(out.iterdir()) == [] if case == "out_folder" else not out.exists()
    assert not list(folder.rglob("*.pdf"))


@pytest.fixture
def locked_folder(tmp_path):
    """A folder no file can be made in: read-only for this user, or, for an administrator (whom
    permissions do not stop), Linux's /proc."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        (locked / "trial").write_bytes(b"")
    except PermissionError:
        yield locked
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("no folder that an administrator cannot write in")
        yield Path("/proc")
    locked.chmod(0o700)


@pytest.mark.parametrize("option", ["--out", "--records"])
def test_a_folder_that_cannot_be_written_is_refused_before_any_scoring(option, locked_folder, folder, tiny_bundle,
                                                                        tmp_path, capsys, monkeypatch):
    """``os.access`` passed a read-only disk for an administrator: every image was scored, then
    the report failed naming its temporary file, or each record was a warning."""
    import screening.batch

    monkeypatch.setattr(screening.batch, "_screen", lambda *a, **k: pytest.fail("scored"))
    out = locked_folder / "r.xlsx" if option == "--out" else tmp_path / "r.xlsx"
    extra = ["--records", str(locked_folder / "records")] if option == "--records" else []
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not writable (" in err and str(locked_folder) in err, err
    assert not out.exists()


def unpacked(scratch: Path) -> set[Path]:
    """The zip files unpacked in the scratch folder (which an app run at the same time uses too)."""
    return set(scratch.glob("zip-*"))


def test_a_zip_file_is_scored_like_the_folder_it_holds(folder, xlsx, tiny_bundle, tmp_path):
    """As a clinic receives images: zipped, subfolders and all; unpacked where only this user
    can read them, and gone once the report is written."""
    from screening.scratch import private_root

    archive = tmp_path / "clinic.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.rglob("*")):
            z.write(path, path.relative_to(folder).as_posix())
    out = tmp_path / "r.xlsx"
    before = unpacked(private_root())
    assert main([str(archive), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]) == 0
    assert unpacked(private_root()) == before  # nothing unpacked is left
    from_zip, from_folder = (pd.read_excel(x, sheet_name="Results") for x in (out, xlsx))
    # the same rows, zip members named by their paths, and subfolders' images too (--recursive)
    assert list(from_zip["file"]) == [*from_folder["file"], "sub/z_nested.jpg"]
    pd.testing.assert_frame_equal(from_zip.iloc[:-1][COLUMNS], from_folder[COLUMNS])
    summary = dict(pd.read_excel(out, sheet_name="Summary").values)
    assert summary["folder"] == str(archive)  # not the temporary folder it was unpacked to
    assert all(c.hyperlink is None for c in openpyxl.load_workbook(out)["Results"]["A"])  # no links to deleted files


def test_zip_files_in_a_scanned_folder_are_named_as_not_in_the_report(tiny_bundle, tmp_path, capsys):
    """A zip file beside the images was passed over without a word: its images missing from a
    worklist that looked complete. Now named (with --quiet too), and how to score it."""
    inbox = tmp_path / "inbox"
    (inbox / "visit").mkdir(parents=True)
    Image.fromarray(lesion_like()).save(inbox / "a.jpg")
    Image.fromarray(lesion_like()).save(inbox / "visit" / "lesion.jpg")
    for name in ("visit/B.ZIP", "c.zip", "d.zip", "e.zip", "._c.zip"):  # the last a Mac's: hidden, as an image would be
        with zipfile.ZipFile(inbox / name, "w") as z:
            z.writestr("x.jpg", b"not scored from here")
    out = tmp_path / "r.xlsx"
    assert main([str(inbox), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]) == 0
    assert len(pd.read_excel(out, sheet_name="Results")) == 1
    err = capsys.readouterr().err
    assert err == (f"note: the images inside 3 zip files (c.zip, d.zip, e.zip) in {inbox} are not in this report; "
                   "score each zip file on its own, named in place of the folder\n")  # a subfolder's: as its images
    summary = dict(pd.read_excel(out, sheet_name="Summary").values)  # for whoever opens the worklist later
    assert summary["not in this report"] == "the images inside 3 zip files (c.zip, d.zip, e.zip)"
    assert main([str(inbox), "--out", str(tmp_path / "r2.xlsx"), "--model", str(tiny_bundle), "--quiet",
                 "--recursive"]) == 0
    assert "inside 4 zip files (c.zip, d.zip, e.zip and 1 more) in" in capsys.readouterr().err
    (inbox / "a.jpg").unlink()  # only zip files: the refusal says where the images are
    assert main([str(inbox), "--out", str(tmp_path / "r3.xlsx"), "--model", str(tiny_bundle)]) == 2
    assert capsys.readouterr().err.endswith(f"in {inbox}; it holds 3 zip files (c.zip, d.zip, e.zip): score each zip "
                                            "file on its own, named in place of the folder\n")
    with zipfile.ZipFile(tmp_path / "outer.zip", "w") as z:  # a zip within a zip: named alike
        z.write(inbox / "c.zip", "in/c.zip")
        z.write(inbox / "._c.zip", "__MACOSX/in/._c.zip")
        z.write(inbox / "visit" / "lesion.jpg", "lesion.jpg")
    assert main([str(tmp_path / "outer.zip"), "--out", str(tmp_path / "r4.xlsx"), "--model", str(tiny_bundle)]) == 0
    assert f"note: the images inside 1 zip file (in/c.zip) in {tmp_path / 'outer.zip'} are not" in capsys.readouterr().err


def test_a_subfolder_that_cannot_be_opened_is_named_as_not_in_the_report(tiny_bundle, tmp_path, capsys, monkeypatch):
    """--recursive passed over a subfolder it may not read (Python's rglob ignores the error):
    its images missing from a worklist that looked complete. Now named, with --quiet too."""
    inbox = tmp_path / "inbox"
    for sub in ("open", "locked", "open/shut"):
        (inbox / sub).mkdir(parents=True)
        Image.fromarray(lesion_like()).save(inbox / sub / "lesion.jpg")
    listing = os.scandir

    def scandir(path):  # root reads any folder, so the refusal is the system's answer, simulated
        if Path(path).name in ("locked", "shut"):
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = tmp_path / "r.xlsx"
    assert main([str(inbox), "--out", str(out), "--model", str(tiny_bundle), "--quiet", "--recursive"]) == 0
    assert list(pd.read_excel(out, sheet_name="Results")["file"]) == ["open/lesion.jpg"]
    assert dict(pd.read_excel(out, sheet_name="Summary").values)["not in this report"] == (
        "the images in 2 subfolders (locked, open/shut), which could not be opened")
    assert capsys.readouterr().err == (
        f"note: 2 subfolders (locked, open/shut) of {inbox} could not be opened, so the images in them are not in "
        "this report; check that this account may read them (or that the network drive is there) and run it again\n")
    (inbox / "open" / "lesion.jpg").unlink()  # nothing readable: the refusal says why
    assert main([str(inbox), "--out", str(tmp_path / "r2.xlsx"), "--model", str(tiny_bundle), "--recursive"]) == 2
    assert capsys.readouterr().err.endswith("or its subfolders; 2 subfolders (locked, open/shut) could not be opened: "
                                            "check that this account may read them (or that the network drive is "
                                            "there) and run it again\n")
    monkeypatch.setattr(os, "scandir", lambda path: scandir(tmp_path / "locked"))  # the folder itself: an error
    assert main([str(inbox), "--out", str(tmp_path / "r3.xlsx"), "--model", str(tiny_bundle)]) == 2
    assert "screening-batch: error: [Errno 13] Permission denied" in capsys.readouterr().err
    assert not list(tmp_path.glob("r*.xlsx"))[1:]  # r.xlsx alone


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="folder links as Linux and macOS make them")
def test_a_linked_subfolder_is_scanned_once_and_a_link_back_up_never_loops(tmp_path):
    """rglob passed over a linked subfolder (a clinic's folder linked into the inbox) without
    a word; a link to a folder already scanned, or back up to the inbox, adds nothing."""
    from screening.batch import scan_folder

    inbox, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    for folder in (inbox / "visit", elsewhere):
        folder.mkdir(parents=True)
    for image in (inbox / "a.jpg", inbox / "visit" / "b.jpg", elsewhere / "c.jpg"):
        image.write_bytes(b"")
    (inbox / "linked").symlink_to(elsewhere, target_is_directory=True)
    (inbox / "visit" / "up").symlink_to(inbox, target_is_directory=True)
    (inbox / "visit" / "same").symlink_to(elsewhere, target_is_directory=True)
    scan = scan_folder(inbox, recursive=True)
    assert [p.relative_to(inbox).as_posix() for p in scan.images] == ["a.jpg", "linked/c.jpg", "visit/b.jpg"]
    assert scan.unreadable == []
    assert [p.name for p in scan_folder(inbox, recursive=False).images] == ["a.jpg"]


def test_a_stop_signal_ends_a_run_like_ctrl_c_and_leaves_nothing_behind(folder, tiny_bundle, tmp_path, capsys,
                                                                        monkeypatch):
    """SIGTERM (kill, a logout) while the report is written: no half report, no temporary file
    beside it, and no unpacked patient image left in the scratch folder."""
    import signal
    import time

    import screening.report
    from screening.scratch import private_root

    def stopped_midway(df, path, *args):
        Path(path).write_bytes(b"PK half")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the signal's handler interrupts this

    archive = tmp_path / "clinic.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(folder / "a_plain.jpg", "a_plain.jpg")
    out = tmp_path / "out" / "r.xlsx"
    out.parent.mkdir()
    before = unpacked(private_root())
    monkeypatch.setattr(screening.report, "_write_excel", stopped_midway)
    found = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a command starts; whatever pytest runs under
    try:
        assert main([str(archive), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]) == 130
    finally:
        signal.signal(signal.SIGTERM, found)
    assert capsys.readouterr().err.endswith("screening-batch: interrupted\n")
    assert list(out.parent.iterdir()) == [] and unpacked(private_root()) == before


def test_records_of_the_referred_images_are_linked_from_the_workbook(folder, tiny_bundle, tmp_path, capsys):
    out, records = tmp_path / "report.xlsx", tmp_path / "records"  # a threshold of 0: every readable image refers
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--recursive",
                 "--threshold", "0", "--records", str(records)]) == 0
    assert f"and {len(OK) + 1} PDF records in {records}" in capsys.readouterr().err
    made = sorted(p.relative_to(records).as_posix() for p in records.rglob("*.pdf"))
    assert made == sorted(f"{name}.pdf" for name in [*OK, "sub/z_nested.jpg"])
    assert all(p.read_bytes().startswith(b"%PDF") for p in records.rglob("*.pdf"))
    ws = openpyxl.load_workbook(out)["Results"]
    column = [c.value for c in ws[1]].index("record") + 1
    for row in range(2, ws.max_row + 1):
        name, link = ws.cell(row=row, column=1).value, ws.cell(row=row, column=column).hyperlink
        if name in BROKEN:
            assert link is None
        else:
            assert (out.parent / unquote(link.target)).resolve() == (records / f"{name}.pdf").resolve()
    assert "record" in set(pd.read_excel(out, sheet_name="About")["column"])
    assert dict(pd.read_excel(out, sheet_name="Summary").values)[RECORDS_ITEM] == f"{len(OK) + 1} in records"


def test_a_record_that_fails_is_a_warning_on_its_row_and_the_report_is_written(folder, tiny_bundle, tmp_path,
                                                                               capsys, monkeypatch):
    import screening.record

    real = screening.record.write_record

    def fails_on_one(path, *args, source_name, **kwargs):
        if source_name == OK[0]:
            raise ValueError("boom")
        real(path, *args, source_name=source_name, **kwargs)

    monkeypatch.setattr(screening.record, "write_record", fails_on_one)
    out, records = tmp_path / "report.xlsx", tmp_path / "records"
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--threshold", "0",
                 "--records", str(records), "--quiet"]) == 0
    assert f"warning: {OK[0]}: PDF record not written (ValueError: boom)" in capsys.readouterr().err
    df = pd.read_excel(out).set_index("file")
    assert "PDF record not written (ValueError: boom)" in df.loc[OK[0], "warnings"] and pd.isna(df.loc[OK[0], "record"])
    assert df.loc[OK[1], "record"] == "PDF" and len(list(records.rglob("*.pdf"))) == len(OK) - 1
    assert dict(pd.read_excel(out, sheet_name="Summary").values)[RECORDS_ITEM] == f"{len(OK) - 1} in records"


def test_a_full_disk_ends_the_records_in_one_warning_and_each_row_says_so(folder, tiny_bundle, tmp_path, capsys,
                                                                           monkeypatch):
    """Every record after the disk filled would fail the same way: one warning, not one per row."""
    import screening.record
    from screening.files import write_atomically

    real, tried = screening.record.write_record, []

    def disk_fills(path, *args, **kwargs):
        tried.append(path)
        if len(tried) == 1:
            return real(path, *args, **kwargs)
        write_atomically(path, lambda tmp: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))

    monkeypatch.setattr(screening.record, "write_record", disk_fills)
    out, records = tmp_path / "report.xlsx", tmp_path / "records"
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--threshold", "0",
                 "--records", str(records), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and len(tried) == 2
    assert "No space left on device (the disk is full" in err and "no further records are written" in err
    df = pd.read_excel(out)
    referred = df[df.status == "ok"]
    assert (referred.record == "PDF").sum() == 1 and len(list(records.rglob("*.pdf"))) == 1
    assert referred[referred.record != "PDF"].warnings.str.contains("PDF record not written").all()


def free_space(monkeypatch, free: int) -> None:
    """Make every disk seem to have ``free`` bytes left."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 * free, 9 * free, free))


def test_a_disk_without_room_for_the_report_is_said_before_any_scoring(folder, tiny_bundle, tmp_path, capsys,
                                                                       monkeypatch):
    from screening.batch import report_room, scan_folder
    from screening.inference import Screener

    monkeypatch.setattr(Screener, "score", lambda *a, **k: pytest.fail("scored, to find out only then"))
    images = len(scan_folder(folder, recursive=False).images)
    free_space(monkeypatch, report_room(images, thumbnails=True) - 1)
    out = tmp_path / "r.xlsx"
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--thumbnails", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"not enough free space for the report of {images} images in {tmp_path}" in err
    assert "MB needed; free some space or write it to another disk" in err and not out.exists()


def test_records_leave_the_room_the_report_needs(folder, tiny_bundle, tmp_path, capsys, monkeypatch):
    """Records are written before the report: on one disk they must not take its room."""
    from screening.batch import ROOM, report_room, scan_folder

    images = len(scan_folder(folder, recursive=False).images)
    free_space(monkeypatch, report_room(images, thumbnails=False) + ROOM["record"] - 1)
    out, records = tmp_path / "report.xlsx", tmp_path / "records"
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--threshold", "0",
                 "--records", str(records), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "not enough free space for a record and the report" in err
    referred = pd.read_excel(out).query("status == 'ok'")
    assert referred.record.isna().all() and referred.warnings.str.contains("PDF record not written").all()
    assert not list(records.rglob("*.pdf"))


def test_a_dicom_export_is_scored_like_the_images_themselves(tiny_bundle, tmp_path):
    """As a PACS or viewer exports to a USB stick: files named without a suffix (or by a UID)
    beside a DICOMDIR index, and a greyscale series that is not for SkinScreen."""
    src = tmp_path / "export"
    (src / "DICOM" / "PAT1").mkdir(parents=True)
    Image.fromarray(lesion_like()).save(src / "photo.jpg")
    write_dicom(src / "DICOM" / "PAT1" / "IM0001", lesion_like(), PatientID="12345", StudyDate="20261120",
                BodyPartExamined="FOREARM", ImageLaterality="L")
    write_dicom(src / "DICOM" / "PAT1" / "1.2.826.0.1.3680043.8.498.1", lesion_like(), syntax="jpeg")
    write_dicom(src / "DICOM" / "PAT1" / "IM0002", lesion_like()[..., 0], modality="CR", StudyDate="20261120")
    write_dicom(src / "lesion.DCM", lesion_like())  # found whatever the case
    (src / "DICOMDIR").write_bytes(bytes(128) + b"DICM" + bytes(64))  # the index: no picture, no row
    (src / "notes.txt").write_bytes(bytes(200))
    out = tmp_path / "r.csv"
    assert main([str(src), "--out", str(out), "--model", str(tiny_bundle), "--recursive", "--quiet"]) == 0
    df = pd.read_csv(out).set_index("file")
    assert main([str(src), "--out", str(tmp_path / "r.xlsx"), "--model", str(tiny_bundle), "--recursive", "--quiet"]) == 0
    dicom_column = openpyxl.utils.get_column_letter(COLUMNS.index("dicom") + 1)
    assert not openpyxl.load_workbook(tmp_path / "r.xlsx")["Results"].column_dimensions[dicom_column].hidden
    assert list(df.index) == ["DICOM/PAT1/1.2.826.0.1.3680043.8.498.1", "DICOM/PAT1/IM0001", "DICOM/PAT1/IM0002",
                              "lesion.DCM", "photo.jpg"]
    assert (df.drop("DICOM/PAT1/IM0002").status == "ok").all()
    assert "greyscale DICOM image (MONOCHROME2, modality CR)" in df.loc["DICOM/PAT1/IM0002", "error"]
    # IM0001 says nothing of whose it is: the header does, on the row (refused ones too)
    assert df.loc["DICOM/PAT1/IM0001", "dicom"] == "patient 12345; 2026-11-20; forearm, left"
    assert df.loc["DICOM/PAT1/IM0002", "dicom"] == "patient TEST-0001; 2026-11-20"
    assert pd.isna(df.loc["photo.jpg", "dicom"])
    from screening.report import triage

    shown = triage(pd.read_csv(out).fillna({"dicom": "", "warnings": "", "error": ""}))["file"]  # the app's on-page worklist
    assert "DICOM/PAT1/IM0001 (patient 12345; 2026-11-20; forearm, left)" in list(shown) and "photo.jpg" in list(shown)


def test_a_dicom_files_record_says_whose_image_it_is(tiny_bundle, tmp_path):
    src = tmp_path / "DICOM" / "PAT1"
    src.mkdir(parents=True)
    write_dicom(src / "IM0001", lesion_like(), PatientID="12345", StudyDate="20261120", BodyPartExamined="BACK")
    out, records = tmp_path / "r.json", tmp_path / "records"
    assert main([str(tmp_path / "DICOM"), "--out", str(out), "--model", str(tiny_bundle), "--recursive",
                 "--threshold", "0", "--records", str(records), "--quiet"]) == 0
    assert "DICOM header: patient 12345; 2026-11-20; back" in pdf_text(records / "PAT1" / "IM0001.pdf")
    assert json.loads(out.read_text())["results"][0]["dicom"] == "patient 12345; 2026-11-20; back"


def test_thin_entry_point_runs(tiny_bundle, folder, tmp_path):
    out = tmp_path / "r.csv"
    proc = subprocess.run([sys.executable, str(ROOT / "batch.py"), str(folder), "--out", str(out), "--model",
                           str(tiny_bundle)], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "not a medical device" in proc.stderr
    assert len(pd.read_csv(out)) == len(OK) + len(BROKEN)


def test_progress_is_reported_after_every_image(tiny_bundle, folder, tmp_path):
    from screening.batch import scan_folder, screen_files
    from screening.inference import Screener

    paths, seen = scan_folder(folder, recursive=False).images, []
    screen_files(Screener(tiny_bundle, threshold=0.0), paths, folder, tmp_path / "r.csv", records=tmp_path / "pdf",
                 on_progress=lambda *a: seen.append(a))  # a threshold of 0: every readable image gets a record
    assert seen == ([(i, len(paths), "scoring") for i in range(1, len(paths) + 1)]
                    + [(i, len(OK), "records") for i in range(1, len(OK) + 1)])


@pytest.mark.parametrize("progress", [True, False])
def test_progress_true_shows_every_bar_and_false_none_wherever_the_output_goes(tiny_bundle, folder, tmp_path,
                                                                                capfd, progress):
    from screening.batch import scan_folder, screen_files
    from screening.inference import Screener

    screen_files(Screener(tiny_bundle, threshold=0.0), scan_folder(folder, recursive=False).images, folder,
                 tmp_path / "r.xlsx", records=tmp_path / "pdf", thumbnails=True, progress=progress)
    err = capfd.readouterr().err
    bars = [label for label in ("scoring [", "records [", "previews [") if label in err]
    assert bars == (["scoring [", "records [", "previews ["] if progress else [])  # captured: not a terminal


def test_summary_says_what_the_threshold_did_on_held_out_images():
    figures = {"where": "HAM10000 images of its hold-out test split", "images": 982, "sensitivity": 0.9,
               "specificity": 0.75}
    assert operating_point_text(figures) == (
        "referred 90.0% of malignant and 25.0% of benign lesions among 982 HAM10000 images of its hold-out test "
        "split, used neither to train the model nor to choose the threshold; expect other figures on other images")
    assert operating_point_text(None).startswith("not known")


def test_phone_heic_files_are_found_and_scored(tiny_bundle, tmp_path):
    pytest.importorskip("pi_heif", reason="HEIC needs the optional pi-heif package (the test extra installs it)")
    (tmp_path / "in").mkdir()
    shutil.copy(HEIC, tmp_path / "in" / "IMG_0001.HEIC")
    assert main([str(tmp_path / "in"), "--out", str(tmp_path / "r.csv"), "--model", str(tiny_bundle), "--quiet"]) == 0
    row = pd.read_csv(tmp_path / "r.csv").iloc[0]
    assert (row["file"], row["status"], row["width"], row["height"]) == ("IMG_0001.HEIC", "ok", 200, 150)


def test_triage_reads_refer_first_by_risk_then_routine_then_unreadable():
    from screening.inference import Result
    from screening.report import rows, triage

    probs = dict.fromkeys(CLASS_CODES, 1 / 7)
    results = [Result("a.jpg", probs, 0.05, False), Result("b.jpg", error="not a readable image"),
               Result("c.jpg", probs, 0.40, True, warnings=["very blurry"]), Result("d.jpg", probs, 0.90, True),
               Result("e.jpg", probs, 0.01, False)]
    table = triage(rows(results, [r.source for r in results]))
    assert list(table["file"]) == ["d.jpg", "c.jpg", "a.jpg", "e.jpg", "b.jpg"]
    assert list(table["flag"]) == ["REFER", "REFER", "routine", "routine", "not read"]
    assert list(table["malignancy probability"])[:2] == ["90.0%", "40.0%"]
    assert table.loc[1, "notes"] == "very blurry" and table.loc[4, "notes"] == "not a readable image"


def test_version_names_the_software_and_the_packaged_model(capsys):
    from screening import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and out.startswith(f"SkinScreen {__version__} (Keras ") and "packaged model: " in out


def test_avif_pictures_are_found_and_scored(tiny_bundle, tmp_path):
    """AVIF, which Pillow reads (12.x wheels), was passed over unseen: not in the suffix list."""
    from PIL import features

    if not features.check_module("avif"):
        pytest.skip("this Pillow was built without AVIF")
    Image.fromarray(lesion_like()).save(tmp_path / "web.AVIF", "AVIF")
    out = tmp_path / "r.csv"
    assert main([str(tmp_path), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]) == 0
    assert pd.read_csv(out)[["file", "status"]].values.tolist() == [["web.AVIF", "ok"]]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")
def test_a_named_pipe_in_the_folder_is_passed_over_not_opened(tmp_path):
    """Looking for DICOM files by their marker must not open a pipe: it would wait forever."""
    import threading

    from screening.batch import scan_folder

    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link").symlink_to(tmp_path / "pipe")
    Image.fromarray(lesion_like()).save(tmp_path / "photo.jpg")
    found = []
    search = threading.Thread(target=lambda: found.append(scan_folder(tmp_path, recursive=False).images), daemon=True)
    search.start()
    search.join(10)
    if search.is_alive():  # release it: a writer opening the pipe ends the reader's wait
        os.close(os.open(tmp_path / "pipe", os.O_WRONLY | os.O_NONBLOCK))
    assert found == [[tmp_path / "photo.jpg"]]


def test_a_jpeg_saved_from_a_browser_on_windows_gets_a_row(tiny_bundle, tmp_path):
    """Edge and Chrome on Windows save a JPEG as .jfif: such a file was passed over unsaid."""
    for name in ("saved.jfif", "old.JPE"):
        Image.fromarray(lesion_like()).save(tmp_path / name, "JPEG")
    out = tmp_path / "out" / "r.xlsx"
    out.parent.mkdir()
    assert main([str(tmp_path), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]) == 0
    df = pd.read_excel(out, sheet_name="Results")
    assert list(df["file"]) == ["old.JPE", "saved.jfif"] and set(df["status"]) == {"ok"}


def test_only_files_named_as_dicom_exports_are_opened_to_look_for_the_marker(tmp_path, monkeypatch):
    from screening import dicom
    from screening.batch import scan_folder

    for name in ("IM0001", "1.2.826.0.1.3680043.15", "minutes.pdf", "letter.docx", "DICOMDIR"):
        (tmp_path / name).write_bytes(bytes(128) + b"DICM")
    opened = []
    monkeypatch.setattr(dicom, "has_marker", lambda p: opened.append(p.name) or True)
    assert [p.name for p in scan_folder(tmp_path, recursive=False).images] == ["1.2.826.0.1.3680043.15", "IM0001"]
    assert sorted(opened) == ["1.2.826.0.1.3680043.15", "IM0001"]  # not each document of a shared folder


def test_the_summary_says_which_malignant_share_the_probabilities_hold_for(tiny_bundle, tmp_path):
    from tests.conftest import with_validation_mix

    bundle = with_validation_mix(tiny_bundle, tmp_path / "bundle")
    Image.fromarray(lesion_like()).save(tmp_path / "a.jpg")
    items = []
    for prevalence in ([], ["--prevalence", "0.05"]):
        out = tmp_path / f"r{len(items)}.xlsx"
        assert main([str(tmp_path), "--out", str(out), "--model", str(bundle), "--quiet", *prevalence]) == 0
        items.append(dict(pd.read_excel(out, sheet_name="Summary").values))
    assert items[0]["malignancy probability"] == "for a malignant share of 20.0%, as among its validation images"
    assert items[1]["malignancy probability"] == ("converted to a malignant share of 5.0% (--prevalence; validation "
                                                  "images: 20.0%)")
    assert items[1]["flagged REFER"] == items[0]["flagged REFER"]
    assert items[1][OPERATING_POINT_ITEM] == items[0][OPERATING_POINT_ITEM]  # still known: same decisions
    assert items[0][OPERATING_POINT_ITEM].startswith(  # the held-out figures, not validation's (91%, 30%)
        "referred 88.0% of malignant and 25.0% of benign lesions among 1,234 HAM10000 images of its hold-out test "
        "split, used neither to train the model nor to choose the threshold")


def test_a_json_report_carries_the_summary_a_csv_leaves_behind(folder, tiny_bundle, tmp_path):
    import json

    out = tmp_path / "r.json"
    assert main([str(folder), "--out", str(out), "--model", str(tiny_bundle), "--quiet"]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))  # strict JSON: no NaN
    csv = tmp_path / "r.csv"
    assert main([str(folder), "--out", str(csv), "--model", str(tiny_bundle), "--quiet"]) == 0
    rows = pd.read_csv(csv)
    assert [r["file"] for r in report["results"]] == list(rows["file"])
    broken = next(r for r in report["results"] if r["status"] == "error")
    assert broken["malignancy_probability"] is None and broken["error"]
    first = report["results"][0]  # which image each row is, whatever becomes of its name
    assert first["sha256"] == hashlib.sha256((folder / first["file"]).read_bytes()).hexdigest()
    assert report["summary"]["model"] == "tiny-test-model" and report["summary"]["images found"] == len(rows)
    assert report["summary"]["referral threshold (malignancy probability)"] == 0.3
    assert main([str(folder), "--out", str(tmp_path / "t.json"), "--thumbnails"]) == 2  # previews need a workbook
    with_records = tmp_path / "w.json"  # every readable image referred: each row names its PDF, from the report
    assert main([str(folder), "--out", str(with_records), "--model", str(tiny_bundle), "--threshold", "0",
                 "--records", str(tmp_path / "records"), "--quiet"]) == 0
    for row in json.loads(with_records.read_text(encoding="utf-8"))["results"]:
        assert (row["status"] == "ok") == ("record" in row)
        assert row["status"] != "ok" or (tmp_path / row["record"]).read_bytes().startswith(b"%PDF")

