"""What ``--prevalence`` does to the malignancy probability's calibration where malignant lesions
are rarer (or commoner) than among the validation images it was calibrated on.

The shipped model's validation predictions (``docs/model/validation/predictions.csv``) are
resampled, class by class, to a given malignant share (label shift: each class's images as
they were, only the mix changes), and the expected calibration error of the malignancy
probability is measured as shown by default and as converted with ``--prevalence``.

    python benchmarks/prevalence.py [--predictions CSV] [--repeats 200]

The scaling was fitted on these same images, so at their own share the figure is in-sample;
what the comparison shows is what the conversion adds at other shares. ``--predictions
docs/model/test/predictions.csv`` measures it out of sample, on the hold-out test split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from screening.calibration import prevalence_shift, shifted
from screening.info import MALIGNANT
from screening.metrics import binned, calibration_error

BINS = 10  # as screening.metrics.malignancy_reliability, behind the model card's malignancy ECE


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--predictions", type=Path, default=ROOT / "docs/model/validation/predictions.csv")
    p.add_argument("--shares", type=float, nargs="+", default=[0.02, 0.05, 0.10, 0.30])
    p.add_argument("--images", type=int, default=2000, help="images per resample")
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args()
    df = pd.read_csv(args.predictions)
    malignant = df["dx"].isin(MALIGNANT).to_numpy()
    shown = df["malignancy_probability"].to_numpy()
    own = malignant.mean()
    rng = np.random.default_rng(0)
    print(f"{args.predictions}: {len(df)} images, {own:.1%} malignant; {args.repeats} resamples of {args.images} images each")
    print("malignant share | ECE as shown | ECE with --prevalence | mean probability shown / converted / observed")
    for share in [own, *args.shares]:
        shift = prevalence_shift(share, own)
        converted = np.array([shifted(float(q), shift) for q in shown])
        ece_shown, ece_converted, means = [], [], []
        for _ in range(args.repeats):
            k = round(share * args.images)
            i = np.concatenate([rng.choice(np.flatnonzero(malignant), k),
                                rng.choice(np.flatnonzero(~malignant), args.images - k)])
            ece_shown.append(calibration_error(binned(shown[i], malignant[i], BINS)))
            ece_converted.append(calibration_error(binned(converted[i], malignant[i], BINS)))
            means.append((shown[i].mean(), converted[i].mean(), malignant[i].mean()))
        m = np.mean(means, axis=0)
        print(f"{share:15.1%} | {np.mean(ece_shown):12.3f} | {np.mean(ece_converted):21.3f} | "
              f"{m[0]:.3f} / {m[1]:.3f} / {m[2]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
