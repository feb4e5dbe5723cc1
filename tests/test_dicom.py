import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

from screening import dicom
from screening.preprocessing import ImageError, open_image, preprocess
from tests.conftest import lesion_like
from tests.dicom_files import write_dicom
from tests.icc import display_p3_profile


def test_an_uncompressed_colour_image_reads_as_the_same_picture(tmp_path):
    pixels = lesion_like(150, 200)
    path = write_dicom(tmp_path / "IM0001", pixels)
    assert dicom.has_marker(path) and dicom.is_dicom(path.read_bytes())
    img = open_image(path)
    assert img.mode == "RGB" and img.info["source_size"] == (200, 150)
    np.testing.assert_array_equal(np.asarray(img), pixels)
    np.testing.assert_array_equal(preprocess(path), preprocess(pixels))
    np.testing.assert_array_equal(preprocess(path.read_bytes()), preprocess(pixels))  # as the app's upload


def test_pixels_over_a_megabyte_read_after_the_header_give_the_same_picture(tmp_path):
    pixels = np.asarray(Image.fromarray(lesion_like(150, 200)).resize((800, 600)))  # 1.4 MB: read when decoded
    path = write_dicom(tmp_path / "big.dcm", pixels)
    for source in (path, path.read_bytes()):
        np.testing.assert_array_equal(preprocess(source), preprocess(pixels))


def test_a_jpeg_in_ycbcr_as_cameras_store_it_comes_back_in_rgb(tmp_path):
    pixels = lesion_like(150, 200)
    out = preprocess(write_dicom(tmp_path / "photo.dcm", pixels, syntax="jpeg")).astype(int)
    assert np.abs(out - preprocess(pixels)).mean() < 3  # JPEG's loss only: no colour-space mix-up


def test_sixteen_bit_colour_is_shifted_to_eight(tmp_path):
    pixels = lesion_like(64, 64).astype(np.uint16) * 256
    np.testing.assert_array_equal(preprocess(write_dicom(tmp_path / "x.dcm", pixels)), preprocess(lesion_like(64, 64)))


def test_its_colour_profile_is_applied_as_for_any_image(tmp_path):
    pixels, icc = lesion_like(120, 160), display_p3_profile()
    tagged_png = io.BytesIO()
    Image.fromarray(pixels).save(tagged_png, "PNG", icc_profile=icc)
    from_dicom = preprocess(write_dicom(tmp_path / "p3.dcm", pixels, icc=icc))
    np.testing.assert_array_equal(from_dicom, preprocess(tagged_png.getvalue()))
    assert np.abs(from_dicom.astype(int) - preprocess(pixels)).max() > 5  # the profile did something


def test_a_bare_dataset_without_the_dicm_header_is_read_by_its_name(tmp_path):
    path = write_dicom(tmp_path / "old.dcm", lesion_like(64, 64), preamble=False)
    assert not dicom.has_marker(path) and dicom.is_dicom(path)
    np.testing.assert_array_equal(preprocess(path), preprocess(lesion_like(64, 64)))


