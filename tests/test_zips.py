"""A zip file of images: only its images taken out, streamed, under the names its maker wrote.
(The app's Several images tab and batch.py use it: tests/test_app.py, tests/test_batch.py.)"""

import tracemalloc
import zipfile
from contextlib import nullcontext

import numpy as np
import pytest

from screening.zips import ZipRefused, extract_images, member_name, unpacked_name


def test_a_damaged_zip_is_a_message_whatever_the_damage(tmp_path):
    """Altered compressed data raised zlib.error or EOFError out of the extraction: a traceback
    (and Gradio's bare 'Error' on the page) instead of a message."""
    rng = np.random.default_rng(2)
    archive = tmp_path / "clinic.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("lesion.jpg", bytes(rng.integers(0, 256, 3000, dtype=np.uint8)) + b"x" * 2000)
    data, messages = archive.read_bytes(), set()
    for i in range(40):
        damaged = bytearray(data)
        for _ in range(3):
            damaged[rng.integers(40, len(data) - 120)] = rng.integers(256)  # inside the compressed data
        archive.write_bytes(bytes(damaged))
        with pytest.raises(ZipRefused) as refusal:
            extract_images(archive, tmp_path / f"out{i}")
        messages.add(str(refusal.value))
    assert messages == {("clinic.zip: not a readable zip file (damaged); unzip it on the computer to see which "
                         "files survive")}


def test_a_zip_gives_up_its_images_only_and_never_holds_one_in_memory(tmp_path):
    """Each member was read whole into memory (a 0.8 MB zip of a 500 MB member: 1,000 MiB), and
    every file was extracted, a clinic folder's videos too, to be passed over."""
    archive = tmp_path / "clinic.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("visit/big.jpg", "w") as member:
            for _ in range(40):
                member.write(bytes(1 << 20))
        for name in ("visit/video.mp4", "notes.docx", "__MACOSX/visit/._big.jpg", "DICOM/DICOMDIR"):
            z.writestr(name, b"not wanted")
        z.writestr("DICOM/PAT1/IM0001", b"a DICOM export's name")
    tracemalloc.start()
    try:
        extract_images(archive, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    extracted = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert extracted == ["DICOM/PAT1/IM0001", "visit/big.jpg"]
    assert (tmp_path / "out" / "visit" / "big.jpg").stat().st_size == 40 << 20 and peak < 8 << 20


def test_names_a_windows_zip_wrote_in_its_code_page_are_read_in_it():
    member = zipfile.ZipInfo("x")
    member.filename = "患者.jpg".encode("cp932").decode("cp437")  # as Python reads a Japanese Windows zip
    assert member_name(member, legacy=("cp932",)) == "患者.jpg"
    assert member_name(member, legacy=()) == member.filename  # elsewhere: as Python reads it


def test_a_name_leading_out_of_the_zip_is_unpacked_inside_it_not_left_out(tmp_path):
    """A member named "../x.jpg", "/x.jpg" or "C:\\x.jpg" was skipped without a word: an image
    the clinic sent, missing from the worklist. Now placed inside, as unzip tools place it."""
    archive = tmp_path / "clinic.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("../up.jpg", "/abs/root.jpg", "visit/./../../deep.jpg", "C:\\Photos\\win.jpg", "D:drive.jpg",
                     "sub/E:other.jpg", "ok.jpg"):
            z.writestr(name, name.encode())
    out = tmp_path / "deep" / "out"
    extract_images(archive, out)
    extracted = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert extracted == {"up.jpg": b"../up.jpg", "abs/root.jpg": b"/abs/root.jpg", "visit/deep.jpg":
                         b"visit/./../../deep.jpg", "Photos/win.jpg": b"C:\\Photos\\win.jpg", "drive.jpg": b"D:drive.jpg",
                         "sub/E_other.jpg": b"sub/E:other.jpg", "ok.jpg": b"ok.jpg"}  # on Windows "E:" is a drive
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        ["clinic.zip", "up.jpg", "root.jpg", "deep.jpg", "win.jpg", "drive.jpg", "E_other.jpg", "ok.jpg"])  # none outside


@pytest.mark.parametrize(("name", "unpacked"), [
    ("visit 3?/mole*1.jpg", "visit 3_/mole_1.jpg"), ('a"b<c>|.png', "a_b_c__.png"), ("tab\there.jpg", "tab_here.jpg"),
    ("CON.jpg", "_CON.jpg"), ("nul.png", "_nul.png"), ("sub/Lpt1.tar.jpg", "sub/_Lpt1.tar.jpg"), ("aux", "_aux"),
    ("com\u00b9.jpg", "_com\u00b9.jpg"), ("CONSOLE.jpg", "CONSOLE.jpg"), ("com10.jpg", "com10.jpg"), ("icon.jpg", "icon.jpg"),
    ("visit./a.jpg ", "visit/a.jpg"), ("con ./x.jpg", "_con/x.jpg"), (".../.hidden.jpg", ".hidden.jpg")])
def test_a_name_windows_cannot_hold_is_renamed_alike_on_every_system(name, unpacked):
    """A zip made on a Mac ("visit 3?/mole*1.jpg") stopped on Windows with an OSError, and "CON.jpg"
    would have been written to the console there; the same rows wherever the zip is scored."""
    assert unpacked_name(name) == unpacked


def test_names_windows_would_make_one_refuse_the_zip_on_every_system(tmp_path):
    archive = tmp_path / "clinic.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a?.jpg", b"question")
        z.writestr("a*.jpg", b"star")
    with pytest.raises(ZipRefused, match=r"^clinic\.zip: a_\.jpg clashes with another of its files"):
        extract_images(archive, tmp_path / "out")


@pytest.mark.parametrize("names", [("a.jpg", "a.jpg"), ("sub/a.jpg", "/sub/a.jpg"),
                                   ("a.jpg", "a.jpg/b.jpg"), ("a.jpg/b.jpg", "a.jpg")])
def test_two_files_landing_on_one_name_refuse_the_zip_instead_of_one_replacing_the_other(tmp_path, names):
    """The second of two members of one name replaced the first: one image scored, the other
    gone from the worklist without a word (a file and a folder of one name: a traceback)."""
    archive = tmp_path / "clinic.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i, name in enumerate(names):
            with pytest.warns(UserWarning) if name in z.namelist() else nullcontext():  # zipfile: "Duplicate name"
                z.writestr(name, f"image {i}".encode())
    with pytest.raises(ZipRefused, match=r"^clinic\.zip: (sub/)?a\.jpg.* clashes with another of its files .*rename one"):
        extract_images(archive, tmp_path / "out")


def test_names_told_apart_only_by_capitals_refuse_the_zip_where_the_disk_cannot_tell_them_apart(tmp_path):
    archive = tmp_path / "clinic.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("IMG_1.JPG", b"upper")
        z.writestr("img_1.jpg", b"lower")
    probe = tmp_path / "Case"
    probe.write_bytes(b"")
    if (tmp_path / "case").exists():  # Windows, macOS: one name; the second would replace the first
        with pytest.raises(ZipRefused, match="told apart only by capitals"):
            extract_images(archive, tmp_path / "out")
    else:  # Linux: two files, two rows
        extract_images(archive, tmp_path / "out")
        assert sorted(p.read_bytes() for p in (tmp_path / "out").iterdir()) == [b"lower", b"upper"]
