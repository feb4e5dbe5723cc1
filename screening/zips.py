"""A zip file of images, as a clinic sends one (by e-mail, on a stick): its images taken out
safely, for the app's Several images tab and for ``batch.py clinic.zip``."""

from __future__ import annotations

import re
import shutil
import sys
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from screening.batch import may_be_image, may_be_zip
from screening.errors import UserError

MAX_MEMBERS, MAX_BYTES = 2000, 1_000_000_000  # images, and their bytes unpacked
_DRIVE = re.compile(r"^[A-Za-z]:")
_NOT_ON_WINDOWS = re.compile(r'[\x00-\x1f:<>"|?*]')  # characters no Windows file name may hold
_DEVICE = re.compile(r"^(CON|PRN|AUX|NUL|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3])(\.|$)", re.IGNORECASE)


class ZipRefused(UserError):
    """A zip whose images cannot be taken out; the message names the file and what to do."""


def extract_images(path: Path, dest: Path) -> list[str]:
    """Extract the files that may be images (as the batch tool finds them), each inside ``dest``
    whatever its name (:func:`unpacked_name`); refuse oversized archives and two files that would
    land on one name. Each is streamed to disk, so a member inflating to hundreds of megabytes
    never sits in memory. Returns the zip files inside it, which are not opened (the caller
    says their images are not scored)."""
    try:
        with zipfile.ZipFile(path) as z:
            named = [(m, unpacked_name(member_name(m))) for m in z.infolist() if not m.is_dir()]
            inner = sorted((inside for _, inside in named if may_be_zip(PurePosixPath(inside))), key=str.casefold)
            members = [(m, inside) for m, inside in named if inside and may_be_image(PurePosixPath(inside))]
            if len(members) > MAX_MEMBERS or sum(m.file_size for m, _ in members) > MAX_BYTES:
                raise ZipRefused(f"{path.name}: too large (at most {MAX_MEMBERS} images, 1 GB)")
            if any(m.flag_bits & 0x1 for m, _ in members):
                raise ZipRefused(f"{path.name}: password-protected; unzip it first and add the images")
            dest.mkdir(parents=True, exist_ok=True)
            for m, inside in members:
                target = dest.joinpath(*inside.split("/"))
                if dest.resolve() not in target.resolve().parents:  # whatever else a system makes of a name
                    raise ZipRefused(f"{path.name}: {inside} cannot be unpacked safely; unzip it first and add the images")
                try:  # "x": a second file of one name (or told apart only by capitals) must not replace the first
                    target.parent.mkdir(parents=True, exist_ok=True)
                    out = open(target, "xb")  # noqa: SIM115  closed below
                except (FileExistsError, IsADirectoryError, NotADirectoryError):
                    raise ZipRefused(f"{path.name}: {inside} clashes with another of its files (the same name, or one "
                                     "told apart only by capitals); rename one and zip it again") from None
                with out, z.open(m) as member:  # out first: closed even where the member cannot be read
                    shutil.copyfileobj(member, out, 1 << 20)
            return inner
    except (zipfile.BadZipFile, zlib.error, EOFError):  # damaged: a bad CRC, compressed data cut or altered
        raise ZipRefused(f"{path.name}: not a readable zip file (damaged); unzip it on the computer to see "
                         "which files survive") from None
    except NotImplementedError:  # e.g. Deflate64, which Windows uses for some large archives
        raise ZipRefused(f"{path.name}: compressed in a way SkinScreen cannot read; unzip it first "
                         "and add the images") from None


def unpacked_name(name: str) -> str:
    """Where a member goes under the folder it is unpacked into, as unzip tools place it: "/" and
    "\\" both separate folders; a drive ("C:"), a leading "/", "." and ".." are dropped. Skipping
    such members instead, as before, left a clinic's image out of the worklist unsaid. A name
    Windows cannot hold, from a zip made on a Mac or Linux, is renamed on every system, so a zip
    gives the same rows wherever it is scored: ":", "?", "*", '"', "<", ">", "|" and control
    characters become "_" ("D:x.jpg" names another drive), trailing dots and spaces go (Windows
    drops them), and a device name ("CON.jpg", "nul.png": the console, nowhere) gets a leading
    "_"."""
    parts = (_NOT_ON_WINDOWS.sub("_", p).rstrip(". ") for p in _DRIVE.sub("", name.replace("\\", "/")).split("/"))
    return "/".join("_" + p if _DEVICE.match(p) else p for p in parts if p)


def _legacy_encodings() -> tuple[str, ...]:
    """Where Windows' own zip tool writes names in the console code page (cp932 on a Japanese
    system, cp850 on many European ones), that code page; none elsewhere."""
    if sys.platform != "win32":
        return ()
    import ctypes

    return (f"cp{ctypes.windll.kernel32.GetOEMCP()}",)


def member_name(member: zipfile.ZipInfo, legacy: tuple[str, ...] | None = None) -> str:
    """A member's name as its maker wrote it. Without the flag that says "UTF-8", Python reads
    the bytes as cp437 ("患者.jpg" became "µéúΦÇà.jpg"), yet Info-ZIP and macOS write UTF-8
    there, and Windows its code page; what fits neither stays as Python reads it."""
    if member.flag_bits & 0x800:
        return member.filename
    raw = member.filename.encode("cp437")
    for encoding in ("utf-8", *(_legacy_encodings() if legacy is None else legacy)):
        try:
            return raw.decode(encoding)
        except (UnicodeError, LookupError):
            pass
    return member.filename
