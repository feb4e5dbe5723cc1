"""Stage what one training command reads from HAM10000, in parts small enough to travel to a
lent GPU machine, where the shared data does not go (about 64 MiB travels per call, the
repository's tracked files included).

    python build/stage_training_data.py [--out runs/stage] [--part-mib 40] -- TRAIN_OPTIONS

TRAIN_OPTIONS are the training command's own (``../shared/data/ham10000 --run runs/x
--train-prefer images_224,images_200x150 ...``), so the split and the copy of each image are
chosen by its code: the training and validation images it reads, the metadata, and for each
test image (which training never opens, but whose metadata row must find a file) its smallest
copy. OUT/part1, OUT/part2... each hold ``ham10000/<folder>/<file>`` (at most ``--part-mib``
each). The script then checks that the staged folder gives the command the same training and
validation rows, copy for copy, and prints what to carry in each call and the command that
merges the parts there into ``../shared/data/ham10000``, where the paths of the run's
``split.csv`` then also hold here (for ``train --calibrate-only`` on what comes back).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def needed(table: pd.DataFrame, data: Path) -> list[Path]:
    """The files a run with this split table opens (training and validation rows' copies), then
    the smallest copy of each test image, and the metadata: relative to ``data``."""
    from screening.data import folder_order
    from screening.info import DATASET

    read = [Path(p).resolve().relative_to(data.resolve()) for p in table.loc[table["split"] != "test", "path"]]
    copies: dict[str, list[Path]] = {}
    for folder in folder_order():
        for f in (data / folder).iterdir() if (data / folder).is_dir() else ():
            copies.setdefault(f.stem, []).append(f)
    test = [min(copies[i], key=lambda f: f.stat().st_size).relative_to(data)
            for i in table.loc[table["split"] == "test", "image_id"]]
    return [Path(DATASET["metadata"]), *read, *test]


def parts(files: list[Path], data: Path, limit: int) -> list[list[Path]]:
    """``files`` in order, cut into runs of at most ``limit`` bytes."""
    out, size = [[]], 0
    for f in files:
        n = (data / f).stat().st_size
        if out[-1] and size + n > limit:
            out.append([])
            size = 0
        out[-1].append(f)
        size += n
    return out


def place(src: Path, dst: Path) -> None:
    """A hard link where the file system allows one (no second copy on disk), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def same_rows(table: pd.DataFrame, staged: pd.DataFrame, data: Path, merged: Path) -> bool:
    """Whether the staged folder gives the run the same training and validation rows (image,
    split, copy) as the whole data folder."""
    def rows(t: pd.DataFrame, root: Path) -> pd.DataFrame:
        t = t[t["split"] != "test"].copy()
        t["path"] = [Path(p).resolve().relative_to(root.resolve()).as_posix() for p in t["path"]]
        return t.reset_index(drop=True)

    return rows(table, data).equals(rows(staged, merged))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    mine, train_options = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/stage"))
    p.add_argument("--part-mib", type=float, default=40.0)
    args = p.parse_args(mine)
    if not train_options:
        p.error("give the training command's options after --")

    from screening.errors import UserError
    from screening.train import parser as train_parser
    from screening.train import split_table

    recipe = train_parser().parse_args(train_options)
    data = Path(recipe.data)
    table = split_table(recipe)
    files = needed(table, data)
    if args.out.exists():
        shutil.rmtree(args.out)
    chunks = parts(files, data, int(args.part_mib * 2**20))
    for k, chunk in enumerate(chunks, start=1):
        for f in chunk:
            place(data / f, args.out / f"part{k}" / "ham10000" / f)
    with tempfile.TemporaryDirectory() as tmp:  # the parts merged, as the machine will merge them
        merged = Path(tmp) / "ham10000"
        for k in range(1, len(chunks) + 1):
            for f in (args.out / f"part{k}" / "ham10000").rglob("*"):
                if f.is_file():
                    place(f, merged / f.relative_to(args.out / f"part{k}" / "ham10000"))
        recipe.data = merged
        try:
            same = same_rows(table, split_table(recipe), data, merged)
        except UserError as err:  # a folder or an image the command looks for is missing
            same = False
            print(f"error: {err}", file=sys.stderr)
        if not same:
            print("error: the staged folder gives the command other training or validation rows", file=sys.stderr)
            return 1
    sizes = [sum((data / f).stat().st_size for f in chunk) / 2**20 for chunk in chunks]
    print(f"{len(files)} files in {len(chunks)} parts ({', '.join(f'{s:.1f}' for s in sizes)} MiB); the staged "
          "folder gives the command the same training and validation rows, copy for copy")
    for k in range(1, len(chunks) + 1):
        print(f"call {k}: carry {args.out / f'part{k}'}")
    print("then, on the machine: mkdir -p ../shared/data/ham10000 && for p in "
          f"{args.out}/part*; do cp -rl $p/ham10000/. ../shared/data/ham10000/; done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
