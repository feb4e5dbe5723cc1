"""DICOM files written in code for the tests (no patient file may be committed): what a
dermatoscope or a PACS export holds, in the encodings they use."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    VLPhotographicImageStorage,
    generate_uid,
)

SYNTAXES = {"raw": ExplicitVRLittleEndian, "jpeg": JPEGBaseline8Bit, "jpeg-ls": JPEGLSLossless,
            "jpeg-lossless": JPEGLosslessSV1}


def write_dicom(path: Path, pixels: np.ndarray, *, syntax: str = "raw", frames: int = 1, icc: bytes | None = None,
                modality: str = "XC", preamble: bool = True, **header) -> Path:
    """A VL photographic image (what dermoscopy is stored as): RGB (H, W, 3) or greyscale (H, W)
    uint8/uint16 pixels, uncompressed, as JPEG (YBR_FULL_422, as cameras store it) or as lossless
    JPEG-LS; ``header`` sets more elements by keyword (``StudyDate="20261120"``). A lossless JPEG
    (process 14) file holds a baseline JPEG's bytes: it needs only to be one that cannot be decoded."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = VLPhotographicImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = SYNTAXES["raw" if syntax == "jpeg-ls" else syntax]  # compressed below
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = modality, "Test^Patient", "TEST-0001"
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    ds.Rows, ds.Columns = pixels.shape[:2]
    colour = pixels.ndim == 3
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if icc is not None:
        ds.ICCProfile = icc
    if syntax in ("raw", "jpeg-ls"):
        ds.PixelData = np.ascontiguousarray(np.stack([pixels] * frames) if frames > 1 else pixels).tobytes()
        if syntax == "jpeg-ls":
            ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    else:  # the encoded bytes of a JPEG
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=95)
        ds.PhotometricInterpretation = "YBR_FULL_422" if colour else "MONOCHROME2"
        ds.PixelData = encapsulate([buf.getvalue()] * frames)
        ds["PixelData"].VR = "OB"
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:  # a bare dataset, as older systems write: no preamble, no "DICM", no header naming its encoding
        del ds.file_meta
        ds.save_as(path, implicit_vr=True, little_endian=True)
    return Path(path)
