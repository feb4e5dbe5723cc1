"""The one preprocessing function that training, evaluation, batch and UI share.

``preprocess`` turns any image source into a ``(224, 224, 3)`` uint8 RGB array: EXIF
orientation applied, every Pillow mode converted to RGB, the centre square taken and
resized with antialiasing. MobileNet's scaling to [-1, 1] (``SCALING``) is the model's
first layer, so decoded images can be cached and moved as compact uint8.
"""

from __future__ import annotations

import io
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from screening import avif, dicom
from screening.errors import ImageError

INPUT_SIZE = 224
ImageSource = str | Path | bytes | Image.Image | np.ndarray

try:  # HEIC/HEIF, what phone cameras save by default: the decoder-only pi-heif (the "heic" extra)
    from pi_heif import register_heif_opener

    register_heif_opener()
    HEIF = True
except ImportError:
    HEIF = False
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")

# Pillow's decompression-bomb limit stays at its default. Pillow only warns between the
# limit and twice it; open_image refuses that band itself, so the warning is redundant.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# A broken EXIF block is passed over (open_image); Pillow's warning would be a terminal line per file.
warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)


_SRGB = ImageCms.createProfile("sRGB")
# A HEIC's or an AVIF's colour may be given as primaries (its "nclx" box, ITU-T H.273 codes)
# instead of an ICC profile. Codes 1 and 2 are sRGB's primaries or unspecified: left as they
# are. Transfer codes 13 (sRGB) and BT.709's family (1, 6, 14, 15) are read with the sRGB
# curve; HDR curves (PQ, HLG) and others are left as they are.
_SRGB_PRIMARIES = avif.PRIMARIES[1]  # BT.709's, which sRGB shares
_AS_SRGB_PRIMARIES = (1, 2)
_SRGB_CURVE_TRANSFERS = (1, 6, 13, 14, 15)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
_LINEAR_STEPS = 4096  # linear light is rounded to 1/4095 before the sRGB curve puts it back in 8 bits

#: MobileNet's input scaling, x * scale + offset: [0, 255] -> [-1, 1]; the model's first layer.
SCALING = {"scale": 1 / 127.5, "offset": -1.0}


def open_image(source: ImageSource) -> Image.Image:
    """Open a path, bytes, PIL image or array as an upright RGB PIL image, or raise ImageError.

    Large JPEGs are decoded at a reduced scale (still >= 224 px); the source's upright size
    is kept in ``img.info["source_size"]``.
    """
    if isinstance(source, np.ndarray):
        img = _to_rgb(_array_to_image(source))
        img.info["source_size"] = img.size
        return img
    if isinstance(source, Image.Image):
        img = source
        size = img.info.get("source_size", img.size)
    else:
        name = "image bytes" if isinstance(source, bytes) else str(source)
        try:
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)  # refuses over 2x the limit
            if img.width * img.height > Image.MAX_IMAGE_PIXELS * (2 if img.format == "JPEG" else 1):
                raise Image.DecompressionBombError(img.size)  # a JPEG decodes at 1/8 scale: a 108 MP photo takes 2 MP
            size = img.size
            img.draft("RGB", (INPUT_SIZE, INPUT_SIZE))
            img.load()
            if img.format == "AVIF" and not img.info.get("icc_profile"):  # Pillow does not report its nclx
                img.info["nclx_profile"] = avif.nclx(source)
        except FileNotFoundError:
            raise ImageError(f"{name}: file not found") from None
        except IsADirectoryError:
            raise ImageError(f"{name}: is a folder, not an image") from None
        except UnidentifiedImageError:
            if dicom.is_dicom(source):
                img = dicom.read(source, name)
                size = img.size
            elif not HEIF and _is_heif(source):
                raise ImageError(f"{name}: a HEIC/HEIF image; reading it needs the optional pi-heif package "
                                 "(pip install pi-heif), or save it as JPEG") from None
            else:
                raise ImageError(f"{name}: not a readable image") from None
        except Image.DecompressionBombError:
            raise ImageError(
                f"{name}: image is too large (over {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, "
                f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} for a JPEG), refused as a possible decompression bomb; "
                "save it at a lower resolution"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError, RuntimeError) as err:  # RuntimeError: AVIF, EOFError: HEIC
            raise ImageError(f"{name}: damaged or truncated image ({' '.join(str(err).split())})") from None  # one line
    try:
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8) and "source_size" not in img.info:
            size = size[::-1]  # EXIF says the picture is turned a quarter
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001, S110  a broken EXIF block should not lose an otherwise good image
        pass
    rgb = _to_rgb(_to_srgb(img))
    rgb.info["source_size"] = tuple(size)
    return rgb


