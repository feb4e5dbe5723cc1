"""The batch worklist: rows from ``Result``s, written as Excel (formatted) or CSV, atomically
(:mod:`screening.files`)."""

from __future__ import annotations

import io
import json
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from screening import reviews
from screening.files import write_atomically
from screening.inference import Result, Screener
from screening.info import CLASS_CODES, CLASS_NAMES, MALIGNANT, NOTICE

PROB_COLUMNS = [f"p_{c}" for c in CLASS_CODES]
COLUMNS = ["file", "status", "predicted_class", "predicted_label", "confidence", "malignancy_probability", "flag",
           *PROB_COLUMNS, "width", "height", "warnings", "error", "dicom"]
PERCENT_COLUMNS = ["confidence", "malignancy_probability", *PROB_COLUMNS]

RECORDS_ITEM = "PDF records (folder relative to this workbook)"
LEFT_OUT_ITEM = "not in this report"

COLUMN_HELP = {
    "file": "Image path relative to the scanned folder; in batch.py's workbook a link that opens the image.",
    "status": "ok: scored; error: the file could not be read (see error).",
    "predicted_class": "Most probable diagnosis code (legend below).",
    "predicted_label": "Full name of predicted_class.",
    "confidence": ("Probability of predicted_class, temperature-scaled only: rougher than malignancy_probability "
                   "(MODEL_CARD.md, Calibration)."),
    "malignancy_probability": ("Probability of mel, bcc or akiec: p(mel) + p(bcc) + p(akiec), calibrated on its own "
                               "(so it can differ from the sum of those p_ columns)."),
    "flag": "REFER when malignancy_probability >= the threshold on the Summary sheet, else routine.",
    **{f"p_{c}": f"Probability of {c} ({CLASS_NAMES[c]}), temperature-scaled only." for c in CLASS_CODES},
    "width": "Image width in pixels (after EXIF rotation).",
    "height": "Image height in pixels (after EXIF rotation).",
    "warnings": "Reasons to trust this result less: very small, very blurry, unusually low confidence, "
                "unlike the dermoscopy training images, only the centre square of a wide picture assessed.",
    "error": "Why the file could not be scored (status error).",
    "dicom": ("A DICOM file's patient ID, study date and body site, from its header, to match the row to the "
              "patient (its file name, such as IM0001, does not); empty for other images."),
    "review": ("For the reader's decision or notes (Excel only). SkinScreen writes none; batch.py --overwrite "
               "carries each, and those in columns you add after the last, to the same image in the new worklist "
               f"(the rest: sheet '{reviews.SHEET}')."),
    "record": "A link to the referred image's one-page PDF record (with --records).",
    "thumbnail": "A small preview of the image (with --thumbnails).",
    reviews.HASH: ("Hidden: the SHA-256 of the file's bytes (what sha256sum prints), which image the row is, "
                   "whatever its name; the reader's notes follow it."),
}


@dataclass
class RunInfo:
    """What the Summary sheet says about the run."""

    folder: str
    threshold: float
    tta: bool
    model_name: str
    model_version: str
    model_sha256: str
    software_version: str
    date: str
    elapsed_s: float
    held_out: dict | None = None  # Screener.held_out
    calibration: str = ""  # calibration_text
    records: str = ""  # with --records: how many PDF records, and where from the workbook
    left_out: str = ""  # what the scan passed over (zip files, subfolders it could not open)
    reviews: str = ""  # notes carried over from the worklist this one replaces (reviews.summary_text)


def shown(text: str) -> str:
    """Text as a report can hold it: the undecodable bytes of a file name and control characters
    written as ``\\xNN``, as ``ls -b`` shows them. UTF-8 cannot hold the first, openpyxl refuses
    the second, and either used to lose the whole report. A lone surrogate that stands for no
    byte (a Windows name may hold one) is written as ``\\udNNN``."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" else c for c in text)


def rows(results: Sequence[Result], names: Sequence[str], dicom: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per result, columns exactly ``COLUMNS``; ``dicom``, each file's
    :func:`screening.dicom.identification` ("" for other images)."""
    records = []
    for name, r, ident in zip(names, results, dicom or [""] * len(results)):
        rec = {"file": shown(name), "status": "ok" if r.ok else "error", "error": shown(r.error or ""),
               "dicom": shown(ident)}
        if r.ok:
            rec.update(predicted_class=r.predicted_class, predicted_label=r.predicted_label, confidence=r.confidence,
                       malignancy_probability=r.malignancy_probability, flag="REFER" if r.refer else "routine",
                       width=r.width, height=r.height, warnings=shown("; ".join(r.warnings)),  # may name a path
                       **{f"p_{c}": r.probabilities[c] for c in CLASS_CODES})
        records.append(rec)
    return pd.DataFrame.from_records(records, columns=COLUMNS)


