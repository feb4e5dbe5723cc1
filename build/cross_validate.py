"""Run the lever comparisons of the CPU recipe by cross-validation, resumably, one fold at a time.

    python build/cross_validate.py [--folds 3] [--runs runs/cv] [--recipes base sog ...] [--dry-run]

Each recipe below is the proxy recipe plus one lever; each is trained on every fold
(``screening.train --folds K --fold I``), one run after another (the two cores train one run
at full speed), and each run is continued with ``--resume`` where an earlier call stopped.
When a recipe's folds are all done, ``python -m screening.cv`` compares it with ``base`` over
the same folds. Stop it at any time and call it again.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = "../shared/data/ham10000"

#: The proxy recipe every lever is measured against: the CPU recipe at 128 px without its
#: full-size epochs: with 3 folds ~6,000 training images, 35-55 minutes a fold at the step
#: times measured on the two cores (0.30-0.61 s for 32 images), not yet timed as a whole.
PROXY = ("--image-size 128 --head-epochs 1 --epochs 30 --unfreeze-blocks 13 --batch-size 32 --lr 2e-4 "
         "--warmup-epochs 2 --train-prefer images_224,images_200x150 --seed 0 --keep last")

#: Each lever's options on top of the proxy, in the order of their expected gain.
RECIPES: dict[str, str] = {
    "base": "",
    "bn_train": "--batch-norm train",
    "sog": "--colour-constancy shades_of_gray",
    "crop_jitter": "--random-resized-crop 0.5 --colour-jitter 0.2",
    "balanced_batches": "--sampling balanced --class-weight none",
    "no_smoothing": "--label-smoothing 0",
    "longer": "--epochs 45",
}


def finished(run: Path) -> bool:
    return (run / "bundle" / "bundle.json").is_file()


def command(recipe: str, fold: int, folds: int, run: Path) -> list[str]:
    words = [sys.executable, "-m", "screening.train", DATA, "--run", str(run), *shlex.split(PROXY),
             *shlex.split(RECIPES[recipe]), "--folds", str(folds), "--fold", str(fold),
             "--cache", str(run.parent.parent / "cache"), "--verbose", "2"]
    return [*words, "--resume"] if (run / "checkpoint.keras").is_file() else words


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--runs", type=Path, default=Path("runs/cv"))
    p.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    p.add_argument("--dry-run", action="store_true", help="print the commands still to run")
    args = p.parse_args(argv)
    recipes = ["base", *[r for r in args.recipes if r != "base"]]
    for recipe in recipes:
        runs = [args.runs / recipe / f"fold{k}" for k in range(args.folds)]
        for k, run in enumerate(runs):
            if finished(run):
                continue
            words = command(recipe, k, args.folds, run)
            print(" ".join(shlex.quote(w) for w in words), flush=True)
            if not args.dry_run:
                run.mkdir(parents=True, exist_ok=True)
                with open(run / "train.log", "a") as log:
                    subprocess.run(words, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
        if recipe != "base" and all(finished(r) for r in runs):
            base = [str(args.runs / "base" / f"fold{k}") for k in range(args.folds)]
            out = subprocess.run([sys.executable, "-m", "screening.cv", *base, "--against", *map(str, runs),
                                  "--json", str(args.runs / recipe / "cv.json")],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            print(f"## {recipe}: {RECIPES[recipe]}\n{out.stdout}", flush=True)
    summary = {r: json.loads((args.runs / r / "cv.json").read_text()) for r in recipes if (args.runs / r / "cv.json").is_file()}
    if summary:
        (args.runs / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