def _to_srgb(img: Image.Image) -> Image.Image:
    """The pixels in sRGB, as the model learned them (HAM10000's images carry no colour profile,
    so they are sRGB): an embedded ICC profile, such as a phone's Display P3 or a camera's
    Adobe RGB, is applied as a browser applies it to show the image (without one, primaries a
    HEIC or an AVIF states instead). Without it the model would see those colours duller than
    anyone looking at the picture. A profile that cannot be used leaves the pixels as they are."""
    icc = img.info.get("icc_profile")
    if not icc:
        return _nclx_to_srgb(img)
    if img.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return img
    try:
        out = ImageCms.applyTransform(img, _transform_to_srgb(icc, img.mode))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return img
    out.info = {k: v for k, v in img.info.items() if k != "icc_profile"}
    return out


def _nclx_to_srgb(img: Image.Image) -> Image.Image:
    """A HEIC or an AVIF whose colour is given as primaries and a curve (pi-heif's
    ``nclx_profile``, or :func:`screening.avif.nclx`), not as an ICC profile, converted to sRGB:
    a phone's Display P3 read as sRGB reaches the model duller, as with an ICC profile ignored
    (``benchmarks/colour_profile.py``)."""
    nclx = img.info.get("nclx_profile")
    if (not isinstance(nclx, dict) or img.mode not in ("RGB", "RGBA")
            or nclx.get("color_primaries") in _AS_SRGB_PRIMARIES
            or nclx.get("transfer_characteristics") not in _SRGB_CURVE_TRANSFERS):
        return img
    try:
        primaries = tuple((float(nclx[f"color_primary_{c}_x"]), float(nclx[f"color_primary_{c}_y"]))
                          for c in ("red", "green", "blue", "white"))
        matrix = _matrix_to_srgb(primaries)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, np.linalg.LinAlgError):
        return img
    arr = np.asarray(img)
    out = arr.copy()  # alpha, if any, as it is
    to_steps = (matrix.T * (_LINEAR_STEPS - 1)).astype(np.float32)
    for top in range(0, arr.shape[0], 256):  # in bands: a 12 MP photo's floats would take 145 MB at once
        linear = _srgb_to_linear()[arr[top:top + 256, :, :3]] @ to_steps
        linear += 0.5  # rounded by the cast below
        np.clip(linear, 0, _LINEAR_STEPS - 1, out=linear)
        out[top:top + 256, :, :3] = _linear_to_srgb()[linear.astype(np.uint16)]
    converted = Image.fromarray(out, img.mode)
    converted.info = {k: v for k, v in img.info.items() if k != "nclx_profile"}
    return converted


def _xyz(x: float, y: float) -> np.ndarray:
    """The XYZ of chromaticity (x, y) at luminance 1."""
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def _rgb_to_xyz(primaries: tuple[tuple[float, float], ...]) -> np.ndarray:
    """The RGB -> XYZ matrix of red, green and blue chromaticities and a white point (x, y)."""
    rgb, white = np.array([_xyz(*xy) for xy in primaries[:3]]).T, _xyz(*primaries[3])
    return rgb * np.linalg.solve(rgb, white)