THRESHOLD_ITEM = "referral threshold (malignancy probability)"
OPERATING_POINT_ITEM = "what the threshold did on held-out images"
ROW_HEIGHT = 15  # points, one line of the default font


def operating_point_text(held_out: dict | None) -> str:
    """What REFER means in practice: the share of malignant and benign lesions the threshold
    referred on images used neither to train the model nor to choose the threshold."""
    if held_out is None:
        return ("not known (a threshold or TTA setting other than the model's own, or a model not yet measured on "
                "images held out from its training and threshold)")
    return (f"referred {held_out['sensitivity']:.1%} of malignant and {1 - held_out['specificity']:.1%} of benign "
            f"lesions among {held_out['images']:,} {held_out['where']}, used neither to train the model nor to choose "
            "the threshold; expect other figures on other images")


CALIBRATION_ITEM = "malignancy probability"


def calibration_text(screener: Screener) -> str:
    """The share of malignant lesions the screener's malignancy probability holds for, wherever
    it is shown: the same image is less likely malignant where malignant lesions are rarer."""
    calibrated_share, prevalence = screener.calibrated_share, screener.prevalence
    if prevalence is not None:
        return f"converted to a malignant share of {prevalence:.1%} (--prevalence; validation images: {calibrated_share:.1%})"
    if calibrated_share is None:
        return "for the malignant share of its validation images"
    return f"for a malignant share of {calibrated_share:.1%}, as among its validation images"


MALIGNANCY_MEANING = ("melanoma, basal cell carcinoma or actinic keratosis/intraepithelial carcinoma; calibrated on "
                      "its own")  # what the malignancy probability is, wherever it is shown


def recommendation(r: Result, threshold: float) -> tuple[str, str]:
    """The flag and the sentence that goes with it, as the app and the PDF record say them."""
    pct, thr = r.malignancy_probability * 100, threshold * 100
    if r.refer:
        return "REFER", (f"The malignancy probability ({pct:.1f}%) is at or above the referral threshold of "
                         f"{thr:.1f}%. Arrange a review by a dermatologist.")
    return "routine", (f"The malignancy probability ({pct:.1f}%) is below the referral threshold of {thr:.1f}%. "
                       "This does not rule out cancer; clinical judgement decides.")


def tally(df: pd.DataFrame) -> str:
    """One line for the end of a run: how many images, referred, routine, unread."""
    refer, ok = int((df["flag"] == "REFER").sum()), int((df["status"] == "ok").sum())
    return (f"{len(df)} image{'' if len(df) == 1 else 's'}: {refer} REFER, {ok - refer} routine, "
            f"{len(df) - ok} could not be read")


def summary(df: pd.DataFrame, info: RunInfo) -> pd.DataFrame:
    ok = df[df["status"] == "ok"]
    n_ok = len(ok)
    items: list[tuple[str, object]] = [
        ("images found", len(df)),
        ("scored", n_ok),
        ("errors", int((df["status"] == "error").sum())),
        ("flagged REFER", int((ok["flag"] == "REFER").sum())),
        ("routine", int((ok["flag"] == "routine").sum())),
    ]
    items += [(f"predicted {c} ({CLASS_NAMES[c]})", int((ok["predicted_class"] == c).sum())) for c in CLASS_CODES]
    items += [
        (THRESHOLD_ITEM, info.threshold),
        (OPERATING_POINT_ITEM, operating_point_text(info.held_out)),
        *([(CALIBRATION_ITEM, info.calibration)] if info.calibration else []),
        ("test-time augmentation", "on" if info.tta else "off"),
        ("folder", shown(info.folder)),
        *([(LEFT_OUT_ITEM, shown(info.left_out))] if info.left_out else []),
        *([(reviews.ITEM, info.reviews)] if info.reviews else []),
        *([(RECORDS_ITEM, shown(info.records))] if info.records else []),
        ("model", info.model_name),
        ("model version", info.model_version),
        ("model sha256", info.model_sha256),
        ("software version", info.software_version),
        ("date", info.date),
        ("elapsed (s)", round(info.elapsed_s, 2)),
        ("images/s", round(len(df) / info.elapsed_s, 2) if info.elapsed_s > 0 else ""),
        ("notice", NOTICE),
    ]
    return pd.DataFrame(items, columns=["item", "value"])


