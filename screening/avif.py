"""The colour an AVIF file states as primaries and a curve (its ``colr`` box of type ``nclx``,
ITU-T H.273 codes) rather than as an ICC profile. Pillow decodes AVIF but does not report
them, so a phone's Display P3 picture reached the model read as sRGB, duller (as a HEIC's did
before pi-heif's report of them was used); the container's boxes are read here instead.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# H.273 colour primaries: red, green, blue and white (x, y). 10 (CIE XYZ) has no RGB gamut.
PRIMARIES: dict[int, tuple[tuple[float, float], ...]] = {
    1: ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060), (0.3127, 0.3290)),  # BT.709, sRGB
    4: ((0.67, 0.33), (0.21, 0.71), (0.14, 0.08), (0.310, 0.316)),  # BT.470 M
    5: ((0.64, 0.33), (0.29, 0.60), (0.15, 0.06), (0.3127, 0.3290)),  # BT.601 625 lines
    6: ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), (0.3127, 0.3290)),  # BT.601 525 lines
    7: ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070), (0.3127, 0.3290)),  # SMPTE 240M
    8: ((0.681, 0.319), (0.243, 0.692), (0.145, 0.049), (0.310, 0.316)),  # generic film
    9: ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046), (0.3127, 0.3290)),  # BT.2020
    11: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.314, 0.351)),  # DCI-P3
    12: ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060), (0.3127, 0.3290)),  # Display P3
    22: ((0.630, 0.340), (0.295, 0.605), (0.155, 0.077), (0.3127, 0.3290)),  # EBU 3213
}
MAX_META = 1 << 20  # the item boxes take a few hundred bytes; more is not an AVIF to trust


def nclx(source: str | Path | bytes) -> dict | None:
    """The primary image's nclx colour in the shape pi-heif reports a HEIC's
    (``color_primaries``, ``transfer_characteristics``, ``color_primary_red_x``...; the
    chromaticities only for codes in :data:`PRIMARIES`), or None where the file states none or
    its boxes cannot be read."""
    try:
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as f:
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
            meta = next((f.read(n) for kind, n in _boxes(f, size) if kind == b"meta" and n <= MAX_META), None)
        return _primary_nclx(meta) if meta else None
    except (OSError, struct.error, KeyError, IndexError, ValueError):
        return None


def _boxes(f: BinaryIO, end: int) -> Iterator[tuple[bytes, int]]:
    """(type, payload size) of each box from ``f``'s position to ``end``, up to the first that
    does not fit, with ``f`` at the payload's start; a payload not read is skipped (the image
    data, often megabytes before the boxes that describe it, is never read)."""
    while f.tell() + 8 <= end:
        start = f.tell()
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", f.read(8))[0], 16
        elif size == 0:  # to the end
            size = end - start
        if size < header or start + size > end:
            return
        yield kind, size - header
        f.seek(start + size)


def _contents(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of each box in ``data``."""
    f = io.BytesIO(data)
    return [(kind, f.read(n)) for kind, n in _boxes(f, len(data))]


def _primary_nclx(meta: bytes) -> dict | None:
    """The nclx ``colr`` property that the ``ipma`` box gives the ``pitm`` (primary) item."""
    children = dict(_contents(meta[4:]))  # meta is a full box: version and flags first
    primary = struct.unpack_from(">H" if children[b"pitm"][0] == 0 else ">I", children[b"pitm"], 4)[0]
    properties = dict(_contents(children[b"iprp"]))
    listed, ipma = _contents(properties[b"ipco"]), properties[b"ipma"]
    version, flags = ipma[0], int.from_bytes(ipma[1:4], "big")
    (entries,), at = struct.unpack_from(">I", ipma, 4), 8
    for _ in range(entries):
        item = struct.unpack_from(">H" if version < 1 else ">I", ipma, at)[0]
        at += 2 if version < 1 else 4
        count, at = ipma[at], at + 1
        wide = flags & 1
        indices = [(struct.unpack_from(">H", ipma, at + 2 * i)[0] & 0x7FFF) if wide else ipma[at + i] & 0x7F
                   for i in range(count)]
        at += count * (2 if wide else 1)
        if item != primary:
            continue
        for kind, payload in (listed[i - 1] for i in indices if 0 < i <= len(listed)):
            if kind == b"colr" and payload[:4] == b"nclx":
                primaries, transfer, matrix = struct.unpack_from(">HHH", payload, 4)
                stated = {"color_primaries": primaries, "transfer_characteristics": transfer,
                          "matrix_coefficients": matrix, "full_range_flag": payload[10] >> 7}
                for name, xy in zip(("red", "green", "blue", "white"), PRIMARIES.get(primaries, ()), strict=False):
                    stated[f"color_primary_{name}_x"], stated[f"color_primary_{name}_y"] = xy
                return stated
    return None
