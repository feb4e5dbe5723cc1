"""Figures by subgroup: ``python -m screening.subgroups EVALUATION --metadata CSV``.

EVALUATION is a ``screening.evaluate`` output folder; the metadata table gives each image's
patient and lesion facts (HAM10000's ``HAM10000_metadata.csv``: sex, age, body site and how
the diagnosis was confirmed; the ISIC Archive's column names are read too). Without
``--metadata``, the evaluation's own labels file is read: a clinic's labels may carry these
columns beside ``dx``. For each subgroup
it gives what a referral rests on: malignant-vs-benign AUROC, sensitivity and specificity at
the evaluation's threshold, with 95% intervals, and the share of images referred. A model can
serve the whole and fail a part (the face, the over-seventies, the lesions a clinician chose
to biopsy); a clinic should see which parts its figures hold for, and how few cases some rest
on. The images' size is a subgroup too: it tells a copy of HAM10000 from another.

Writes ``subgroups.md``, ``subgroups.json`` and ``subgroups.png`` into the evaluation folder
and prints the table. No image is scored again.
"""

from __future__ import annotations

import argparse
import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from screening.cli import described, positive_int, run_cli
from screening.compare import read_evaluation
from screening.data import lesion_groups, malignant_labels, read_table
from screening.errors import UserError
from screening.evaluate import RESAMPLES, figure, json_text
from screening.files import write_atomically
from screening.info import ISIC_IMAGE_COLUMNS, NOTICE, SUBGROUPS
from screening.metrics import malignancy_figures, malignancy_intervals, referral_intervals
from screening.plots import subgroups_png

