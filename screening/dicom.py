"""DICOM files, as a PACS or a dermatoscope exports them: the colour picture inside read like
any other image, or refused in one line that says why (greyscale, several frames, no image,
a compression that cannot be decoded here).

A clinic's export often names its files without a suffix (``DICOM/PAT1/IM0001``, beside a
``DICOMDIR`` index), so a file is known as DICOM by its ``DICM`` marker, not by its name.
"""

from __future__ import annotations

import io
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from screening.errors import ImageError

MARKER_AT = 128  # the Part 10 preamble, then b"DICM"
SUFFIXES = (".dcm", ".dicom")
INDEX_NAME = "DICOMDIR"  # a DICOM export's table of contents: no picture of its own
_EXPORT = "export the image from the viewer or PACS as JPEG or PNG"


def has_marker(source: str | Path | bytes) -> bool:
    """A DICOM Part 10 file (``DICM`` after the 128-byte preamble), whatever its name."""
    if isinstance(source, bytes):
        head = source[:MARKER_AT + 4]
    else:
        try:
            with open(source, "rb") as f:
                head = f.read(MARKER_AT + 4)
        except OSError:
            return False
    return head[MARKER_AT:] == b"DICM"


def named_as_exported(path: Path) -> bool:
    """A name a DICOM export gives its files: no suffix (``IM000001``) or a UID, whose last part
    is a number (``1.2.840.113619.2.55.3.15``). Only such files are opened to look for the
    marker, not every document in a folder (each open costs a round trip on a network share)."""
    return path.suffix == "" or path.suffix[1:].isdigit()


def is_dicom(source: str | Path | bytes) -> bool:
    """Named or marked as DICOM (a file without the Part 10 header is still tried by its name)."""
    return (not isinstance(source, bytes) and Path(source).suffix.lower() in SUFFIXES) or has_marker(source)


def read(source: str | Path | bytes, name: str) -> Image.Image:
    """The RGB picture in a DICOM file, with its ICC profile where it has one (applied later,
    as for any image); an ImageError names the file and what to do."""
    pydicom = _pydicom()
    try:
        return _read(pydicom, source, name)
    except ImageError:
        raise
    except pydicom.errors.InvalidDicomError:
        raise ImageError(f"{name}: not a readable DICOM file") from None
    except Exception as err:  # noqa: BLE001  pydicom parses an element when it is first used, and a damaged
        # one raises what its parser meets (struct.error, NotImplementedError for an unknown VR...)
        raise ImageError(f"{name}: a damaged DICOM file ({_first_clause(err)})") from None


def _read(pydicom, source: str | Path | bytes, name: str) -> Image.Image:
    ds = pydicom.dcmread(io.BytesIO(source) if isinstance(source, bytes) else source,
                         force=not has_marker(source),  # a bare dataset: known by its name
                         defer_size="1 MB")  # pixels read only if the header passes (a 2 GB series would not)
    _check(ds, name)
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None:  # a bare dataset is uncompressed, in the encoding it was read in
        implicit, little = ds.original_encoding
        syntax = ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian if implicit else
            pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian)
    if not _can_decode(syntax):
        raise ImageError(f"{name}: a DICOM image stored as {getattr(syntax, 'name', None) or 'an unknown encoding'}, "
                         f"which SkinScreen cannot decode; {_EXPORT}")
    try:
        pixels = ds.pixel_array  # YBR (as JPEG stores colour) comes back as RGB
    except Exception as err:  # noqa: BLE001  pydicom's decoders raise many kinds; none says which case it is
        raise ImageError(f"{name}: a DICOM image that could not be decoded ({_first_clause(err)}): damaged, or stored "
                         f"in a way SkinScreen cannot decode (12-bit JPEG, say); {_EXPORT}") from None
    img = Image.fromarray(_to_uint8(pixels, int(ds.get("BitsStored") or 8)), "RGB")
    if ds.get("ICCProfile"):
        img.info["icc_profile"] = bytes(ds.ICCProfile)
    return img