@lru_cache(maxsize=8)
def _matrix_to_srgb(primaries: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Linear RGB of ``primaries`` -> linear sRGB, the white adapted to D65 (Bradford), as a
    relative colorimetric ICC transform does."""
    source_white, srgb_white = _xyz(*primaries[3]), _xyz(*_SRGB_PRIMARIES[3])
    adapt = np.linalg.inv(_BRADFORD) @ np.diag((_BRADFORD @ srgb_white) / (_BRADFORD @ source_white)) @ _BRADFORD
    return np.linalg.inv(_rgb_to_xyz(_SRGB_PRIMARIES)) @ adapt @ _rgb_to_xyz(primaries)


@lru_cache(maxsize=1)
def _srgb_to_linear() -> np.ndarray:
    """8-bit sRGB -> linear light, a 256-entry table."""
    v = np.arange(256) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


@lru_cache(maxsize=1)
def _linear_to_srgb() -> np.ndarray:
    """Linear light in ``_LINEAR_STEPS`` steps -> 8-bit sRGB, a table."""
    v = np.arange(_LINEAR_STEPS) / (_LINEAR_STEPS - 1)
    return np.rint(255 * np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)).astype(np.uint8)


@lru_cache(maxsize=16)
def _transform_to_srgb(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    """Built once per profile (a folder from one camera shares one; building costs ~7 ms, more
    than decoding). NOCACHE: lcms2 may then apply one transform from several threads."""
    return ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)), _SRGB, mode,
                                   "RGBA" if mode == "RGBA" else "RGB",
                                   renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                   flags=ImageCms.Flags.NOCACHE)


def _header(source: str | Path | bytes, n: int) -> bytes:
    """The first ``n`` bytes of a file or of bytes (fewer, or none, where there are not so many)."""
    if isinstance(source, bytes):
        return source[:n]
    try:
        with open(source, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _is_heif(source: str | Path | bytes) -> bool:
    """An ISO media file of a HEIF brand (the bytes after ``ftyp``), whatever its name."""
    head = _header(source, 12)
    return head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited onto white."""
    if img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if arr.max(initial=0) > 255:
            arr = arr / 257.0  # 16-bit range to 8-bit
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        try:
            img = img.convert("RGB")
        except (ValueError, OSError) as err:
            raise ImageError(f"unsupported image mode {img.mode!r} ({err})") from None
    return img


def _array_to_image(arr: np.ndarray) -> Image.Image:
    """An (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array as an 8-bit L, RGB or RGBA image, read
    as its type is usually meant: uint8 as is, 16-bit integers over 0-65535 (as a 16-bit file
    is read), floats over 0-1 (scikit-image, matplotlib) where none exceeds 1, else over 0-255
    (``keras.utils.img_to_array``). Clipping them to 0-255, as before, made a 0-1 image black
    and a 16-bit one white, and each was scored all the same."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or arr.ndim == 3 and arr.shape[-1] in (3, 4)) or not arr.size:
        raise ImageError(f"array of shape {arr.shape} is not an image (H, W[, 1|3|4])")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ImageError(f"array of type {arr.dtype} is not an image (uint8, 16-bit integers or floats)")
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.nan_to_num(arr.astype(np.float64))
        arr = arr * 255.0 if arr.max() <= 1.0 else arr
    elif arr.dtype.itemsize > 1 and arr.max() > 255:
        arr = arr / 257.0
    arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "L" if arr.ndim == 2 else "RGBA" if arr.shape[-1] == 4 else "RGB")


def center_square(img: Image.Image) -> Image.Image:
    """The centre square: matches how HAM10000's 224 copies were cut from the 4:3 originals."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def preprocess(source: ImageSource, size: int = INPUT_SIZE) -> np.ndarray:
    """Any image source -> ``(size, size, 3)`` uint8 RGB, ready for the model."""
    img = center_square(open_image(source))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8)