def triage(df: pd.DataFrame) -> pd.DataFrame:
    """The worklist in reading order for a page: REFER by falling malignancy probability, then
    routine ones, then files that could not be read; a few columns, as text."""
    rank = df["flag"].map({"REFER": 0, "routine": 1}).fillna(2)
    order = df.assign(rank=rank).sort_values(["rank", "malignancy_probability"], ascending=[True, False], kind="stable")
    ok = order["status"] == "ok"
    return pd.DataFrame({
        "file": order["file"].where(order["dicom"] == "", order["file"] + " (" + order["dicom"] + ")"),
        "flag": order["flag"].where(ok, "not read"),
        "malignancy probability": order["malignancy_probability"].map("{:.1%}".format).where(ok, ""),
        "most likely": order["predicted_label"].where(ok, ""),
        "notes": order["warnings"].where(ok, order["error"]).fillna(""),
    }).reset_index(drop=True)


def excel_extras(thumbnails: bool, records: bool = False, hashes: bool = False) -> list[str]:
    """Columns the workbook adds after ``COLUMNS``: a blank one for the reader, then links to
    the PDF records, previews, and each file's SHA-256."""
    return ["review", *(["record"] if records else []), *(["thumbnail"] if thumbnails else []),
            *([reviews.HASH] if hashes else [])]


OWN_COLUMNS = [*COLUMNS, *excel_extras(thumbnails=True, records=True, hashes=True)]  # any other: the reader's


def about(thumbnails: bool, records: bool = False, hashes: bool = False) -> pd.DataFrame:
    cols = COLUMNS + excel_extras(thumbnails, records, hashes)
    items = [("NOTICE", NOTICE), ("", "")]
    items += [(c, COLUMN_HELP[c]) for c in cols]
    items += [("", ""), ("class legend", "")]
    items += [(c, CLASS_NAMES[c] + (" (malignant)" if c in MALIGNANT else "")) for c in CLASS_CODES]
    return pd.DataFrame(items, columns=["column", "meaning"])


def write(df: pd.DataFrame, out: Path, info: RunInfo, thumbnails: dict[int, bytes] | None = None,
          images: Sequence[Path] | None = None, records: dict[int, Path] | None = None,
          notes: pd.DataFrame | None = None, hashes: Sequence[str] | None = None) -> None:
    """Write CSV or Excel (by suffix), never leaving a half-written or clobbered report. In the
    workbook, with ``images`` (one per row) each file name links to its image, with ``records``
    (row -> PDF) a ``record`` column links to the PDF records, ``hashes`` (one per row) fill
    a ``sha256`` column, and ``notes`` (``reviews.read`` of the worklist it replaces) go back to
    their images' rows (by name and hash) or to a sheet of their own, the columns the reader
    added after SkinScreen's; ``info.reviews`` is set to say how many went where, for the Summary
    sheet and the caller."""
    if out.suffix.lower() == ".csv":
        # with a byte-order mark: Excel reads a CSV without one in the computer's legacy code page,
        # and "Müller.jpg" showed as "MÃ¼ller.jpg"; the hashes as in the workbook's (hidden) column
        table = defuse_formulas(df if hashes is None else df.assign(**{reviews.HASH: hashes}))
        write_atomically(out, lambda tmp: table.to_csv(tmp, index=False, encoding="utf-8-sig"))
    elif out.suffix.lower() == ".json":
        relative = {i: Path(os.path.relpath(pdf, out.parent)).as_posix() for i, pdf in (records or {}).items()}
        write_atomically(out, lambda tmp: tmp.write_text(as_json(df, info, relative, hashes), encoding="utf-8"))
    else:
        links = [link_to(image, out.parent) for image in images] if images is not None else None
        pdfs = {i: link_to(pdf, out.parent) for i, pdf in records.items()} if records is not None else None
        carried, kept = {}, None
        added = [c for c in reviews.reader_columns(notes) if c != "review"] if notes is not None else []
        if notes is not None and len(notes):
            carried, kept = reviews.carry(df["file"], hashes or [""] * len(df), notes)
            info.reviews = reviews.summary_text(len(carried), len(kept))
        write_atomically(out, lambda tmp: _write_excel(df, tmp, info, thumbnails, links, pdfs, carried, kept, hashes,
                                                       added))


