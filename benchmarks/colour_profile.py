"""What applying an embedded colour profile changes: HAM10000 validation images converted to
Display P3 and saved with the profile, as a phone stores a photo, scored with the profile
applied (as ``preprocess`` does) and with it ignored, against the sRGB originals.

    python benchmarks/colour_profile.py [--model BUNDLE] [--per-class 40]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def png(img, icc: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **({"icc_profile": icc} if icc else {}))
    return buf.getvalue()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path)
    p.add_argument("--labels", type=Path, default=ROOT / "docs/model/validation/predictions.csv",
                   help="image_id,dx CSV (default: the shipped model's validation images)")
    p.add_argument("--images", type=Path, default=ROOT.parent / "shared/data/ham10000/images_224")
    p.add_argument("--per-class", type=int, default=40)
    args = p.parse_args()
    import numpy as np
    import pandas as pd
    from PIL import Image, ImageCms

    from screening.inference import Screener
    from tests.icc import display_p3_profile

    table = pd.read_csv(args.labels)
    files = [f for f in (args.images / f"{i}.jpg" for i in table["image_id"]) if f.is_file()]
    picked = table.set_index("image_id").loc[[f.stem for f in files]].reset_index()
    picked = picked.groupby("dx").head(args.per_class)
    p3 = display_p3_profile()
    to_p3 = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(p3)),
                                    "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    originals, applied, ignored = [], [], []
    for image_id in picked["image_id"]:
        img = Image.open(args.images / f"{image_id}.jpg").convert("RGB")
        stored = ImageCms.applyTransform(img, to_p3)
        stored.info.pop("icc_profile", None)
        originals.append(png(img))
        applied.append(png(stored, p3))
        ignored.append(png(stored))  # the same pixels, the profile dropped: read as sRGB

    screener = Screener(args.model)
    base = list(screener.score(originals))
    print(f"{len(picked)} validation images ({args.images.name}, up to {args.per_class} per class), "
          f"threshold {screener.threshold:.3f}, against the sRGB originals:")
    for name, sources in (("profile applied", applied), ("profile ignored", ignored)):
        got = list(screener.score(sources))
        moved = np.abs([g.malignancy_probability - b.malignancy_probability for g, b in zip(got, base)])
        print(f"  {name}: malignancy probability moved {moved.mean():.3f} on average (max {moved.max():.2f}); "
              f"REFER flag changed for {sum(g.refer != b.refer for g, b in zip(got, base))}, "
              f"predicted class for {sum(g.predicted_class != b.predicted_class for g, b in zip(got, base))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
