"""HAM10000 metadata, image lookup, the lesion-grouped split and the decoded-image cache."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import PIL

from screening import dicom
from screening.errors import UserError
from screening.info import (
    CLASS_CODES,
    DATASET,
    ISIC_IMAGE_COLUMNS,
    ISIC_ONE_HOT,
    ISIC_OUTCOME_COLUMNS,
    ISIC_OUTCOME_VALUES,
    ISIC_UNKNOWN,
    MALIGNANT,
    OUTCOMES,
)
from screening.preprocessing import INPUT_SIZE, preprocess

SPLITS = ("train", "val", "test")
# .jfif and .jpe: JPEG as a browser on Windows saves a picture (Save image as...), and as older tools named it
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif",
                  ".heic", ".heif", *dicom.SUFFIXES)


class DataError(UserError):
    """A problem with the dataset files; the message names the path."""


def read_table(path: Path, what: str = "labels") -> pd.DataFrame:
    """A CSV of text cells, as a spreadsheet saves one: semicolons (Excel where the decimal mark
    is a comma) or tabs between columns, spaces around cells."""
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    try:
        df = pd.read_csv(path, dtype=str)
        if len(df.columns) == 1 and (sep := next((c for c in ";\t" if c in df.columns[0]), None)):
            df = pd.read_csv(path, dtype=str, sep=sep)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from None
    return df.rename(columns=str.strip).apply(lambda column: column.str.strip())


def read_labels(csv_path: str | Path, columns: Sequence[str] = ("image_id", "dx"),
                diagnoses: Sequence[str] = CLASS_CODES) -> pd.DataFrame:
    """Read a labels CSV (the HAM10000 metadata or any ``image_id,dx`` file) and check that
    each ``dx`` is one of ``diagnoses``."""
    path = Path(csv_path)
    df = read_table(path)
    if "dx" in df.columns:
        df["dx"] = df["dx"].str.lower()  # MEL, as ISIC writes the codes
    if "image_id" not in df.columns and "image" in df.columns and set(ISIC_ONE_HOT) & set(df.columns):
        df = _from_one_hot(df, path)
    elif "dx" not in df.columns and set(ISIC_OUTCOME_COLUMNS) & set(df.columns):
        df = _from_isic_outcome(df, path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(df.columns)}")
    unknown = sorted(set(df["dx"]) - set(diagnoses))
    if unknown:
        raise DataError(f"{path}: unknown dx value(s) {', '.join(map(str, unknown))}; known: {', '.join(diagnoses)}")
    return df.reset_index(drop=True)


def _from_one_hot(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """ISIC's ground truth (``image,MEL,NV,...``, one 1.0 per row) as ``image_id,dx``: the
    external test sets a HAM10000 model is measured on come so. Rows of a class the model does
    not know (2019's SCC and UNK) are left out, and the terminal says how many."""
    known = [c for c in df.columns if c in ISIC_ONE_HOT or c in ISIC_UNKNOWN]
    try:
        hot = df[known].astype(float).to_numpy()
    except ValueError:
        raise DataError(f"{path}: the class columns ({', '.join(known)}) must hold 0 or 1") from None
    bad = (hot == 1).sum(axis=1) != 1
    if bad.any():
        raise DataError(f"{path}: {int(bad.sum())} row(s) without exactly one class marked 1, such as "
                        f"{df['image'][bad].iloc[0]}")
    column = np.asarray(known)[hot.argmax(axis=1)]
    other = np.isin(column, list(ISIC_UNKNOWN))
    if other.any():
        counts = ", ".join(f"{int((column == c).sum())} {c} ({ISIC_UNKNOWN[c]})" for c in ISIC_UNKNOWN
                           if (column == c).any())
        print(f"note: {path.name}: {counts} left out: classes the model does not know", file=sys.stderr)
    return pd.DataFrame({"image_id": df["image"][~other],
                         "dx": [ISIC_ONE_HOT[c] for c in column[~other]]}).reset_index(drop=True)


def _from_isic_outcome(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """An ISIC table of benign or malignant (2020's ground truth, the ISIC Archive's metadata,
    2024's) as ``image_id,dx`` labels of malignant or benign, ``lesion_id`` kept where it has
    one. Rows neither benign nor malignant (indeterminate, no verdict) are left out, and the
    terminal says how many."""
    image = next((c for c in ("image_id", *ISIC_IMAGE_COLUMNS) if c in df.columns), None)
    if image is None:
        return df  # read_labels names the missing image_id
    label = next(c for c in ISIC_OUTCOME_COLUMNS if c in df.columns)
    raw = df[label].fillna("").str.lower()
    verdict = raw.map(ISIC_OUTCOME_VALUES)
    other = verdict.isna()
    if other.any():
        shown = ", ".join(sorted({v or "empty" for v in raw[other]})[:3])
        print(f"note: {path.name}: {int(other.sum())} row(s) left out: {label} neither benign nor malignant "
              f"({shown})", file=sys.stderr)
    out = pd.DataFrame({"image_id": df[image], "dx": verdict})
    if "lesion_id" in df.columns:
        out["lesion_id"] = df["lesion_id"]
    return out[~other].reset_index(drop=True)


def folder_order(prefer: Sequence[str] = ()) -> list[str]:
    """Image folders in the order they are searched: ``prefer`` first, then the best copy
    (``DATASET['image_folders']`` order)."""
    return list(prefer) + [f for f in DATASET["image_folders"] if f not in prefer]


def parse_prefer(value: str) -> list[str]:
    """A ``--train-prefer``/``--val-prefer`` value: comma-separated folders, '' for none."""
    return [f.strip() for f in value.split(",") if f.strip()]


def read_metadata(data_dir: str | Path, prefer: Sequence[str] = ()) -> pd.DataFrame:
    """Read ``HAM10000_metadata.csv`` under ``data_dir``, with a ``path`` column per image.

    Each image's path is its copy in the first folder of ``folder_order(prefer)`` that holds it.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder not found: {data_dir}")
    df = read_labels(data_dir / DATASET["metadata"], DATASET["columns"])
    for folder in prefer:  # a mistyped preference must not silently fall back to another copy
        if not (data_dir / folder).is_dir():
            raise DataError(f"preferred image folder not found: {data_dir / folder}")
    folders = [data_dir / f for f in folder_order(prefer) if (data_dir / f).is_dir()]
    if not folders:
        raise DataError(f"{data_dir}: none of the image folders {', '.join(DATASET['image_folders'])}")
    df["path"] = find_images(df["image_id"], folders)
    return df


def find_images(image_ids: Iterable[str], folders: Sequence[str | Path]) -> list[str]:
    """Path of each image id: the first folder (best copy first) holding ``<id>.<ext>``, or,
    for an id that is a file name or a path inside a folder (``2026/lesion7.jpg``,
    ``DICOM/PAT1/IM0001``, as a clinic lists its own images), that file."""
    folders = [Path(f) for f in folders]
    index: dict[str, str] = {}
    for folder in reversed(folders):  # earlier folders overwrite later ones
        if not folder.is_dir():
            raise DataError(f"image folder not found: {folder}")
        for p in folder.iterdir():
            if p.suffix.lower() in IMAGE_SUFFIXES:
                index[p.stem] = str(p)
    paths, missing = [], []
    for image_id in image_ids:
        named = (f / image_id for f in folders)  # DICOM/PAT1/IM0001 too: an export names its files without a suffix
        path = index.get(image_id) or next((str(p) for p in named if p.is_file()), None)
        paths.append(path)
        if path is None:
            missing.append(image_id)
    if missing:  # all of them at once: a clinic's list of hundreds is not mended one rerun per name
        where, some = ", ".join(str(f) for f in folders), ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        listed = f"image {some} is listed but has" if len(missing) == 1 else \
            f"{len(missing)} images ({some}) are listed but have"
        raise DataError(f"{listed} no file in {where} (an id names a file there, with or without its suffix, "
                        "or by its path inside the folder)")
    return paths


def split_by_lesion(
    df: pd.DataFrame, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> pd.Series:
    """Assign each row to train/val/test by ``lesion_id``, stratified by dx, reproducibly.

    All images of one lesion land in the same split, so near-duplicate views never leak
    between training and validation.
    """
    if abs(sum(fractions) - 1.0) > 1e-6 or len(fractions) != len(SPLITS):
        raise ValueError(f"split fractions must be three numbers summing to 1, got {fractions}")
    lesions = df.groupby("lesion_id", sort=True)["dx"].first()
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    bounds = np.cumsum(fractions)
    for dx in sorted(lesions.unique()):
        ids = lesions.index[lesions == dx].to_numpy()
        ids = ids[rng.permutation(len(ids))]
        cuts = np.round(bounds * len(ids)).astype(int)
        for name, start, stop in zip(SPLITS, np.r_[0, cuts[:-1]], cuts):
            assignment.update(dict.fromkeys(ids[start:stop], name))
    return df["lesion_id"].map(assignment).rename("split")


def fold_by_lesion(df: pd.DataFrame, folds: int, seed: int = 0) -> pd.Series:
    """Each row's cross-validation fold, ``0`` to ``folds - 1``, by ``lesion_id``, stratified by dx.

    A lesion's images share a fold. Within each diagnosis the lesions are shuffled by ``seed``
    and dealt out in turn, so every fold holds about the same share of each class.
    """
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    lesions = df.groupby("lesion_id", sort=True)["dx"].first()
    rng = np.random.default_rng(seed)
    assignment: dict[str, int] = {}
    start = 0
    for dx in sorted(lesions.unique()):
        ids = lesions.index[lesions == dx].to_numpy()
        ids = ids[rng.permutation(len(ids))]
        # dealing each class from where the last one stopped keeps the folds' sizes within one lesion
        assignment.update({lesion: (start + i) % folds for i, lesion in enumerate(ids)})
        start = (start + len(ids)) % folds
    return df["lesion_id"].map(assignment).rename("fold")


def lesion_groups(table: pd.DataFrame) -> pd.Series | None:
    """Each image's lesion, what intervals resample, or None where the table names no lesions.
    An image whose ``lesion_id`` is blank (as ISIC Archive exports leave many) is a lesion of its own."""
    if "lesion_id" not in table.columns:
        return None
    ids = table["lesion_id"].fillna("").astype(str).str.strip()
    return ids.where(ids != "", "image " + table["image_id"].astype(str))


def labels_to_indices(dx: Iterable[str]) -> np.ndarray:
    return np.array([CLASS_CODES.index(d) for d in dx], dtype=np.int32)


def malignant_labels(dx: Iterable[str]) -> np.ndarray:
    """Which labels are malignant: a malignant diagnosis, or a biopsy's ``malignant`` (``OUTCOMES``)."""
    return np.array([OUTCOMES.get(d, d in MALIGNANT) for d in dx], dtype=bool)


def is_outcome(dx: pd.Series) -> bool:
    """Labels that say only malignant or benign (in some rows at least): no diagnosis to score."""
    return bool(dx.isin(list(OUTCOMES)).any())


#: The modules whose code decides a decoded image: a cache made by other code is not reused.
_DECODERS = ("preprocessing.py", "avif.py", "dicom.py")


def cache_key(paths: Sequence[str]) -> str:
    """16 hex digits over the file list, each file's size and modification time, the
    decoding code and Pillow's version."""
    digest = hashlib.sha256()
    for name in _DECODERS:
        digest.update((Path(__file__).parent / name).read_bytes())
    digest.update(PIL.__version__.encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_images(
    paths: Sequence[str], workers: int = 4, cache_dir: str | Path | None = None, size: int = INPUT_SIZE
) -> np.ndarray:
    """Decode and preprocess images once into a ``(N, size, size, 3)`` uint8 array.

    With ``cache_dir`` the array is kept as ``.npy``, so a second run (or a resumed one)
    skips decoding entirely. Its name is keyed by ``cache_key``: a changed file or changed
    preprocessing code makes a new cache rather than reusing a stale one.
    """
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"images_{size}_{len(paths)}_{cache_key(paths)}.npy"
        if cache.is_file():
            return np.load(cache, mmap_mode="r")
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)

    def work(i: int) -> None:
        out[i] = preprocess(paths[i], size)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(work, range(len(paths))))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per writer: runs sharing a cache folder decode the same list at
        # once, and the last atomic rename wins with identical content.
        fd, tmp = tempfile.mkstemp(suffix=".npy", prefix=cache.stem + ".", dir=cache.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, out)
            Path(tmp).replace(cache)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return out
