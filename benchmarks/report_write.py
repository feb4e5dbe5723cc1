"""Time to write the Excel worklist, per row, as the folder grows: a long worklist must cost
what a short one does per image, not more (the thumbnails once took a quadratic path).

    python benchmarks/report_write.py ../shared/data/ham10000 [--rows 1000 4000] [--thumbnails]

Rows are Results with generated probabilities (no model runs: this times the report alone);
with ``--thumbnails`` each row gets the preview ``batch.py --thumbnails`` makes of a HAM10000
image. Prints seconds and milliseconds per row for each row count, then what replacing that
worklist costs (``batch.py --overwrite``) when a tenth of its rows hold a reader's note: reading
the notes, and writing the new worklist with them carried over.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="the HAM10000 folder (its images_200x150 give the previews)")
    p.add_argument("--rows", type=int, nargs="+", default=[1000, 4000])
    p.add_argument("--thumbnails", action="store_true")
    args = p.parse_args()

    import pandas as pd

    from screening import report, reviews
    from screening.batch import thumbnail_png
    from screening.inference import Result
    from screening.info import CLASS_CODES

    images = sorted((args.data / "images_200x150").glob("*.jpg"))[: max(args.rows)]
    previews = [thumbnail_png(path) for path in images] if args.thumbnails else []
    rng = np.random.default_rng(0)
    info = report.RunInfo(folder=str(args.data), threshold=0.13, tta=False, model_name="benchmark",
                          model_version="0", model_sha256="0" * 64, software_version="0", date="2026-11-27",
                          elapsed_s=1.0, validated=(0.9, 0.75), calibration="")
    for n in args.rows:
        results = []
        for _ in range(n):
            probs = rng.dirichlet(np.ones(len(CLASS_CODES)))
            results.append(Result(source="", probabilities=dict(zip(CLASS_CODES, probs.tolist())),
                                  malignancy_probability=float(probs[[0, 1, 4]].sum()),
                                  refer=bool(probs[[0, 1, 4]].sum() > 0.3), width=200, height=150))
        df = report.rows(results, [path.name for path in images[:n]])
        thumbs = dict(enumerate(previews[:n])) if previews else None
        hashes = [f"{i:064x}" for i in range(n)]  # as batch.py writes them (hashing: 0.04 ms a file)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "report.xlsx"
            start = time.perf_counter()
            report.write(df, out, info, thumbs, hashes=hashes)
            took = time.perf_counter() - start
            written = pd.DataFrame({"file": df["file"][::10], "review": "seen", "worklist date": "",
                                    "sha256": hashes[::10]})
            report.write(df, out, info, thumbs, notes=written, hashes=hashes)  # a tenth of the rows noted
            start = time.perf_counter()
            notes = reviews.read(out, report.OWN_COLUMNS)
            read = time.perf_counter() - start
            report.write(df, out, info, thumbs, notes=notes, hashes=hashes)
            replaced = time.perf_counter() - start
            assert len(notes) == len(written) and info.reviews.startswith(f"{len(written)} carried over")
        print(f"{n} rows{' with thumbnails' if thumbs else ''}: {took:.1f} s, {1000 * took / n:.2f} ms per row; "
              f"replaced with {len(notes)} notes carried over: {replaced:.1f} s, of which reading the notes {read:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