def as_json(df: pd.DataFrame, info: RunInfo, records: dict[int, str] | None = None,
            hashes: Sequence[str] | None = None) -> str:
    """The report for another program: ``{"summary": {...}, "results": [...]}``, the Summary
    sheet's items (model, threshold, malignant share...) beside the rows, which a CSV leaves
    behind; missing values are null; ``records`` (row -> path relative to the report) gives a
    row its PDF record, and ``hashes`` each row its file's SHA-256 (which image it is, for a
    program that files the results away)."""
    rows = json.loads(df.to_json(orient="records", force_ascii=False))
    for row, digest in zip(rows, hashes or ()):
        row[reviews.HASH] = digest
    for i, path in (records or {}).items():
        rows[i]["record"] = path
    items = json.loads(summary(df, info).to_json(orient="values", force_ascii=False))
    return json.dumps({"summary": dict(items), "results": rows}, ensure_ascii=False, indent=1) + "\n"


FORMULA_STARTS = ("=", "+", "-", "@")  # a tab or return cannot start a cell: shown() wrote them as \x09, \x0d


def defuse_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Text that a spreadsheet would run as a formula (a file named ``=1+1.jpg`` shows as
    #NAME?; a crafted name can build a link that sends the row away) gets a leading apostrophe,
    as OWASP advises for CSV. Numbers are left alone."""
    return df.map(lambda v: f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v)


def link_to(image: Path, folder: Path) -> str:
    """A hyperlink target for ``image`` from a workbook in ``folder``: relative, so the link
    survives moving the report and the images together; absolute across Windows drives."""
    try:
        relative = Path(os.path.relpath(Path(image).resolve(), Path(folder).resolve())).as_posix()
        return quote(os.fsencode(relative))  # the name's own bytes, even where they are not UTF-8
    except ValueError:  # another drive
        return Path(image).resolve().as_uri()


def _write_excel(df: pd.DataFrame, path: Path, info: RunInfo, thumbnails: dict[int, bytes] | None,
                 links: list[str] | None = None, records: dict[int, str] | None = None,
                 carried: dict[int, dict[str, object]] | None = None, kept: pd.DataFrame | None = None,
                 hashes: Sequence[str] | None = None, added: Sequence[str] = ()) -> None:
    from openpyxl.drawing.image import Image as XLImage
    from openpyxl.formatting.rule import FormulaRule
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        df.to_excel(writer, sheet_name="Results", index=False)
        summary(df, info).to_excel(writer, sheet_name="Summary", index=False)
        about(bool(thumbnails), records is not None, hashes is not None).to_excel(writer, sheet_name="About",
                                                                                  index=False)
        if kept is not None and len(kept):
            kept.to_excel(writer, sheet_name=reviews.SHEET, index=False)
        book = writer.book
        ws = book["Results"]
        ws.freeze_panes = "B2"
        for sheet in book.worksheets:
            for cell in (c for row in sheet.iter_rows() for c in row if c.data_type == "f"):
                cell.data_type = "s"  # openpyxl makes any text starting with "=" a formula: keep it text
            # printing / PDF: all columns on one page width, header on every page
            sheet.page_setup.orientation = "landscape" if sheet is ws else "portrait"
            sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight = 1, 0
            sheet.sheet_properties.pageSetUpPr.fitToPage = True
            sheet.print_title_rows = "1:1"
        last = ws.max_row
        for j, col in enumerate(COLUMNS, start=1):
            letter = get_column_letter(j)
            ws[f"{letter}1"].font = Font(bold=True)
            if col in PERCENT_COLUMNS:
                for (cell,) in ws[f"{letter}2:{letter}{last}"] if last > 1 else []:
                    cell.number_format = "0.0%"
            texts = [] if col in PERCENT_COLUMNS else [str(v) for v in df[col].head(500)]
            width = max([len(col), 7] + [len(t) for t in texts]) + 2
            ws.column_dimensions[letter].width = min(max(width, 9), 60)
            # a folder without DICOM files: an empty column kept for scripts, out of a reader's way
            ws.column_dimensions[letter].hidden = col == "dicom" and not df[col].fillna("").astype(bool).any()
            if col == "flag":  # apart from the right-aligned percentage before it
                for (cell,) in ws[f"{letter}1:{letter}{last}"]:
                    cell.alignment = Alignment(horizontal="center")
        for row, target in enumerate(links or [], start=2):  # a click opens the image in the system's viewer
            cell = ws.cell(row=row, column=1)
            cell.hyperlink, cell.style = target, "Hyperlink"
        extras = excel_extras(bool(thumbnails), records is not None, hashes is not None)
        at = {name: j for j, name in enumerate([*COLUMNS, *extras, *added], start=1)}  # each column's number
        for name in [*extras, *added]:
            letter = get_column_letter(at[name])
            ws[f"{letter}1"] = name
            ws[f"{letter}1"].font = Font(bold=True)
            ws[f"{letter}1"].data_type = "s"  # a reader's header "=total" stays text, as the notes do
            ws.column_dimensions[letter].width = {reviews.HASH: 66, "record": 12, "thumbnail": 12}.get(name, 30)
        if hashes is not None:  # hidden as the empty dicom column is: for matching, not reading; not printed
            ws.column_dimensions[get_column_letter(at[reviews.HASH])].hidden = True
            for i, digest in enumerate(hashes):
                ws.cell(row=i + 2, column=at[reviews.HASH], value=digest)
        for i, notes in (carried or {}).items():
            for name, note in notes.items():
                cell = ws.cell(row=i + 2, column=at[name], value=note)
                if cell.data_type == "f":  # a note that starts with "=" stays the text the reader wrote
                    cell.data_type = "s"
        if records:
            for i, target in records.items():
                cell = ws.cell(row=i + 2, column=at["record"], value="PDF")
                cell.hyperlink, cell.style = target, "Hyperlink"
        if thumbnails:
            previews = get_column_letter(at["thumbnail"])
            # each row's cells beside its preview, not under it at the default bottom; ws[row] would
            # measure the whole sheet for each row (10,015 previews: two of the report's four minutes)
            middle = {}
            for i, png in thumbnails.items():
                ws.row_dimensions[i + 2].height = 60
                for cell in next(ws.iter_rows(min_row=i + 2, max_row=i + 2, max_col=len(at))):
                    across = cell.alignment.horizontal
                    cell.alignment = middle.get(across) or middle.setdefault(
                        across, Alignment(horizontal=across, vertical="center"))
                ws.add_image(XLImage(io.BytesIO(png)), f"{previews}{i + 2}")
        corner = f"{get_column_letter(len(at))}{max(last, 2)}"  # the table's bottom right
        ws.auto_filter.ref = f"A1:{corner}"
        flag = get_column_letter(COLUMNS.index("flag") + 1)
        status = get_column_letter(COLUMNS.index("status") + 1)
        # Conditional formats follow the rows when a user sorts or filters.
        ws.conditional_formatting.add(f"A2:{corner}", FormulaRule(
            formula=[f'${flag}2="REFER"'], font=Font(bold=True, color="9C0006"), fill=PatternFill("solid", fgColor="FFC7CE")))
        ws.conditional_formatting.add(f"A2:{corner}", FormulaRule(
            formula=[f'${status}2="error"'], font=Font(color="7F7F7F"), fill=PatternFill("solid", fgColor="EDEDED")))
        for name, width in (("Summary", 70), ("About", 100)):
            sheet = book[name]
            names = [str(c.value or "") for (c,) in sheet.iter_rows(min_col=1, max_col=1)]
            sheet.column_dimensions["A"].width = min(max(map(len, names)) + 2, 70)
            sheet.column_dimensions["B"].width = width
            sheet["A1"].font = sheet["B1"].font = Font(bold=True)
            for (item, cell) in sheet.iter_rows(min_row=2, max_col=2):
                cell.alignment = Alignment(horizontal="left", wrap_text=True, vertical="top")
                item.alignment = Alignment(vertical="top")  # beside the first line of a wrapped value
                if item.value == THRESHOLD_ITEM:
                    cell.number_format = "0.0%"
                lines = -(-len(str(cell.value or "")) // (width - 4))  # spreadsheet programs keep the height
                if lines > 1:                                          # openpyxl writes, so wrapped text needs room
                    sheet.row_dimensions[cell.row].height = ROW_HEIGHT * lines
        if reviews.SHEET in book.sheetnames:
            sheet = book[reviews.SHEET]
            for j, name in enumerate(kept.columns, start=1):
                sheet.cell(row=1, column=j).font = Font(bold=True)
                sheet.column_dimensions[get_column_letter(j)].width = {"file": 40, "review": 50, reviews.HASH: 66}.get(
                    name, 26)
