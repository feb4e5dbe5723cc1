"""The app's memory over a long session: assessments (and every tenth a PDF record) of many
images in one process, its resident memory printed as it goes. A clinic leaves the app
running all day; memory that grows with each image would end it.

    python benchmarks/app_memory.py [--images 350] [--model BUNDLE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HAM = ROOT.parent / "shared" / "data" / "ham10000"


def resident_mb() -> int:
    """This process's resident memory (Linux's /proc)."""
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=350)
    p.add_argument("--model", type=Path)
    args = p.parse_args()
    from screening.app import ScreeningApp

    images = (sorted((HAM / "originals_600x450").glob("*.jpg"))[:50]
              + sorted((HAM / "images_200x150").glob("*.jpg")))[: args.images]
    app, start = ScreeningApp(args.model), time.perf_counter()
    marks = {20, 100, len(images) // 2, len(images)}
    for i, image in enumerate(images, 1):
        app.predict(str(image))
        if i % 10 == 0:
            app.record(str(image))
        if i in marks:
            print(f"{i} assessments, {i // 10} records: {resident_mb()} MB resident, "
                  f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
