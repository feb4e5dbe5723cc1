"""Compare two models on the same images: ``python -m screening.compare EVAL_A EVAL_B``.

EVAL_A and EVAL_B are ``screening.evaluate`` output folders for the same labels. A thousand
validation images leave each model's balanced accuracy uncertain by several points, but two
models scored on the same images share most of that noise: a paired interval for the
difference is the figure a recipe or a shipping decision should rest on. Balanced accuracy
and AUROC get the paired bootstrap (the same resamples of lesions, or of images, for both);
sensitivity, specificity and class recalls, proportions of a few dozen cases at times, get
Newcombe's paired score interval, which a small class cannot collapse. Labels of malignant or
benign (a biopsy's verdict) compare the malignancy figures alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from screening.cli import described, positive_int, run_cli
from screening.data import is_outcome, labels_to_indices, lesion_groups, malignant_labels, read_labels
from screening.errors import UserError
from screening.evaluate import PREDICTIONS, RESAMPLES, figure
from screening.info import CLASS_CODES, OUTCOMES
from screening.metrics import (
    headline,
    malignancy_figures,
    paired_difference_interval,
    percentile_intervals,
    resamples_of,
)
from screening.report import PROB_COLUMNS

BOOTSTRAPPED = ("balanced_accuracy", "malignant_auroc")  # not proportions of cases: no score interval


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="screening-compare", description=described(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, help="evaluation folder of model A (the reference, e.g. the shipped model)")
    p.add_argument("b", type=Path, help="evaluation folder of model B (the candidate), same labels")
    p.add_argument("--resamples", type=positive_int, default=RESAMPLES,
                   help=f"bootstrap resamples (default: {RESAMPLES}, as evaluate's intervals)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    return p


def read_evaluation(folder: Path) -> tuple[pd.DataFrame, float]:
    """An evaluation folder's per-image predictions and the threshold they were flagged at."""
    table_path, metrics_path = folder / PREDICTIONS, folder / "metrics.json"
    for path in (table_path, metrics_path):
        if not path.is_file():
            raise UserError(f"{path} not found: is {folder} a screening.evaluate output folder (from this version)?")
    scores = ["malignancy_probability", *PROB_COLUMNS]
    table = read_labels(table_path, columns=("image_id", "dx", *scores),  # checks columns and diagnoses
                        diagnoses=(*CLASS_CODES, *OUTCOMES))
    try:
        table[scores] = table[scores].astype(float)
        threshold = float(json.loads(metrics_path.read_text())["threshold"])
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{folder}: unreadable evaluation ({type(err).__name__}: {err})") from None
    return table, threshold


