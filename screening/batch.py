"""Batch screening CLI: ``python batch.py FOLDER --out report.xlsx`` (also ``screening-batch``).

Scores every image file in FOLDER (or in a zip file of images, subfolders included) into a
worklist: an Excel workbook (Results, Summary, About sheets), with ``--out *.csv`` a CSV of the
Results sheet, or with ``--out *.json`` the results and the summary for another program.
Unreadable files get a row with status ``error``; the run goes on. The report is written
atomically and an existing one is never replaced without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, NamedTuple

from screening import __version__, dicom, reviews
from screening.cli import (
    add_malignancy_options,
    add_scoring_options,
    add_version_option,
    check_malignancy_options,
    described,
    run_cli,
)
from screening.data import IMAGE_SUFFIXES
from screening.errors import UserError
from screening.files import NoRoom, check_output_folder, check_room, in_use, same_disk, sha256_of, unwritable
from screening.info import NOTICE
from screening.progress import Progress

if TYPE_CHECKING:
    import pandas as pd

REPORT_SUFFIXES = (".xlsx", ".csv", ".json")
ZIP_ADVICE = "score each zip file on its own, named in place of the folder"  # a scan passes zips over
UNREADABLE_ADVICE = "check that this account may read them (or that the network drive is there) and run it again"
# Room kept for a report, in bytes: per image (a row; a thumbnail), per PDF record, and once.
# Reports of 300 HAM10000 images took ~500 bytes a row (JSON, the largest), ~6.2 kB a
# thumbnail; records took 127-205 kB (41 of 300 images_224): about four, three and at least
# two and a half times that, as names and images vary.
ROOM = {"row": 2 * 2**10, "thumbnail": 16 * 2**10, "record": 512 * 2**10, "report": 2**20}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="screening-batch", description=described(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=NOTICE)
    p.add_argument("folder", type=Path, help="folder of dermoscopy images, or a zip file of them")
    p.add_argument("--out", type=Path, required=True,
                   help="report path: .xlsx (Excel), .csv (the Results sheet) or .json (results and summary)")
    p.add_argument("--recursive", action="store_true", help="include images in subfolders (linked ones too)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.add_argument("--model", type=Path, help="model bundle folder (default: the packaged model)")
    add_malignancy_options(p)
    add_version_option(p)
    add_scoring_options(p)
    p.add_argument("--thumbnails", action="store_true", help="embed a small preview of each image (Excel only)")
    p.add_argument("--records", type=Path, metavar="FOLDER",
                   help="also write a one-page PDF record (with Grad-CAM) of each REFER image into FOLDER, "
                        "linked from the workbook")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def may_be_image(path: PurePath) -> bool:
    """By its name alone, a file :func:`scan_folder` looks at: an image suffix, or a name a
    DICOM export gives (not its ``DICOMDIR`` index); never a hidden file."""
    return not path.name.startswith(".") and (path.suffix.lower() in IMAGE_SUFFIXES or (
        dicom.named_as_exported(path) and path.name != dicom.INDEX_NAME))


def may_be_zip(path: PurePath) -> bool:
    """By its name alone, a zip file a scan names as not opened; never a hidden one, as no image
    is (a Mac writes ``._clinic.zip``, holding no images, beside each zip it copies to a stick)."""
    return not path.name.startswith(".") and path.suffix.lower() == ".zip"


class Scan(NamedTuple):
    """What a folder holds for a worklist, and what its scan passes over, to be said."""

    images: list[Path]
    zips: list[str]  # zip files, by their paths in the folder: not opened (:data:`ZIP_ADVICE`)
    unreadable: list[str]  # subfolders that could not be opened (permissions, a network drive gone)


def scan_folder(folder: Path, recursive: bool, chosen: Iterable[Path] = ()) -> Scan:
    """Image files by extension (case-insensitive), and DICOM files by their marker (a PACS
    export names them ``IM0001`` or by a UID, without a suffix), in a stable, case-insensitive
    path order; ``chosen`` files (in ``folder``) too, whatever their names: a file someone
    picked gets a row, if only to say it is not an image."""
    entries, unreadable = _entries(folder, recursive)
    found = {p for p in entries if may_be_image(p) and (
        (p.is_file() or p.is_symlink()) if p.suffix.lower() in IMAGE_SUFFIXES  # a broken link: a row saying so
        else p.is_file() and dicom.has_marker(p))}  # is_file: never a pipe
    zips = [p.relative_to(folder).as_posix() for p in entries if may_be_zip(p) and p.is_file()]
    return Scan(sorted(found.union(chosen), key=lambda p: (str(p.relative_to(folder)).casefold(), str(p))),
                sorted(zips, key=str.casefold), unreadable)


def _entries(folder: Path, recursive: bool) -> tuple[list[Path], list[str]]:
    """What ``folder`` holds but its subfolders, which ``recursive`` opens in turn, and those
    that could not be opened. Python's ``rglob`` passed over both without a word: a linked
    folder, and one it may not read; here a linked one is opened (each real folder once, nearest
    and then first by name, so a link back up never loops) and an unreadable one is listed."""
    entries, unreadable, seen, pending = [], [], set(), deque([folder])
    while pending:
        here = pending.popleft()
        try:
            if (real := here.resolve()) in seen:
                continue
            seen.add(real)
            with os.scandir(here) as listing:
                inside = sorted(listing, key=lambda e: e.name)
        except OSError:
            if here == folder:  # the folder itself: the caller's one-line error
                raise
            unreadable.append(here.relative_to(folder).as_posix())
            continue
        for entry in inside:
            (pending if recursive and _is_folder(entry) else entries).append(here / entry.name)
    return entries, sorted(unreadable, key=str.casefold)


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # a link to a folder too
    except OSError:
        return False


def identified(path: Path) -> str:
    """A DICOM file's patient, date and site (:func:`screening.dicom.identification`); "" for
    others, which are not opened for it (a JPEG's name is what identifies it)."""
    suffix = path.suffix.lower()
    if suffix in dicom.SUFFIXES or (suffix not in IMAGE_SUFFIXES and dicom.has_marker(path)):
        return dicom.identification(path)
    return ""


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse before any work: wrong suffix, existing report, or a folder we cannot write."""
    if out.is_dir():  # before the suffix: a folder has none, and "must end in .xlsx" missed the point
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'report.xlsx'}")
    if out.suffix.lower() not in REPORT_SUFFIXES:
        raise UserError(f"--out must end in .xlsx, .csv or .json, got {out.name}")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; use --overwrite to replace it")
    if why := in_use(out):
        raise UserError(f"cannot replace {out}: {why}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"cannot write {out}: folder {parent} does not exist")
    if why := unwritable(parent):
        raise UserError(f"cannot write {out}: folder {parent} is not writable ({why})")


def check_records_folder(folder: Path, overwrite: bool) -> None:
    """Refuse before any work a records folder that is a file, one that cannot be written, or
    one that already holds files (earlier records would be mixed with, or replaced by, this
    run's) unless asked to."""
    check_output_folder(folder, "--records", "the records")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise UserError(f"records folder {folder} is not empty; use --overwrite or another folder")


def report_room(images: int, thumbnails: bool) -> int:
    """Bytes to keep free for the report of ``images`` images."""
    return ROOM["report"] + images * (ROOM["row"] + (ROOM["thumbnail"] if thumbnails else 0))


def write_records(screener, paths: list[Path], names: list[str], results: list, folder: Path,
                  progress: bool | None = None,
                  on_progress: Callable[[int, int, str], None] | None = None,
                  ids: list[str] | None = None, keep: int = 0) -> dict[int, Path]:
    """A PDF record (:mod:`screening.record`) of each referred image, at its relative path in
    ``folder`` plus ``.pdf``; returns row -> record. A record that fails is a warning on its
    row, not the end of the run (and of the report on the images already scored). ``ids``:
    each file's :func:`identified`, printed on its record. ``keep``: bytes the records must
    leave free on their disk (for the report, written after them)."""
    from screening.explain import GradCAM
    from screening.info import CLASS_CODES
    from screening.preprocessing import open_image, preprocess
    from screening.record import write_record
    from screening.report import shown

    cam, written, full = GradCAM(screener.model), {}, False
    total = sum(r.refer for r in results)
    bar = Progress(total, enabled=progress, label="records")
    for i, (path, name, r) in enumerate(zip(paths, names, results, strict=True)):
        if not r.refer:
            continue
        if full:  # said once; each row still says its record is missing
            r.warnings.append("PDF record not written (the disk is full)")
        else:
            x = preprocess(open_image(path))  # it was read a moment ago for scoring
            out = folder / f"{name}.pdf"
            try:
                check_room(out.parent, keep + ROOM["record"], "a record" + (" and the report" if keep else ""))
                out.parent.mkdir(parents=True, exist_ok=True)
                write_record(out, screener, r, x, cam.overlay(x, CLASS_CODES.index(r.predicted_class)),
                             source_name=shown(name), identification=shown(ids[i]) if ids else "")
                written[i] = out
            except Exception as err:  # noqa: BLE001  e.g. a disk full, or a drawing bug on one odd file name
                full = isinstance(err, NoRoom)
                r.warnings.append("PDF record not written ("
                                  + (str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}") + ")")
                print(f"warning: {shown(name)}: {r.warnings[-1]}"
                      + ("; no further records are written" if full else ""), file=sys.stderr)
        bar.update()
        if on_progress:
            on_progress(bar.count, total, "records")
    bar.close()
    return written


def thumbnail_png(path: Path, size: int = 72) -> bytes | None:
    """A small PNG preview, or None for a file that could not be read (its row says why)."""
    from screening.preprocessing import open_image

    try:
        img = open_image(path)
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, "PNG")
    except Exception:  # noqa: BLE001  as in scoring, a decoder bug in one file must not end the run
        return None
    return buf.getvalue()


def previews(paths: list[Path], workers: int, progress: bool | None = None) -> dict[int, bytes]:
    """Row -> :func:`thumbnail_png` of each readable image, made in ``workers`` threads (Pillow
    decodes and encodes outside the GIL; one at a time, 10,015 took 24 s), with a bar."""
    bar = Progress(len(paths), enabled=progress, label="previews")
    made = {}
    with ThreadPoolExecutor(workers) as pool:
        for i, png in enumerate(pool.map(thumbnail_png, paths)):
            if png:
                made[i] = png
            bar.update()
    bar.close()
    return made


def run(args: argparse.Namespace) -> int:
    folder: Path = args.folder
    if not folder.exists():
        raise UserError(f"folder not found: {folder}")
    unzip = folder.is_file() and folder.suffix.lower() == ".zip"
    if not folder.is_dir() and not unzip:
        raise UserError(f"not a folder or a zip file: {folder}")
    check_output(args.out, args.overwrite)
    if keeps_reviews(args.out):  # a workbook it could not read the notes of: said before the scoring
        reviews.check(args.out)
    if args.thumbnails and args.out.suffix.lower() != ".xlsx":
        raise UserError("--thumbnails needs an Excel report (.xlsx)")
    check_malignancy_options(args)
    if args.records is not None:
        check_records_folder(args.records, args.overwrite)
        for other, what in ((args.out, "the report's own name (--out)"), (folder, "the folder of images")):
            if args.records.resolve() == other.resolve():
                raise UserError(f"--records {args.records} is {what}; give the records a folder of their own")
    if not unzip:
        return _screen(args, folder, args.recursive)
    from screening import zips
    from screening.scratch import SWEEP, private_root, sweep

    # the images unpacked where only this user can read them, and gone when the report is written
    sweep(private_root(), SWEEP[1])  # and what a run killed outright left there an hour ago
    with tempfile.TemporaryDirectory(prefix="zip-", dir=private_root(), ignore_cleanup_errors=True) as unpacked:
        inner = zips.extract_images(folder, Path(unpacked))
        return _screen(args, Path(unpacked), recursive=True, source=folder, inner_zips=inner)


def _screen(args: argparse.Namespace, folder: Path, recursive: bool, source: Path | None = None,
            inner_zips: Sequence[str] = ()) -> int:
    """Score the images in ``folder`` (unpacked from the zip file ``source``, which held the zip
    files ``inner_zips``) into ``args.out``; what the scan passed over is named at the end."""
    scan = scan_folder(folder, recursive)
    paths = [p for p in scan.images if p.resolve() != args.out.resolve()]
    zipped, unopened = [*inner_zips, *scan.zips], listed(scan.unreadable, "subfolder")
    left_out = "; ".join([*([f"the images inside {listed(zipped, 'zip file')}"] if zipped else []),
                          *([f"the images in {unopened}, which could not be opened"] if scan.unreadable else [])])
    if not paths:
        where = "or its subfolders " if recursive and not source else ""
        held = f"; it holds {listed(zipped, 'zip file')}: {ZIP_ADVICE}" if zipped else ""
        shut = f"; {unopened} could not be opened: {UNREADABLE_ADVICE}" if scan.unreadable else ""
        raise UserError(f"no image files ({', '.join(s[1:] for s in IMAGE_SUFFIXES)}) in {source or folder} "
                        f"{where}".strip() + held + shut)

    from screening.inference import Screener
    from screening.report import tally

    start = time.perf_counter()
    screener = Screener(args.model, threshold=args.threshold, tta=args.tta, batch_size=args.batch_size,
                        prevalence=args.prevalence)
    df, written, reviews_went, _ = screen_files(
        screener, paths, folder, args.out, source=str(source) if source else None, workers=args.workers,
        thumbnails=args.thumbnails, link_images=source is None, records=args.records,
        progress=False if args.quiet else None, start=start, left_out=left_out)
    if not args.quiet:
        elapsed = time.perf_counter() - start
        print(f"{tally(df)}; {len(df) / elapsed:.1f} images/s; wrote {args.out}"
              + (f" and {written} PDF record{'' if written == 1 else 's'} in {args.records}" if args.records else ""),
              file=sys.stderr)
        print(NOTICE, file=sys.stderr)
    if reviews_went:  # said even with --quiet: where the reader's notes went
        print(f"note: reviews: {reviews_went}", file=sys.stderr)
    if zipped:  # said even with --quiet: images left out of a worklist that looks complete
        print(f"note: the images inside {listed(zipped, 'zip file')} in {source or folder} are not in this report; "
              f"{ZIP_ADVICE}", file=sys.stderr)
    if scan.unreadable:
        them = "it" if len(scan.unreadable) == 1 else "them"
        print(f"note: {unopened} of {folder} could not be opened, so the images in {them} are not in this report; "
              f"{UNREADABLE_ADVICE}", file=sys.stderr)
    return 0


def listed(names: Sequence[str], noun: str) -> str:
    """"2 zip files (a.zip, b.zip)", the first three named."""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"{len(names)} {noun}{'' if len(names) == 1 else 's'} ({', '.join(names[:3])}{more})"


def keeps_reviews(out: Path) -> bool:
    """A worklist ``out`` replaces whose reader's notes are carried over (:mod:`screening.reviews`)."""
    return out.suffix.lower() == ".xlsx" and out.exists()


class Screened(NamedTuple):
    """What :func:`screen_files` did."""

    rows: pd.DataFrame  # the report's rows
    records: int  # PDF records written
    reviews: str  # where the notes of the worklist it replaced went ("" where there were none)
    hashes: list[str]  # each file's SHA-256, in the rows' order


def screen_files(screener, paths: list[Path], folder: Path, out: Path, *, source: str | None = None,
                 workers: int = 2, thumbnails: bool = False, link_images: bool = True, records: Path | None = None,
                 progress: bool | None = None, start: float | None = None, left_out: str = "",
                 on_progress: Callable[[int, int, str], None] | None = None) -> Screened:
    """Score ``paths`` and write the report to ``out``; the one path batch.py and the app share.
    A worklist ``out`` replaces gives its reader's notes to the new one (read just before the
    writing: notes written during the scoring are kept too).

    ``source`` is what the report names as scanned (default ``folder``; a zip file or uploads
    are scored in a temporary one). ``progress``: a bar on a terminal (None), never (False) or always (True); ``start``
    is when timing began (default now), so model loading can count towards the reported speed. ``link_images``
    makes each file name in the workbook open its image (not for images about to be deleted).
    ``on_progress(done, total, "scoring" or "records")`` is called after each image scored and
    each record written (the app's progress bar).
    ``records``: a folder for the PDF records of the REFER images. ``left_out``: what the scan
    passed over, for the Summary sheet, so that whoever reads the worklist later knows it too.
    """
    from screening import report

    start = time.perf_counter() if start is None else start
    room = report_room(len(paths), thumbnails)
    check_room(out.parent, room, f"the report of {len(paths)} image{'' if len(paths) == 1 else 's'}")
    names = [p.relative_to(folder).as_posix() for p in paths]
    bar = Progress(len(paths), enabled=progress)
    results = []
    for result in screener.score(paths, workers=workers, names=names):
        results.append(result)
        bar.update()
        if on_progress:
            on_progress(len(results), len(paths), "scoring")
    bar.close()
    scored_s = time.perf_counter() - start
    ids = [identified(p) for p in paths]
    pdfs = (write_records(screener, paths, names, results, records, progress, on_progress, ids,
                          keep=room if same_disk(records, out.parent) else 0) if records else None)
    df = report.rows(results, names, ids)  # after the records: a record not written is a warning on its row
    info = report.RunInfo(
        folder=source or str(folder), threshold=screener.threshold, tta=screener.tta,
        model_name=screener.meta.get("name", ""), model_version=str(screener.meta.get("version", "")),
        model_sha256=screener.meta.get("sha256", ""), software_version=__version__,
        date=datetime.now().astimezone().isoformat(timespec="seconds"), elapsed_s=scored_s,  # the clinic's clock
        held_out=screener.held_out, calibration=report.calibration_text(screener), left_out=left_out)
    thumbs = previews(paths, workers, progress) if thumbnails else None
    if pdfs is not None:
        info.records = f"{len(pdfs)} in {Path(os.path.relpath(records, out.parent)).as_posix()}"
    hashes = [_sha256(p) for p in paths]
    notes = reviews.read(out, report.OWN_COLUMNS) if keeps_reviews(out) else None
    report.write(df, out, info, thumbs, paths if link_images else None, pdfs, notes, hashes)
    return Screened(df, len(pdfs or ()), info.reviews, hashes)


def _sha256(path: Path) -> str:
    """The file's SHA-256; "" for one that cannot be read (a broken link, no permission: its row says so)."""
    try:
        return sha256_of(path)
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    return run_cli(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
