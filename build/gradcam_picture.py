"""Render docs/gradcam_grid.jpg: where the packaged model looks, when right and when wrong.

    python build/gradcam_picture.py [--predictions docs/model/validation/predictions.csv]

For each class, the first validation image the packaged model classifies correctly and the
first it gets wrong (in the order of the evaluation's predictions.csv), each beside the app's
Grad-CAM overlay for the predicted class. Images are read from ../shared, never copied into
the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HAM = ROOT.parent / "shared" / "data" / "ham10000"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--predictions", type=Path, default=ROOT / "docs" / "model" / "validation" / "predictions.csv")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "gradcam_grid.jpg")
    args = p.parse_args()

    import matplotlib

    import screening  # noqa: F401  (selects the JAX backend before keras loads)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from screening.explain import GradCAM
    from screening.inference import Screener
    from screening.info import CLASS_CODES
    from screening.preprocessing import open_image, preprocess

    table = pd.read_csv(args.predictions)
    picks = []
    for code in CLASS_CODES:
        rows = table[table["dx"] == code]
        for right in (True, False):
            hit = rows[(rows["predicted_class"] == code) == right].head(1)
            picks += [(row.image_id, code, row.predicted_class) for row in hit.itertuples()]
    screener = Screener()
    cam = GradCAM(screener.model)

    def image_of(image_id: str) -> np.ndarray:
        path = next(f / f"{image_id}.jpg" for f in (HAM / "images_224", HAM / "images_200x150")
                    if (f / f"{image_id}.jpg").is_file())
        return preprocess(open_image(path))

    rows = -(-len(picks) // 2)
    fig, axes = plt.subplots(rows, 4, figsize=(9, 2.4 * rows))
    for k, (image_id, truth, predicted) in enumerate(picks):
        x = image_of(image_id)
        row, col = divmod(k, 2)
        verdict = "right" if truth == predicted else "wrong"
        for j, (panel, title) in enumerate(((x, f"{image_id}: truly {truth}"),
                                            (cam.overlay(x, CLASS_CODES.index(predicted)),
                                             f"predicted {predicted} ({verdict})"))):
            ax = axes[row, col * 2 + j]
            ax.imshow(np.asarray(panel))
            ax.set_title(title, fontsize=7, color="black" if verdict == "right" or j == 0 else "#8a1c1c")
            ax.set_axis_off()
    for ax in axes.ravel()[len(picks) * 2:]:
        ax.set_axis_off()
    fig.suptitle("Grad-CAM of the packaged model: one validation image per class it gets right (left pair) and one "
                 "it gets wrong (right pair)\nHAM10000 images, CC BY-NC 4.0, Tschandl et al. 2018", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(args.out, dpi=80, pil_kwargs={"quality": 85})
    print(f"wrote {args.out}: {len(picks)} validation images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