def paired_tables(malignant: np.ndarray, refer_a: np.ndarray, refer_b: np.ndarray,
                  classes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                  ) -> dict[str, tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Per proportion figure, the images it is a proportion of and their paired table: right
    in both, only B, only A, neither. ``classes`` (true, A's and B's predicted class indices)
    adds each class's recall, where the labels are diagnoses.

    The difference rests on the discordant cases alone (McNemar's view); where a class has a
    dozen images and both models get all of them, the table says so (0 and 0) more plainly
    than an interval from resamples that all agree.
    """
    cases = {"sensitivity": (malignant, refer_a, refer_b), "specificity": (~malignant, ~refer_a, ~refer_b)}
    if classes is not None:
        y, pred_a, pred_b = classes
        cases.update({f"recall_{c}": (y == i, pred_a == i, pred_b == i) for i, c in enumerate(CLASS_CODES)})
    return {key: (among, tuple(int(np.sum(among & cell)) for cell in
                               (right_a & right_b, right_b & ~right_a, right_a & ~right_b, ~right_a & ~right_b)))
            for key, (among, right_a, right_b) in cases.items()}


def proportion_interval(among: np.ndarray, table: tuple[int, int, int, int], groups: np.ndarray | None) -> list[float]:
    """Newcombe's paired interval of B - A, the table scaled to the number of lesions among
    the cases (several images of one lesion count as one, as in the resampling and in
    :func:`screening.metrics.recall_intervals`)."""
    images = int(among.sum())
    lesions = len(np.unique(groups[among])) if groups is not None else images
    scale = lesions / images if images else 0.0
    return paired_difference_interval(*(cell * scale for cell in table))


def compare(a: Path, b: Path, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Per :func:`screening.metrics.headline` figure (``figures``): A, B, B - A and its 95%
    interval: the paired bootstrap for balanced accuracy and AUROC, Newcombe's paired score
    interval for the proportions (sensitivity, specificity, recalls: a bootstrap collapses on a
    dozen cases), which also get the images only B / only A gets right (``only_b``,
    ``only_a``); ``resampled``: lesions or images."""
    (ta, thr_a), (tb, thr_b) = read_evaluation(a), read_evaluation(b)
    if list(ta["image_id"]) != list(tb["image_id"]) or list(ta["dx"]) != list(tb["dx"]):
        raise UserError(f"{a} and {b} were not evaluated on the same labelled images (same order)")
    outcome, malignant = is_outcome(ta["dx"]), malignant_labels(ta["dx"])
    y = None if outcome else labels_to_indices(ta["dx"])  # labels of malignant or benign: no class to score
    groups = None if (lesions := lesion_groups(ta)) is None else lesions.to_numpy()
    cases = [(ta[PROB_COLUMNS].to_numpy().argmax(axis=1), ta["malignancy_probability"].to_numpy(), thr_a),
             (tb[PROB_COLUMNS].to_numpy().argmax(axis=1), tb["malignancy_probability"].to_numpy(), thr_b)]

    def scored(i) -> list[dict[str, float]]:  # A's and B's figures, on the images i
        return [malignancy_figures(malignant[i], score[i], thr) if outcome else headline(y[i], pred[i], score[i], thr)
                for pred, score, thr in cases]

    point_a, point_b = scored(slice(None))
    diffs = []
    for i in resamples_of(len(malignant), groups, resamples, seed):
        ha, hb = scored(i)
        diffs.append({k: hb[k] - ha[k] for k in BOOTSTRAPPED if k in ha})
    (pred_a, score_a, _), (pred_b, score_b, _) = cases
    tables = paired_tables(malignant, score_a >= thr_a, score_b >= thr_b, None if outcome else (y, pred_a, pred_b))
    interval = {**percentile_intervals(diffs),
                **{k: proportion_interval(among, table, groups) for k, (among, table) in tables.items()}}
    figures = {k: {"a": point_a[k], "b": point_b[k], "difference": point_b[k] - point_a[k], "interval": interval[k],
                   **({"only_b": tables[k][1][1], "only_a": tables[k][1][2]} if k in tables else {})}
               for k in point_a}
    return {"figures": figures, "resamples": resamples, "resampled": "images" if groups is None else "lesions"}


def markdown(result: dict, a: Path, b: Path) -> str:
    lines = [(f"A = `{a}`, B = `{b}`; in brackets the 95% interval of B - A: for balanced accuracy and AUROC "
              f"the paired bootstrap ({result['resamples']} resamples of {result['resampled']}), for the "
              f"proportions Newcombe's paired score interval (counting {result['resampled']}); for proportions, "
              "the images that only B and only A get right: the difference rests on those alone."), "",
             "| figure | A | B | B - A | right only in B / only in A |", "|---|---|---|---|---|"]
    for key, r in result["figures"].items():
        lo, hi = r["interval"]
        only = f"{r['only_b']} / {r['only_a']}" if "only_b" in r else ""
        difference = ("n/a" if np.isnan(r["difference"])  # a class the labels lack: no recall, as in evaluate
                      else f"{r['difference']:+.3f} ({lo:+.3f} to {hi:+.3f})")
        lines.append(f"| {key.replace('_', ' ')} | {figure(r['a'])} | {figure(r['b'])} | {difference} | {only} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    def run(args: argparse.Namespace) -> int:
        print(markdown(compare(args.a, args.b, args.resamples, args.seed), args.a, args.b), end="")
        return 0

    return run_cli(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
