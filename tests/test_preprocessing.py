import io
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from screening.preprocessing import INPUT_SIZE, ImageError, center_square, open_image, preprocess
from tests.conftest import HEIC, ROOT, lesion_like
from tests.icc import display_p3_profile


def _png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "CMYK", "I;16", "I", "F", "1", "YCbCr"])
def test_every_mode_becomes_224_rgb(mode):
    if mode in ("I;16", "I", "F"):
        gray = lesion_like()[..., 0].astype(np.uint16) * 257  # 16-bit range
        img = Image.fromarray(gray).convert(mode) if mode != "I;16" else Image.fromarray(gray)
    else:
        img = Image.fromarray(lesion_like()).convert(mode)
    out = preprocess(img)
    assert out.shape == (INPUT_SIZE, INPUT_SIZE, 3) and out.dtype == np.uint8
    assert 40 < out.mean() < 230, f"{mode}: values out of the 8-bit range ({out.mean():.1f})"


def test_sixteen_bit_png_file_scaled_to_8_bit(tmp_path):
    gray = np.full((64, 64), 40000, dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(gray).save(path)
    out = preprocess(path)
    assert abs(int(out[0, 0, 0]) - 40000 // 257) <= 1


def test_transparency_composited_on_white():
    rgba = np.zeros((50, 50, 4), dtype=np.uint8)  # fully transparent black
    out = preprocess(Image.fromarray(rgba, "RGBA"))
    assert out.min() == 255


def test_exif_orientation_is_applied():
    arr = np.zeros((100, 200, 3), dtype=np.uint8)
    arr[:, :100] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW when displayed
    data = _png_bytes(img, "JPEG", exif=exif.tobytes(), quality=95)
    upright = open_image(data)
    assert upright.size == (100, 200)
    assert np.asarray(upright)[10, 50].mean() > 200  # white half is now on top


def test_centre_square_of_4_3_keeps_the_middle():
    img = Image.new("RGB", (400, 300))
    sq = center_square(img)
    assert sq.size == (300, 300)


def test_large_image_downscaled_with_antialiasing():
    # A fine checkerboard should average to grey, not alias into stripes.
    board = (np.indices((1200, 1200)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = preprocess(Image.fromarray(board))
    assert out.std() < 20 and 100 < out.mean() < 155


def test_array_inputs():
    assert preprocess(lesion_like(50, 60)).shape == (224, 224, 3)
    assert preprocess(lesion_like(50, 60)[..., 0]).shape == (224, 224, 3)
    with pytest.raises(ImageError):
        preprocess(np.zeros((3, 3, 3, 3)))


@pytest.mark.parametrize("kind", ["float 0-1", "float 0-255", "uint16", "opaque RGBA", "one channel"])
def test_an_array_is_read_as_its_type_means_not_clipped(kind):
    """A 0-1 float image (scikit-image) was clipped to black and a 16-bit one to white, and
    each was scored; ``keras.utils.img_to_array`` gives floats over 0-255."""
    rgb = lesion_like(100, 120)
    array = {"float 0-1": rgb / 255.0, "float 0-255": rgb.astype(np.float32), "uint16": rgb.astype(np.uint16) * 257,
             "opaque RGBA": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
             "one channel": rgb[..., :1]}[kind]
    want = preprocess(rgb[..., 0] if kind == "one channel" else rgb)
    assert np.array_equal(preprocess(array), want)


def test_a_transparent_array_is_composited_on_white_as_a_transparent_file_is():
    rgba = np.zeros((50, 50, 4), dtype=np.uint8)
    assert np.array_equal(preprocess(rgba), preprocess(Image.fromarray(rgba, "RGBA")))
    assert preprocess(rgba).min() == 255


@pytest.mark.parametrize("array", [np.zeros((0, 3, 3)), np.zeros((3, 3, 2)), np.zeros((3, 3), dtype=bool),
                                   np.array([["a"]])])
def test_an_array_that_is_no_image_is_refused(array):
    with pytest.raises(ImageError, match="is not an image"):
        preprocess(array)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "not a readable image"), (b"hello, not an image", "not a readable image"),
     (bytes(128) + b"DICM" + b"\x02\x00\x00\x00UL", "image bytes: not a readable DICOM file")],
)
def test_bad_bytes_give_image_error(content, message):
    with pytest.raises(ImageError, match=message):
        preprocess(content)


def test_truncated_jpeg(tmp_path):
    data = _png_bytes(Image.fromarray(lesion_like()), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="damaged or truncated"):
        preprocess(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        preprocess(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="folder"):
        preprocess(tmp_path)


def test_decompression_bomb_refused_and_limit_kept(tmp_path):
    assert Image.MAX_IMAGE_PIXELS == 89478485  # Pillow's default stays on
    # A 1-bit PNG claiming 10000x10000 pixels is tiny on disk but over the limit.
    path = tmp_path / "bomb.png"
    Image.new("1", (10000, 10000)).save(path)
    with pytest.raises(ImageError, match="decompression bomb"):
        preprocess(path)


def test_a_108_megapixel_phone_jpeg_is_read_at_reduced_scale_not_refused(tmp_path):
    path = tmp_path / "phone.jpg"  # a phone's full-resolution mode; over Pillow's 89 MP limit
    Image.new("L", (12000, 9000), 128).save(path, quality=50)
    img = open_image(path)
    assert img.info["source_size"] == (12000, 9000) and max(img.size) <= 1500  # decoded at 1/8 scale
    assert preprocess(path).shape == (INPUT_SIZE, INPUT_SIZE, 3)


def test_heic_phone_photo_is_read_like_any_image():
    pytest.importorskip("pi_heif", reason="HEIC needs the optional pi-heif package (the test extra installs it)")
    img = open_image(HEIC)
    assert img.info["source_size"] == (200, 150) and img.mode == "RGB"
    lossless = preprocess(lesion_like(150, 200, seed=0)).astype(int)
    assert np.abs(preprocess(HEIC).astype(int) - lossless).mean() < 5  # the same picture, lossy HEVC
    assert np.array_equal(preprocess(HEIC.read_bytes()), preprocess(HEIC))  # uploads arrive as bytes


def _p3_to_srgb_as_published(p3: np.ndarray) -> np.ndarray:
    """8-bit Display P3 pixels through the published Display P3 -> sRGB matrix, as 0-255 floats."""
    v = p3 / 255.0
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    p3_to_srgb = np.array([[1.2249, -0.2247, 0.0], [-0.0420, 1.0419, 0.0], [-0.0197, -0.0786, 1.0979]])
    srgb = np.clip(linear @ p3_to_srgb.T, 0, 1)
    return 255 * np.where(srgb <= 0.0031308, srgb * 12.92, 1.055 * srgb ** (1 / 2.4) - 0.055)


def test_heic_whose_colour_is_display_p3_primaries_not_a_profile_is_read_as_srgb():
    """A HEIC may say its colour space as primaries (an nclx box) instead of an ICC profile.
    The fixture (made with pillow-heif's encoder, lossless) says Display P3: its pixels must
    reach the model through the published Display P3 -> sRGB matrix, not as they are."""
    pytest.importorskip("pi_heif", reason="HEIC needs the optional pi-heif package (the test extra installs it)")
    fixture = HEIC.with_name("display_p3_nclx_seed1.heic")
    with Image.open(fixture) as raw:
        assert raw.info["nclx_profile"]["color_primaries"] == 12 and "icc_profile" not in raw.info
        stored = np.asarray(raw.convert("RGB"), dtype=float)
    read = np.asarray(open_image(fixture), dtype=float)
    assert np.abs(read - _p3_to_srgb_as_published(stored)).max() <= 1.5
    assert np.abs(read - stored).mean() > 3  # converted: not the pixels as stored
    with Image.open(HEIC) as raw:  # sRGB's own primaries (code 1): left as they are
        assert raw.info["nclx_profile"]["color_primaries"] == 1
        assert np.array_equal(np.asarray(open_image(HEIC)), np.asarray(raw.convert("RGB")))


def test_avif_whose_colour_is_display_p3_primaries_is_read_as_srgb(tmp_path):
    """Pillow decodes AVIF without reporting its nclx colour: a Display P3 AVIF reached the
    model as if sRGB, duller. The container's colr box is read (screening.avif) instead."""
    from PIL import features

    from screening import avif

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    srgb_avif = _png_bytes(Image.fromarray(lesion_like()), "AVIF", quality=90)
    assert srgb_avif.count(b"colrnclx") == 1 and avif.nclx(srgb_avif)["color_primaries"] == 1
    at = srgb_avif.find(b"colrnclx") + 8
    p3_avif = srgb_avif[:at] + (12).to_bytes(2, "big") + srgb_avif[at + 2:]  # the same pixels, said to be P3
    (tmp_path / "p3.avif").write_bytes(p3_avif)
    with Image.open(tmp_path / "p3.avif") as raw:
        assert "icc_profile" not in raw.info and "nclx_profile" not in raw.info  # Pillow reports neither
        stored = np.asarray(raw.convert("RGB"), dtype=float)
    read = np.asarray(open_image(tmp_path / "p3.avif"), dtype=float)
    assert np.abs(read - _p3_to_srgb_as_published(stored)).max() <= 1.5
    assert np.abs(read - stored).mean() > 3  # converted: not the pixels as stored
    assert np.array_equal(np.asarray(open_image(p3_avif)), read)  # uploads arrive as bytes
    assert np.array_equal(np.asarray(open_image(srgb_avif)), stored)  # sRGB's own primaries: as they are


def _box(kind: bytes, payload: bytes, extended: bool = False) -> bytes:
    if extended:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


@pytest.mark.parametrize("version, flags", [(0, 0), (1, 1)])
def test_avif_colour_is_the_primary_items_wherever_the_boxes_lie(version, flags):
    """Of two colr boxes, the one the ipma box gives the primary item (pitm), in either width of
    its fields, after megabytes of image data that are skipped, not read."""
    from screening import avif

    def nclx(primaries: int) -> bytes:
        return _box(b"colr", b"nclx" + struct.pack(">HHHB", primaries, 13, 6, 0x80))

    item = ">H" if version < 1 else ">I"
    association = (lambda index: struct.pack(">H", 0x8000 | index)) if flags & 1 else (lambda index: bytes([index]))
    ipma = (bytes([version]) + flags.to_bytes(3, "big") + struct.pack(">I", 2)
            + struct.pack(item, 1) + bytes([1]) + association(1) + struct.pack(item, 2) + bytes([1]) + association(2))
    pitm = _box(b"pitm", bytes([version, 0, 0, 0]) + struct.pack(item, 2))
    meta = _box(b"meta", bytes(4) + pitm + _box(b"iprp", _box(b"ipco", nclx(9) + nclx(12)) + _box(b"ipma", ipma)))
    data = _box(b"ftyp", b"avif" + bytes(4) + b"avifmif1") + _box(b"mdat", bytes(3 << 20), extended=True) + meta
    assert avif.nclx(data)["color_primaries"] == 12
    assert avif.nclx(data[:-40]) is None and avif.nclx(data.replace(b"pitm", b"xxxx")) is None  # cut short, no pitm


def test_heic_without_the_decoder_says_what_to_install():
    code = ("import sys; sys.modules['pi_heif'] = None\n"  # as if pi-heif were not installed
            "from screening.preprocessing import ImageError, open_image\n"
            f"try:\n    open_image({str(HEIC)!r})\nexcept ImageError as err:\n    print(err)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    assert "a HEIC/HEIF image; reading it needs the optional pi-heif package" in out


def test_a_colour_profile_is_applied_so_the_model_sees_what_a_viewer_sees():
    from PIL import ImageCms

    original = Image.fromarray(lesion_like())  # sRGB, as the training images are read
    p3 = ImageCms.ImageCmsProfile(io.BytesIO(display_p3_profile()))
    as_phone_stores_it = ImageCms.profileToProfile(original, ImageCms.createProfile("sRGB"), p3,
                                                   renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    as_phone_stores_it.info.pop("icc_profile", None)
    tagged = _png_bytes(as_phone_stores_it, icc_profile=display_p3_profile())
    untagged = _png_bytes(as_phone_stores_it)
    assert b"iCCP" in tagged and b"iCCP" not in untagged
    want = preprocess(original).astype(int)
    assert np.abs(preprocess(tagged).astype(int) - want).max() <= 3  # rounding through P3 and back
    assert np.abs(preprocess(untagged).astype(int) - want).max() >= 10  # read as sRGB: duller colours


@pytest.mark.parametrize("profile", [b"not a colour profile", None])
def test_a_profile_that_cannot_be_used_leaves_the_pixels_as_they_are(profile):
    from PIL import ImageCms

    img = Image.fromarray(lesion_like())
    icc = profile or ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # None: sRGB itself
    out = preprocess(_png_bytes(img, icc_profile=icc)).astype(int)
    assert np.abs(out - preprocess(img).astype(int)).max() <= 1


def test_damaged_files_of_every_format_are_one_line(tmp_path):
    """Cut short or with bytes changed, a file of any format read gives the picture or an
    ImageError (Pillow's AVIF reader raised RuntimeError, pi-heif's EOFError: the app showed a
    traceback and Gradio's bare 'Error')."""
    from PIL import features

    from screening.preprocessing import HEIF

    formats = ["JPEG", "PNG", "TIFF", "WEBP", "GIF", "BMP"] + (["AVIF"] if features.check_module("avif") else [])
    files = {f: _png_bytes(Image.fromarray(lesion_like(48, 64)), f) for f in formats}
    if HEIF:
        files["HEIC"] = HEIC.read_bytes()
    rng = np.random.default_rng(1)
    for name, data in files.items():
        for i in range(60):
            damaged = bytearray(data)
            if i % 3 == 0:
                damaged = damaged[:rng.integers(8, len(damaged))]
            else:
                for _ in range(rng.integers(1, 8)):
                    damaged[rng.integers(0, min(len(damaged), 300) if i % 3 == 1 else len(damaged))] = rng.integers(256)
            try:
                preprocess(bytes(damaged))
            except ImageError as err:
                assert "\n" not in str(err), (name, str(err))
