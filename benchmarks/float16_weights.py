"""What storing the model's weights as float16 would cost: the packaged model scored on the
validation images twice, as stored (float32) and with every float32 weight rounded to float16
(what a float16 bundle would load), through the scoring path batch.py and the app share.

    python benchmarks/float16_weights.py ../shared/data/ham10000 [--labels CSV] [--model BUNDLE]

``--labels``: ``image_id,dx`` of the images to score (default: the validation split's
``docs/model/validation/predictions.csv``). Prints each version's balanced accuracy, malignant
AUROC, melanoma recall, sensitivity and specificity at the model's threshold, then how far the
probabilities moved and how many REFER flags and top classes changed, and the weights' size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="the HAM10000 folder")
    p.add_argument("--labels", type=Path, default=ROOT / "docs" / "model" / "validation" / "predictions.csv")
    p.add_argument("--model", type=Path, help="model bundle (default: the packaged model)")
    args = p.parse_args()

    from screening.data import find_images, labels_to_indices, read_labels
    from screening.inference import Screener, forward_fn
    from screening.info import CLASS_CODES
    from screening.metrics import auroc, balanced_accuracy, confusion_matrix, is_malignant, sensitivity_specificity

    labels = read_labels(args.labels)
    paths = find_images(labels["image_id"], [args.data / f for f in ("images_224", "originals_600x450",
                                                                       "images_200x150")])
    y = labels_to_indices(labels["dx"])
    scored = {}
    for kind in ("float32", "float16"):
        screener = Screener(args.model)
        weights = screener.model.get_weights()
        if kind == "float16":
            screener.model.set_weights([w.astype(np.float16).astype(w.dtype) if w.dtype == np.float32 else w
                                        for w in weights])
            screener._forward = forward_fn(screener.model, screener.tta)  # compiled anew with those weights
        results = list(screener.score(paths, workers=2))
        probs = np.array([[r.probabilities[c] for c in CLASS_CODES] for r in results])
        score = np.array([r.malignancy_probability for r in results])
        cm = confusion_matrix(y, probs.argmax(axis=1))
        sens, spec = sensitivity_specificity(is_malignant(y), score, screener.threshold)
        mel = CLASS_CODES.index("mel")
        print(f"{kind}: balanced accuracy {balanced_accuracy(cm):.4f}, malignant AUROC "
              f"{auroc(is_malignant(y), score):.4f}, melanoma recall {cm[mel, mel] / cm[mel].sum():.4f}, "
              f"sensitivity {sens:.4f} / specificity {spec:.4f} at {screener.threshold:.4f}")
        scored[kind] = probs, score, np.array([r.refer for r in results])
    (p32, m32, f32), (p16, m16, f16) = scored["float32"], scored["float16"]
    n = sum(int(w.size) for w in weights)
    print(f"{len(paths)} images: class probabilities moved by up to {np.abs(p32 - p16).max():.4f}, the malignancy "
          f"probability by up to {np.abs(m32 - m16).max():.4f}; {int((f32 != f16).sum())} REFER flags and "
          f"{int((p32.argmax(1) != p16.argmax(1)).sum())} top classes changed")
    print(f"weights: {n:,} numbers, {4 * n / 2**20:.1f} MiB as float32, {2 * n / 2**20:.1f} MiB as float16")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
