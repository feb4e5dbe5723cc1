"""Warm single-image latency of the app's handlers, in-process: the assessment (prediction +
Grad-CAM) and the PDF record (the same plus drawing and writing the page).

    python benchmarks/app_latency.py [IMAGE] [--model BUNDLE] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", nargs="?", type=Path,
                   default=Path("../shared/data/ham10000/originals_600x450/ISIC_0024306.jpg"))
    p.add_argument("--model", type=Path)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    from screening.app import ScreeningApp

    start = time.perf_counter()
    app = ScreeningApp(args.model)
    app.predict(str(args.image))
    first = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        app.predict(str(args.image))
        times.append(time.perf_counter() - t)
    print(f"first call (model load + compile + predict + Grad-CAM): {first:.2f} s; warm: median "
          f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {args.repeats} calls "
          f"({args.image.name})")
    t = time.perf_counter()
    app.record(str(args.image))  # the first draws with matplotlib's fonts loaded
    first_record = time.perf_counter() - t
    records = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        app.record(str(args.image))
        records.append(time.perf_counter() - t)
    print(f"PDF record: first {first_record:.2f} s; warm: median {statistics.median(records) * 1000:.0f} ms, "
          f"max {max(records) * 1000:.0f} ms over {args.repeats} calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
