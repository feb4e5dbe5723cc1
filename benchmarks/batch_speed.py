"""Batch command speed against stock Keras-JAX MobileNet inference, in the same run.

    python benchmarks/batch_speed.py ../shared/data/ham10000 [--n 1500] [--model BUNDLE]

Builds a temporary folder of links to N HAM10000 images of 224-600 px (every full-size
original, the rest from images_224), times the whole ``batch.py`` command on it (process
start, model load, decoding, scoring, Excel report), then measures stock Keras MobileNet
inference (images/s, batch 32, JAX backend) in this machine state, and prints both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path)
    p.add_argument("--n", type=int, default=1500)
    p.add_argument("--model", type=Path)
    p.add_argument("--tta", action="store_true", help="run batch.py with --tta")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    originals = sorted((args.data / "originals_600x450").glob("*.jpg"))
    taken = {p.name for p in originals}
    small = sorted(p for p in (args.data / "images_224").glob("*.jpg") if p.name not in taken)
    picks = (originals + small)[: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for src in picks:
            (folder / src.name).symlink_to(src.resolve())
        cmd = [sys.executable, str(ROOT / "batch.py"), str(folder), "--out", str(Path(tmp) / "report.xlsx"), "--quiet"]
        if args.model:
            cmd += ["--model", str(args.model)]
        if args.tta:
            cmd += ["--tta"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
    sys.path.insert(0, str(ROOT))
    from screening.bench import measure

    stock = measure(fast=False, batch=32, repeats=6, train_blocks=None)["infer"]
    result = {"images": len(picks), "originals_600x450": min(len(originals), len(picks)),
              "batch_wall_s": round(wall, 2), "batch_ips": round(len(picks) / wall, 2),
              "stock_infer_ips": round(stock, 2), "ratio": round(len(picks) / wall / stock, 2)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"batch.py{' --tta' if args.tta else ''} on {len(picks)} images ({result['originals_600x450']} at 600x450, the rest 224x224): "
              f"{wall:.1f} s wall, {result['batch_ips']:.1f} images/s (whole command, incl. start-up and report)")
        print(f"stock Keras-JAX MobileNet inference, batch 32: {stock:.1f} images/s")
        print(f"ratio: {result['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
