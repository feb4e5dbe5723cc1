"""Stage what one training command needs on a lent GPU machine, in parts small enough to
travel there (about 64 MiB per call, the repository's tracked files included; ``../shared``
does not go).

    python build/stage_training_data.py [--out runs/stage] [--part-mib MIB] [--no-wheels] -- TRAIN_OPTIONS

TRAIN_OPTIONS are the training command's own but ``--run`` (``../shared/data/ham10000
--train-prefer images_224,images_200x150 ...``), so the split and the copy of each image are
chosen by its code: the training and validation images it reads, the metadata, and for every
other image (the test split, and with ``--limit`` the training images left out: training never
opens them, but each metadata row must find a file) its smallest copy; then its ImageNet
weights file, and the wheels of Keras and the two packages it needs that the machine lacks (it
has JAX, not Keras), for its Python 3.12, at the versions installed here. OUT/part1,
OUT/part2... each hold ``ham10000/<folder>/<file>``, ``weights/<file>`` and ``wheels/<file>``
(at most ``--part-mib`` each, counted as in a tar; by default what fits in a call beside the
repository's tracked files); part1 holds ``stage.json``, where each goes. The script then
checks that the staged folder gives the command the same training and validation rows, copy
for copy, and prints what to carry in each call. The last call runs ``build/gpu_runs.py``,
which puts the files in place and trains; the run's ``split.csv`` names the paths of
``../shared`` here too (for ``train --calibrate-only`` on what comes back).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# What the lent machines lack and what they run (KINDS.md of the device tool, 2026-11: Python
# 3.12 with JAX 0.11.2 and Keras's other needs, but no Keras)
WHEELS = ("keras", "namex", "optree")
DEVICE_PYTHON = "3.12"
DEVICE_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
MANIFEST = "stage.json"
CALL_BYTES = 64 * 2**20  # what one device call carries: the working tree, counted as a tar
MARGIN = 3 * 2**20  # for untracked files, folders' entries and the tar's end


def needed(table: pd.DataFrame, data: Path) -> list[Path]:
    """The files a run with this split table opens (training and validation rows' copies), then
    the smallest copy of every other image (the test split, and training images ``--limit``
    leaves out: each metadata row must find a file), and the metadata: relative to ``data``."""
    from screening.data import folder_order
    from screening.info import DATASET

    opened = table[table["split"] != "test"]
    read = [Path(p).resolve().relative_to(data.resolve()) for p in opened["path"]]
    copies: dict[str, list[Path]] = {}
    for folder in folder_order():
        for f in (data / folder).iterdir() if (data / folder).is_dir() else ():
            copies.setdefault(f.stem, []).append(f)
    read_ids = set(opened["image_id"])
    others = [min(files, key=lambda f: f.stat().st_size).relative_to(data)
              for image, files in copies.items() if image not in read_ids]
    return [Path(DATASET["metadata"]), *read, *others]


def tar_bytes(size: int) -> int:
    """What a file of ``size`` bytes takes in a tar: a 512-byte header, the data in 512-byte blocks."""
    return 512 + -(-size // 512) * 512


def room_per_call() -> int:
    """Bytes a part may take in a call beside the repository's tracked files."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    sizes = [(ROOT / name).stat().st_size for name in tracked.decode().split("\0") if (ROOT / name).is_file()]
    return CALL_BYTES - MARGIN - sum(map(tar_bytes, sizes))


def parts(files: list[tuple[Path, str]], limit: int) -> list[list[tuple[Path, str]]]:
    """``files`` (source, where in a part) in order, cut into runs of at most ``limit`` bytes as tarred."""
    out, size = [[]], 0
    for source, where in files:
        n = tar_bytes(source.stat().st_size)
        if out[-1] and size + n > limit:
            out.append([])
            size = 0
        out[-1].append((source, where))
        size += n
    return out


def wheels(folder: Path) -> list[Path]:
    """Download the wheels of ``WHEELS``, at the versions installed here, for the machine."""
    platforms = [arg for name in DEVICE_PLATFORMS for arg in ("--platform", name)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", DEVICE_PYTHON, "--implementation", "cp", *platforms, "-d", str(folder),
                    *(f"{name}=={version(name)}" for name in WHEELS)], check=True)
    return sorted(folder.glob("*.whl"))


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
    p.add_argument("--part-mib", type=float, help="most a part may take (default: what fits in a call)")
    p.add_argument("--wheels", action=argparse.BooleanOptionalAction, default=True,
                   help="also the Keras wheels the machine lacks (downloaded: needs the package index)")
    args = p.parse_args(mine)
    if not train_options:
        p.error("give the training command's options after --")

    from screening.errors import UserError
    from screening.train import parser as train_parser
    from screening.train import split_table

    if "--run" in train_options:  # each recipe on the machine gets its own run folder
        at = train_options.index("--run")
        train_options = train_options[:at] + train_options[at + 2:]
    recipe = train_parser().parse_args([*train_options, "--run", str(args.out / "run")])
    data = Path(recipe.data)
    table = split_table(recipe)
    files = [(data / f, f"ham10000/{f.as_posix()}") for f in needed(table, data)]
    weights = Path(recipe.weights)
    if weights.is_file():
        files.append((weights, f"weights/{weights.name}"))
    if args.out.exists():
        shutil.rmtree(args.out)
    with tempfile.TemporaryDirectory() as downloads:
        if args.wheels:
            files += [(w, f"wheels/{w.name}") for w in wheels(Path(downloads))]
        chunks = parts(files, int(args.part_mib * 2**20) if args.part_mib else room_per_call())
        for k, chunk in enumerate(chunks, start=1):
            for source, where in chunk:
                place(source, args.out / f"part{k}" / where)
    # On the machine, from the repository root: where the files go, as the options name them.
    manifest = {"data": str(recipe.data), "weights": str(weights) if weights.is_file() else None}
    (args.out / "part1" / MANIFEST).write_text(json.dumps(manifest, indent=2))
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
    sizes = [sum(tar_bytes(f.stat().st_size) for f in (args.out / f"part{k}").rglob("*") if f.is_file()) / 2**20
             for k in range(1, len(chunks) + 1)]
    print(f"{len(files)} files in {len(chunks)} parts ({', '.join(f'{s:.1f}' for s in sizes)} MiB as tarred); the staged "
          "folder gives the command the same training and validation rows, copy for copy")
    for k in range(1, len(chunks) + 1):
        print(f"call {k}: carry {args.out / f'part{k}'}" + (" (back to back: the machine keeps each part while "
                                                            "it stays warm)" if k < len(chunks) else ""))
    print(f"in call {len(chunks)}, run: python3 build/gpu_runs.py --stage {args.out} --base "
          f"\"{' '.join(train_options)}\" \"NAME OPTIONS\" ...  (without --run; see its --help)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