@pytest.mark.parametrize("kind, message", [
    ("frames", "x.dcm: a DICOM file of 3 images (frames); export the one to assess from the viewer or PACS as JPEG"),
    ("grey", "x.dcm: a greyscale DICOM image (MONOCHROME2, modality CR); SkinScreen assesses colour dermoscopy"),
    ("palette", "x.dcm: a palette-colour DICOM image, which SkinScreen does not read; export the image"),
    ("jpeg-lossless", ("x.dcm: a DICOM image stored as JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process "
                      "14 [Selection Value 1]), which SkinScreen cannot decode; export")),
    ("junk", "x.dcm: not a readable DICOM file"),
    ("cut", "x.dcm: a DICOM image that could not be decoded (The number of bytes of pixel data is less than expected (11288 vs 12288 bytes)): damaged"),
    ("report", "x.dcm: a DICOM file without a picture (Basic Text SR Storage)"),
    ("huge", "x.dcm: image is too large (30000x30000 px, over 89 megapixels)"),
])
def test_what_cannot_be_assessed_is_refused_in_one_line(kind, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "x.dcm"
    if kind in ("frames", "jpeg-lossless"):
        write_dicom(path, lesion_like(64, 64), frames=3 if kind == "frames" else 1,
                    syntax="jpeg-lossless" if kind == "jpeg-lossless" else "raw")
    elif kind == "grey":
        write_dicom(path, lesion_like(64, 64)[..., 0], modality="CR")
    elif kind == "junk":
        path.write_bytes(b"not a DICOM file at all")
    elif kind == "cut":
        raw = write_dicom(path, lesion_like(64, 64)).read_bytes()
        path.write_bytes(raw[:-1000])  # in the middle of the pixels
    elif kind == "report":
        _write_report(path)
    else:  # a header that says what the pixels are not
        ds = pydicom.dcmread(write_dicom(path, lesion_like(8, 8)[..., 0] if kind == "palette" else lesion_like(8, 8)))
        if kind == "palette":
            ds.PhotometricInterpretation = "PALETTE COLOR"
        else:
            ds.Rows = ds.Columns = 30000
        ds.save_as(path)
    with pytest.raises(ImageError) as err:
        preprocess("x.dcm")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_jpeg_ls_gives_the_very_pixels(tmp_path):
    """JPEG-LS, a lossless encoding of DICOM, was refused ("cannot decode"); pyjpegls decodes it."""
    pixels = lesion_like(120, 160)
    np.testing.assert_array_equal(open_image(write_dicom(tmp_path / "ls.dcm", pixels, syntax="jpeg-ls")), pixels)


def _write_report(path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = BasicTextSRStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.SOPClassUID, ds.Modality = meta, BasicTextSRStorage, "SR"
    ds.save_as(path, enforce_file_format=True)


def test_the_image_checks_see_the_dicom_picture_size(tmp_path):
    img = open_image(write_dicom(tmp_path / "wide.dcm", lesion_like(100, 300)))
    assert img.info["source_size"] == (300, 100)


# Files written by other DICOM toolkits (DCMTK, GDCM...), as pydicom's wheel ships them
MADE_ELSEWHERE = Path(pydicom.__file__).parent / "data" / "test_files"
elsewhere = pytest.mark.skipif(not (MADE_ELSEWHERE / "SC_rgb_rle.dcm").is_file(),
                               reason="pydicom's test files are not installed with it here")


@elsewhere
@pytest.mark.parametrize("name", ["SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_jpeg_dcmtk.dcm",
                                  "SC_rgb_gdcm_KY.dcm", "SC_ybr_full_422_uncompressed.dcm", "SC_rgb_rle_16bit.dcm",
                                  "SC_rgb_jls_lossy_line.dcm", "SC_rgb_jls_lossy_sample.dcm"])
def test_other_toolkits_jpeg_ybr_and_16_bit_files_give_the_colours_of_the_lossless_copy(name):
    lossless = np.asarray(open_image(MADE_ELSEWHERE / "SC_rgb_rle.dcm"), dtype=int)  # red, green, blue... bars
    assert np.abs(np.asarray(open_image(MADE_ELSEWHERE / name), dtype=int) - lossless).mean() < 4


@elsewhere
def test_every_file_other_toolkits_wrote_is_a_picture_or_one_line_that_says_why():
    outcomes = {}
    for path in sorted(p for p in MADE_ELSEWHERE.rglob("*") if p.is_file()):
        try:
            outcomes[path.name] = preprocess(path).shape
        except ImageError as err:
            assert "\n" not in str(err) and len(str(err)) < 400 + len(str(path)), str(err)
            outcomes[path.name] = str(err).split(": ", 1)[1].split(" (")[0]
    assert outcomes["examples_jpeg2k.dcm"] == (224, 224, 3)  # JPEG 2000
    assert outcomes["CT_small.dcm"] == "a greyscale DICOM image"
    assert outcomes["DICOMDIR"].startswith("the index of a DICOM export")
    assert outcomes["badVR.dcm"] == "a damaged DICOM file"


def test_damaged_files_are_one_line_whatever_the_damage(tmp_path):
    """pydicom parses each element when it is first used, so damage surfaces anywhere, as
    whatever its parser meets (struct.error, NotImplementedError for an unknown value
    representation, BytesLengthException...): each must be a one-line refusal, not a traceback."""
    rng = np.random.default_rng(0)
    files = [write_dicom(tmp_path / f"{s}.dcm", lesion_like(48, 64), syntax=s).read_bytes()
             for s in ("raw", "jpeg", "jpeg-ls")]  # a decoder in C must not take the whole program down
    outcomes = set()
    for i in range(300):
        damaged = bytearray(files[i // 3 % len(files)])
        if i % 3 == 0:
            damaged = damaged[:rng.integers(132, len(damaged))]  # cut short
        else:  # bytes changed in the header (i % 3 == 1) or anywhere
            for _ in range(rng.integers(1, 8)):
                damaged[rng.integers(132, 800 if i % 3 == 1 else len(damaged))] = rng.integers(256)
        try:
            preprocess(bytes(damaged))
            outcomes.add("read")
        except ImageError as err:
            assert "\n" not in str(err)
            outcomes.add(str(err).split(": ", 1)[1].split(" (")[0])
    assert "read" in outcomes and "a damaged DICOM file" in outcomes  # both kinds were met



def test_the_header_says_whose_picture_it_is(tmp_path):
    site = Dataset()
    site.CodeValue, site.CodingSchemeDesignator, site.CodeMeaning = "14975008", "SCT", "Forearm"
    coded = write_dicom(tmp_path / "IM0001", lesion_like(), PatientID=" 12345 ", StudyDate="20261120",
                        AnatomicRegionSequence=[site], Laterality="R", BodyPartExamined="ARM")
    assert dicom.identification(coded) == "patient 12345; 2026-11-20; forearm, right"  # the coded site first
    bare = write_dicom(tmp_path / "IM0002", lesion_like(), preamble=False, StudyDate="2026")
    assert dicom.identification(bare) == "patient TEST-0001"  # a date that is no date is left out
    damaged = tmp_path / "IM0003"
    damaged.write_bytes(coded.read_bytes()[:150])
    assert dicom.identification(damaged) == "" and dicom.identification(tmp_path / "gone") == ""