def identification(source: str | Path) -> str:
    """Whose and which picture a DICOM file holds, from its header: patient ID, study date, body
    site (and side), such as ``patient 12345; 2026-11-20; forearm, left``. A worklist row of
    ``DICOM/PAT1/IM0001`` is matched to its patient by this alone. "" where the header says none
    of it, or cannot be read (the row's error says why)."""
    try:
        ds = _pydicom().dcmread(source, stop_before_pixels=True, force=not has_marker(source), defer_size="64 KB")
        patient = str(ds.get("PatientID") or "").strip()
        date = str(ds.get("StudyDate") or ds.get("ContentDate") or "").strip()
        region = ds.get("AnatomicRegionSequence")
        site = str((region[0].get("CodeMeaning") if region else None) or ds.get("BodyPartExamined") or "").strip()
        side = _SIDES.get(str(ds.get("ImageLaterality") or ds.get("Laterality") or "").strip().upper(), "")
        parts = [f"patient {patient}" if patient else "",
                 f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 and date.isdigit() else "",
                 ", ".join(filter(None, (site.lower(), side)))]
    except Exception:  # noqa: BLE001  a damaged header: the row says so already
        return ""
    return "; ".join(filter(None, parts))


_SIDES = {"L": "left", "R": "right", "B": "both sides", "U": ""}  # (0020,0062) Image Laterality; U: unpaired


def _check(ds, name: str) -> None:
    """Refuse, before decoding, what is not one colour picture of a size that can be read."""
    sop = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    if "PixelData" not in ds:
        if sop is None:  # what force made of a file that is no DICOM
            raise ImageError(f"{name}: not a readable DICOM file")
        if sop == _pydicom().uid.MediaStorageDirectoryStorage:
            raise ImageError(f"{name}: the index of a DICOM export, not a picture; choose one of the files "
                             "in its folders")
        if "Image" in sop.name:  # an image's kind of file, its picture gone
            raise ImageError(f"{name}: a DICOM file of the {sop.name} kind with no picture in it (damaged, or "
                             "exported without its pixels)")
        raise ImageError(f"{name}: a DICOM file without a picture ({sop.name or sop})")
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise ImageError(f"{name}: a DICOM file of {frames} images (frames); export the one to assess "
                         "from the viewer or PACS as JPEG or PNG")
    samples, photometric = int(ds.get("SamplesPerPixel") or 1), str(ds.get("PhotometricInterpretation", ""))
    if photometric == "PALETTE COLOR":
        raise ImageError(f"{name}: a palette-colour DICOM image, which SkinScreen does not read; {_EXPORT}")
    if samples == 1 and (photometric.startswith("MONOCHROME") or not photometric):
        modality = f", modality {ds.Modality}" if ds.get("Modality") else ""
        raise ImageError(f"{name}: a greyscale DICOM image ({photometric or 'one sample per pixel'}{modality}); "
                         "SkinScreen assesses colour dermoscopy images")
    if samples != 3 or photometric.startswith("MONOCHROME"):
        raise ImageError(f"{name}: a damaged DICOM file ({photometric or 'no colour model'} with {samples} "
                         "samples per pixel)")
    rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    if rows * columns > Image.MAX_IMAGE_PIXELS:
        raise ImageError(f"{name}: image is too large ({columns}x{rows} px, over "
                         f"{Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels); save it at a lower resolution")


@lru_cache(maxsize=1)
def _pydicom():
    """pydicom, imported when the first DICOM file comes (0.2 s) and told not to warn about each
    non-conforming element it reads (a warning per file in the terminal says nothing to a user)."""
    import pydicom
    import pydicom.errors
    import pydicom.uid

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    warnings.filterwarnings("ignore", module=r"pydicom\.")  # once, here: catch_warnings is not thread-safe
    return pydicom


def _first_clause(err: Exception) -> str:
    """pydicom's reason without its list of possible causes: one short line."""
    return str(err).splitlines()[0].split(" - ")[0].rstrip(":") if str(err) else type(err).__name__


def _can_decode(syntax) -> bool:
    """pydicom has a decoder for this transfer syntax here (lossless JPEG, process 14, needs a
    package SkinScreen does not install: pylibjpeg-libjpeg is GPL, python-gdcm aborted the whole
    program on a damaged file)."""
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(syntax).is_available
    except (NotImplementedError, ValueError):
        return False


def _to_uint8(pixels: np.ndarray, bits_stored: int) -> np.ndarray:
    """8 bits per channel: 12- or 16-bit colour shifted down, as a viewer shows it."""
    if pixels.dtype == np.uint8:
        return pixels
    shift = max(bits_stored - 8, 0)
    return np.clip(pixels.astype(np.int64) >> shift, 0, 255).astype(np.uint8)
