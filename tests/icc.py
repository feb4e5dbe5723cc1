"""A Display P3 colour profile built in code, for the tests and benchmarks/colour_profile.py (no
profile file can be assumed installed, and none may be downloaded)."""

from __future__ import annotations

import struct


def display_p3_profile() -> bytes:
    """A minimal ICC v2 RGB profile with Display P3's primaries (D50-adapted) and gamma 2.2: what
    phones embed in their photos, written here since no profile file can be assumed installed."""

    def s15(*values: float) -> bytes:
        return b"".join(struct.pack(">i", round(v * 65536)) for v in values)

    def text(sig: bytes, words: str) -> bytes:
        ascii_ = words.encode() + b"\0"
        return sig + bytes(4) + (struct.pack(">I", len(ascii_)) + ascii_ + bytes(78) if sig == b"desc" else ascii_)

    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(2.2 * 256)) + bytes(2)
    tags = [(b"desc", text(b"desc", "Display P3 (test)")), (b"cprt", text(b"text", "none")),
            (b"wtpt", b"XYZ " + bytes(4) + s15(0.9642, 1.0, 0.8249)),
            (b"rXYZ", b"XYZ " + bytes(4) + s15(0.5151, 0.2412, -0.0011)),
            (b"gXYZ", b"XYZ " + bytes(4) + s15(0.2920, 0.6922, 0.0419)),
            (b"bXYZ", b"XYZ " + bytes(4) + s15(0.1571, 0.0666, 0.7841)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    table, data, start = struct.pack(">I", len(tags)), b"", 128 + 4 + 12 * len(tags)
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table, data = table + sig + struct.pack(">II", start + len(data), len(body)), data + body
    header = (struct.pack(">I", 128 + len(table) + len(data)) + bytes(4) + bytes([2, 0x10, 0, 0])
              + b"mntrRGB XYZ " + bytes(12) + b"acsp" + bytes(28) + s15(0.9642, 1.0, 0.8249) + bytes(48))
    return header + table + data