UNKNOWN = "unknown"
IMAGE_SIZE = "image size"  # from the evaluation itself, not the metadata
# Fewer malignant (or benign) lesions than this give no AUROC: with one malignant lesion every
# resample ranks it alike, and the bootstrap said 1.000 (1.000-1.000).
AUROC_LESIONS = 10
OUTPUTS = ("subgroups.md", "subgroups.json", "subgroups.png")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="screening-subgroups", description=described(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("evaluation", type=Path, help="a screening.evaluate output folder")
    p.add_argument("--metadata", type=Path, metavar="CSV",
                   help="CSV with image_id (or ISIC's image_name/isic_id) and any of: sex; age (or age_approx); "
                        "localization (or anatom_site_general); dx_type (or diagnosis_confirm_type) (default: the "
                        "labels file the evaluation read)")
    p.add_argument("--resamples", type=positive_int, default=RESAMPLES,
                   help=f"bootstrap resamples for the AUROC intervals (default: {RESAMPLES}, as evaluate's)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--overwrite", action="store_true", help="replace the subgroup files already in EVALUATION")
    return p


def band_names(bands: tuple[int, ...]) -> list[str]:
    """``under 30``, ``30-49``, ``50-69``, ``70 and over`` for bands (30, 50, 70)."""
    return [f"under {bands[0]}", *(f"{lo}-{hi - 1}" for lo, hi in pairwise(bands)), f"{bands[-1]} and over"]


def age_band(value: str | float, bands: tuple[int, ...]) -> str:
    """The band of :func:`band_names` an age falls in; ``unknown`` where none is given."""
    try:
        age = float(value)
    except (TypeError, ValueError):
        return UNKNOWN
    return UNKNOWN if np.isnan(age) else band_names(bands)[int(np.searchsorted(bands, age, side="right"))]


def group_names(column: pd.Series, kind: dict) -> pd.Series:
    """The group each value falls in, as :data:`screening.info.SUBGROUPS` says it is shown."""
    if "bands" in kind:
        return column.map(lambda v: age_band(v, kind["bands"]))
    shown = {value: name for name, values in kind.get("regions", {}).items() for value in values}
    shown.update(kind.get("names", {}))
    return column.map(lambda v: UNKNOWN if pd.isna(v) or not str(v).strip() else shown.get(str(v).lower(), str(v)))


def ordered(names: pd.Series, kind: dict) -> list[str]:
    """Groups in reading order: age bands youngest first, others the most images first; ``unknown`` last."""
    if "bands" in kind:
        present = [g for g in band_names(kind["bands"]) if g in set(names)]
    else:
        present = [g for g in names.value_counts().index if g != UNKNOWN]
    return present + ([UNKNOWN] if (names == UNKNOWN).any() else [])


def group_figures(positive: np.ndarray, score: np.ndarray, threshold: float, lesions: np.ndarray,
                  resamples: int, seed: int) -> dict:
    """Counts, the share referred and :func:`malignancy_figures` with their intervals, for one
    group; no AUROC where it has fewer than :data:`AUROC_LESIONS` malignant or benign lesions."""
    counts = {"malignant_lesions": len(np.unique(lesions[positive])), "benign_lesions": len(np.unique(lesions[~positive]))}
    figures = {"images": len(positive), **counts, "referred": float(np.mean(score >= threshold)),
               **malignancy_figures(positive, score, threshold)}
    if min(counts.values()) >= AUROC_LESIONS:
        return {**figures, "intervals": malignancy_intervals(positive, score, threshold, lesions, resamples, seed)}
    return {**figures, "malignant_auroc": float("nan"),
            "intervals": {"malignant_auroc": [float("nan")] * 2,
                          **referral_intervals(positive, score, threshold, lesions)}}


def labels_of(evaluation: Path) -> Path:
    """The labels file ``evaluation`` read (as its ``metrics.json`` names it)."""
    try:
        path = Path(json.loads((evaluation / "metrics.json").read_text())["labels"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{evaluation} does not name the labels file it read; give --metadata") from None
    if not path.is_file():  # named as given to evaluate, perhaps from another folder
        raise UserError(f"{path}, the labels file {evaluation} read, is not found from here; give --metadata")
    return path


def subgroups(evaluation: Path, metadata: Path | None = None, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """The evaluation's malignancy figures overall and per group of each kind of subgroup the
    metadata (default: the evaluation's labels) has (``subgroups``: kind -> group -> figures),
    and the evaluated images the metadata does not list (``not_in_metadata``, counted as
    ``unknown``)."""
    table, threshold = read_evaluation(evaluation)
    own_labels = metadata is None
    metadata = labels_of(evaluation) if own_labels else metadata
    meta = read_table(metadata, "metadata")
    if "image_id" not in meta.columns:
        meta = meta.rename(columns={next((c for c in ISIC_IMAGE_COLUMNS if c in meta.columns), "image_id"): "image_id"})
    if "image_id" not in meta.columns:
        raise UserError(f"{metadata}: no image_id column (nor {', '.join(ISIC_IMAGE_COLUMNS)}); "
                        f"found {', '.join(meta.columns)}")
    kinds = {name: (next(c for c in kind["columns"] if c in meta.columns), kind)
             for name, kind in SUBGROUPS.items() if set(kind["columns"]) & set(meta.columns)}
    if not kinds:
        raise UserError(f"{metadata}: none of the subgroup columns "
                        f"({', '.join(c for kind in SUBGROUPS.values() for c in kind['columns'])})"
                        + ("; give a table that has them with --metadata" if own_labels else ""))
    listed = table["image_id"].isin(meta["image_id"])
    if not listed.any():
        raise UserError(f"{metadata} lists none of the {len(table)} images of {evaluation}")
    joined = table[["image_id"]].merge(meta.drop_duplicates("image_id"), on="image_id", how="left")
    positive, score = malignant_labels(table["dx"]), table["malignancy_probability"].to_numpy()
    lesions = (table["image_id"] if (groups := lesion_groups(table)) is None else groups).to_numpy()

    def figures(rows: np.ndarray) -> dict:
        return group_figures(positive[rows], score[rows], threshold, lesions[rows], resamples, seed)

    names = {name: group_names(joined[column], kind) for name, (column, kind) in kinds.items()}
    if {"width", "height"} <= set(table.columns):
        names[IMAGE_SIZE] = table["width"].astype(str) + "x" + table["height"].astype(str)
        kinds[IMAGE_SIZE] = ("", {})
    result = {name: {group: figures((shown == group).to_numpy()) for group in ordered(shown, kinds[name][1])}
              for name, shown in names.items()}
    return {"threshold": threshold, "unit": "lesions" if "lesion_id" in table.columns else "images",
            "overall": figures(np.ones(len(table), dtype=bool)), "subgroups": result,
            "columns": {name: column for name, (column, _) in kinds.items() if column}, "metadata": str(metadata),
            "not_in_metadata": int((~listed).sum()), "resamples": resamples, "seed": seed}


def _cell(r: dict, key: str) -> str:
    lo, hi = r["intervals"][key]
    return "n/a" if r[key] is None or np.isnan(r[key]) else f"{figure(r[key])} ({lo:.3f}-{hi:.3f})"


def _row(label: str, r: dict) -> str:
    return (f"| {label} | {r['images']} | {r['malignant_lesions']} / {r['benign_lesions']} | {r['referred']:.1%} | "
            f"{_cell(r, 'sensitivity')} | {_cell(r, 'specificity')} | {_cell(r, 'malignant_auroc')} |")


def markdown(result: dict, evaluation: Path) -> str:
    unit = result["unit"]
    missing = result["not_in_metadata"]
    lines = ["# SkinScreen figures by subgroup", "", f"> {NOTICE}", "",
             (f"Evaluation `{evaluation}`, metadata `{result['metadata']}`; malignant means mel, bcc or akiec (or a label of "
              f"malignant); threshold {result['threshold']:.3f}. In brackets the 95% interval: Wilson's for "
              f"sensitivity and specificity with the group's malignant and benign {unit} as the sample size, a "
              f"percentile bootstrap of {unit} for the AUROC ({result['resamples']} resamples, seed {result['seed']}). "
              f"No AUROC for a group of fewer than {AUROC_LESIONS} malignant or benign {unit}. A group of a few "
              f"malignant {unit} says little: read the interval, not the figure."), "",
             *([f"**{missing} evaluated image(s) are not in the metadata**, and count as `unknown`.", ""] if missing else []),
             *table(result)]
    return "\n".join([*lines, "", "![sensitivity, specificity and AUROC by subgroup](subgroups.png)", ""])


def table(result: dict) -> list[str]:
    """The Markdown table of :func:`subgroups`' result (or of its ``subgroups.json``), all images first."""
    lines = [(f"| group | images | malignant / benign {result['unit']} | referred | sensitivity | specificity | "
             "malignant AUROC |"), "|---|---|---|---|---|---|---|", _row("**all**", result["overall"])]
    for name, groups in result["subgroups"].items():
        column = result["columns"].get(name)
        lines.append(f"| **{name}**{f' (`{column}`)' if column else ''} | | | | | | |")
        lines += [_row(group, r) for group, r in groups.items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    def run(args: argparse.Namespace) -> int:
        held = [name for name in OUTPUTS if (args.evaluation / name).exists()]
        if held and not args.overwrite:
            raise UserError(f"{args.evaluation} already holds {', '.join(held)}; use --overwrite")
        result = subgroups(args.evaluation, args.metadata, args.resamples, args.seed)
        text = markdown(result, args.evaluation)
        write_atomically(args.evaluation / "subgroups.png", lambda tmp: subgroups_png(result, tmp), suffix=".png")
        write_atomically(args.evaluation / "subgroups.json", lambda tmp: tmp.write_text(json_text(result)))
        write_atomically(args.evaluation / "subgroups.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
        print(text, end="")
        return 0

    return run_cli(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
