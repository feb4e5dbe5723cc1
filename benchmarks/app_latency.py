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


def timed(call, repeats: int) -> list[float]:
    """Seconds each of ``repeats`` calls took."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return times


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
    times = timed(lambda: app.predict(str(args.image)), args.repeats)
    print(f"first call (model load + compile + predict + Grad-CAM): {first:.2f} s; warm: median "
          f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {args.repeats} calls "
          f"({args.image.name})")
    first_record, *records = timed(lambda: app.record(str(args.image)), 1 + args.repeats)
    print(f"PDF record: first {first_record:.2f} s; warm: median {statistics.median(records) * 1000:.0f} ms, "
          f"max {max(records) * 1000:.0f} ms over {args.repeats} calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
