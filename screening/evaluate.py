"""Evaluation CLI: ``python -m screening.evaluate --model BUNDLE --images DIR --labels CSV --out DIR``.

Scores every labelled image through the same ``Screener`` the batch tool and UI use and
writes ``metrics.json`` (with 95% intervals), ``report.md``, ``predictions.csv`` (one
row per image) and PNG plots (confusion matrix, ROC curves, reliability diagrams before and
after calibration).

Labels that say only malignant or benign (``dx`` = malignant or benign, as a biopsy answers;
diagnosis codes may stand beside them) give the malignancy figures alone: AUROC, sensitivity
and specificity at the threshold, and the thresholds for other sensitivity targets, to choose
a clinic's own operating point on its own images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from screening.calibration import threshold_at_sensitivity
from screening.cli import add_malignancy_options, add_scoring_options, check_malignancy_options, described, run_cli
from screening.data import find_images, is_outcome, labels_to_indices, lesion_groups, malignant_labels, read_labels
from screening.errors import UserError
from screening.files import check_output_folder
from screening.inference import Result, Screener
from screening.info import CLASS_CODES, NOTICE, OUTCOMES
from screening.metrics import (
    IDENTITY,
    MALIGNANCY_BINS,
    binned,
    bootstrap_intervals,
    calibration_error,
    calibration_errors,
    is_malignant,
    malignancy,
    malignancy_figures,
    malignancy_intervals,
    recall_intervals,
    referral_intervals,
    sensitivity_specificity,
    softmax,
    summary,
)
from screening.plots import confusion_matrix_png, malignancy_png, reliability_png, roc_png
from screening.progress import Progress
from screening.report import rows

RESAMPLES = 1000  # bootstrap resamples behind every interval
PREDICTIONS = "predictions.csv"
# Every file an evaluation writes: in a folder that holds one of them, it is not replaced unasked.
OUTPUTS = ("metrics.json", PREDICTIONS, "report.md", "confusion_matrix.png", "roc.png", "reliability.png",
           "malignancy.png")


def predictions(labels: pd.DataFrame, results: list[Result]) -> pd.DataFrame:
    """Per image: the label (and lesion) beside the batch worklist's columns, for error analysis
    and for ``screening.compare``."""
    table = rows(results, list(labels["image_id"])).drop(columns=["status", "error", "dicom"]).rename(columns={"file": "image_id"})
    table.insert(1, "dx", labels["dx"].to_numpy())
    if "lesion_id" in labels.columns:
        table.insert(2, "lesion_id", labels["lesion_id"].to_numpy())
    return table


SENSITIVITY_TARGETS = (0.80, 0.85, 0.90, 0.95, 0.98)


def operating_points(positive: np.ndarray, score: np.ndarray) -> list[dict]:
    """Thresholds these images would give for other sensitivity targets (the rule training uses
    for the model's own), with the specificity and the share of all cases referred: the table a
    clinic reads to pick ``batch.py --threshold``. Fitted on these images, so optimistic."""
    if not positive.any():
        return []
    points = []
    for target in SENSITIVITY_TARGETS:
        t = threshold_at_sensitivity(positive, score, target)
        sens, spec = sensitivity_specificity(positive, score, t)
        points.append({"target": target, "threshold": t, "sensitivity": sens, "specificity": spec,
                       "referred": float(np.mean(score >= t))})
    return points


def operating_points_table(m: dict) -> list[str]:
    """Markdown rows for :func:`operating_points` (none when the metrics have none)."""
    if not m.get("operating_points"):
        return []
    return ["| sensitivity target | threshold | sensitivity | specificity | share of all cases referred |",
            "|---|---|---|---|---|",
            *[f"| {p['target']:.2f} | {p['threshold']:.3f} | {p['sensitivity']:.3f} | {p['specificity']:.3f} | "
              f"{p['referred']:.1%} |" for p in m["operating_points"]], ""]


def figure(value: float | None) -> str:
    """``0.744``, or ``n/a`` where there was no case to measure it on (no malignant image for
    sensitivity, a class absent for its recall; metrics.json holds null there)."""
    return "n/a" if value is None or np.isnan(value) else f"{value:.3f}"


def with_interval(m: dict, key: str, value: float | None = None) -> str:
    """``0.744 (0.702-0.781)``: a metric with its 95% interval when the metrics hold one."""
    value = m.get(key) if value is None else value
    lo_hi = m.get("intervals", {}).get(key)
    if figure(value) == "n/a" or not lo_hi or figure(lo_hi[0]) == "n/a" or figure(lo_hi[1]) == "n/a":
        return figure(value)
    return f"{value:.3f} ({lo_hi[0]:.3f}-{lo_hi[1]:.3f})"


def json_text(metrics: dict) -> str:
    """``metrics`` as strict JSON: a figure with nothing to measure it on is null, not ``NaN``
    (which Python writes, and a spreadsheet's or a browser's JSON reader refuses)."""
    def strict(value):
        if isinstance(value, dict):
            return {k: strict(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [strict(v) for v in value]
        return None if isinstance(value, float) and np.isnan(value) else value

    return json.dumps(strict(metrics), indent=2, allow_nan=False) + "\n"


def interval_note(m: dict) -> list[str]:
    """The line under a table of :func:`with_interval` figures saying what the brackets are."""
    if "interval_method" not in m:
        return []
    return [f"In brackets: {m['interval_method']}."]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="screening-evaluate", description=described(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, metavar="BUNDLE", help="model bundle folder (default: the packaged model)")
    p.add_argument("--images", type=Path, nargs="+", required=True, metavar="FOLDER",
                   help="image folder(s), best first: each image_id is looked up as <id>.<ext> (or is a file "
                        "name, or a path inside the folder)")
    p.add_argument("--labels", type=Path, required=True, metavar="CSV",
                   help="CSV with columns image_id,dx (and lesion_id, for intervals by lesion), dx a diagnosis "
                        "code or malignant/benign; or an ISIC challenge ground truth (image,MEL,NV,...; 2019's "
                        "SCC and UNK rows left out); or an ISIC table of benign or malignant (2020's ground truth, "
                        "the ISIC Archive's or isic-cli's metadata.csv, 2024's: indeterminate rows left out)")
    p.add_argument("--out", type=Path, required=True, metavar="FOLDER", help="folder for metrics.json, report.md and plots")
    # the threshold a clinic uses, to check it on its images; no --prevalence: the thresholds the
    # report lists must be on the scale --threshold reads them on
    add_malignancy_options(p, prevalence=False)
    add_scoring_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an evaluation already in --out")
    return p


def evaluate(args: argparse.Namespace) -> dict:
    check_malignancy_options(args)
    check_output_folder(args.out, "--out", "the evaluation")
    if any(args.out.resolve() == folder.resolve() for folder in args.images):  # plots would join the images
        raise UserError(f"--out {args.out} is a folder of the images; give the evaluation a folder of its own")
    held = [name for name in OUTPUTS if (args.out / name).exists()]
    if held and not args.overwrite:  # e.g. the hold-out split, scored once; or a user's own report.md
        raise UserError(f"{args.out} already holds "
                        + ("an evaluation" if "metrics.json" in held else f"files of an evaluation's names ({', '.join(held)})")
                        + "; use --overwrite or another --out")
    labels = read_labels(args.labels, diagnoses=(*CLASS_CODES, *OUTCOMES))
    if labels.empty:
        raise UserError(f"{args.labels}: no rows to evaluate")
    paths = find_images(labels["image_id"], args.images)
    screener = Screener(args.model, threshold=args.threshold, tta=args.tta, batch_size=args.batch_size)
    seen = trained_on(screener.meta, labels["image_id"])
    if seen:  # before the scoring: a wrong labels file is better found now than after an hour
        print(f"warning: the model was trained on {len(seen)} of these {len(labels)} images ({', '.join(seen[:3])}"
              f"{', ...' if len(seen) > 3 else ''}): its figures on them overstate what it does on new images",
              file=sys.stderr)
    bar, results = Progress(len(paths)), []  # an external test set of large images takes its time
    for result in screener.score(paths, workers=args.workers):
        results.append(result)
        bar.update()
    bar.close()
    unreadable = [f"{labels['image_id'][i]}: {r.error}" for i, r in enumerate(results) if not r.ok]
    if len(unreadable) == len(results):
        raise UserError(("the labelled image could not be read (" if len(results) == 1 else
                         f"none of the {len(results)} labelled images could be read (") + unreadable[0] +
                        ("; ..." if len(unreadable) > 1 else "") + ")")
    if unreadable:  # said, and left out: found after the scoring, which an external test set takes an hour for
        print(f"warning: {len(unreadable)} of {len(results)} labelled images could not be read and are left out of "
              f"the figures: {'; '.join(unreadable[:3])}{'; ...' if len(unreadable) > 3 else ''} (all in "
              f"{args.out / 'metrics.json'})", file=sys.stderr)
        kept = [i for i, r in enumerate(results) if r.ok]
        labels, results = labels.iloc[kept].reset_index(drop=True), [results[i] for i in kept]
    probs = np.array([[r.probabilities[c] for c in CLASS_CODES] for r in results])
    # The uncalibrated view (T=1, summed malignancy unscaled) for the reliability diagrams
    # and the ECE comparison.
    raw = softmax(np.log(np.clip(probs, 1e-12, None)) * screener.temperature)
    groups = lesion_groups(labels)
    unit = "images" if groups is None else "lesions"
    positive, score = malignant_labels(labels["dx"]), malignancy(probs, screener.scaling)
    args.out.mkdir(parents=True, exist_ok=True)
    if is_outcome(labels["dx"]):  # a biopsy's verdict, not a diagnosis: malignancy figures alone
        unscaled = malignancy(raw)
        metrics = outcome_metrics(positive, score, unscaled, screener.threshold, groups, unit)
        malignancy_png(positive, {"before calibration (T=1, unscaled)": unscaled, "calibrated": score},
                       screener.threshold, args.out / "malignancy.png")
    else:
        metrics = diagnosis_metrics(labels_to_indices(labels["dx"]), probs, raw, screener, groups, unit, args.out)
    metrics["operating_points"] = operating_points(positive, score)
    metrics.update(model=str(screener.path), sha256=screener.meta["sha256"], temperature=screener.temperature,
                   malignancy_scaling=list(screener.scaling), tta=screener.tta, labels=str(args.labels),
                   unreadable=unreadable, trained_on=trained_on(screener.meta, labels["image_id"]))
    (args.out / "metrics.json").write_text(json_text(metrics))
    predictions(labels, results).to_csv(args.out / PREDICTIONS, index=False)
    (args.out / "report.md").write_text(markdown(metrics), encoding="utf-8")
    return metrics


def trained_on(meta: dict, image_ids: pd.Series) -> list[str]:
    """The labelled images the bundle lists as its training images (by image id, the file name
    without its folder or suffix), in the labels' order."""
    trained = set(meta.get("training", {}).get("train_image_ids", ()))
    return [i for i in image_ids if PurePath(str(i)).stem in trained] if trained else []


def held_out_figures(metrics: dict, where: str) -> dict:
    """The bundle's ``metrics.held_out`` from an evaluation of images used neither to train
    the model nor to fit its threshold: what the page, the worklist and the PDF record say
    REFER does in practice."""
    return {"where": where, "images": metrics["n"], "sensitivity": metrics["sensitivity"],
            "specificity": metrics["specificity"], "threshold": metrics["threshold"], "tta": metrics["tta"],
            "intervals": {k: metrics.get("intervals", {}).get(k) for k in ("sensitivity", "specificity")}}


def diagnosis_metrics(y: np.ndarray, probs: np.ndarray, raw: np.ndarray, screener: Screener, groups, unit: str,
                      out: Path) -> dict:
    """Every figure labels of the seven diagnoses give, with intervals, and their plots in ``out``."""
    metrics = summary(probs, y, screener.threshold, screener.scaling)
    metrics.update({f"{k}_uncalibrated": v for k, v in calibration_errors(raw, y).items()})
    metrics.update(
        intervals={**bootstrap_intervals(probs, y, screener.threshold, screener.scaling, groups=groups,
                                         resamples=RESAMPLES),
                   **recall_intervals(y, probs.argmax(axis=1), groups),
                   **referral_intervals(is_malignant(y), malignancy(probs, screener.scaling), screener.threshold,
                                        groups)},
        interval_method=(f"95% intervals; per-class recall, sensitivity and specificity: Wilson score interval with "
                         f"the class's, the malignant and the benign {unit} as the sample size; the other figures: "
                         f"percentile bootstrap, {RESAMPLES} resamples of {unit} (seed 0)"),
    )
    confusion_matrix_png(np.array(metrics["confusion_matrix"]), out / "confusion_matrix.png")
    roc_png(y, probs, out / "roc.png", screener.threshold, screener.scaling)
    a, b = screener.scaling
    reliability_png(y, {"before calibration (T=1, unscaled)": (raw, IDENTITY),
                        f"calibrated (T={screener.temperature:.2f}; malignancy a={a:.2f}, b={b:.2f})":
                            (probs, screener.scaling)}, out / "reliability.png")
    return metrics


def outcome_metrics(positive: np.ndarray, score: np.ndarray, unscaled: np.ndarray, threshold: float, groups,
                    unit: str) -> dict:
    """The figures labels of malignant or benign alone give (``malignancy_figures``), with
    intervals, and the malignancy probability's calibration error. Sensitivity and specificity
    get Wilson intervals, as class recalls do: a clinic's check may hold a dozen malignant
    lesions, all referred, and a bootstrap would give (1.000-1.000)."""
    return {"n": len(positive), "labels_kind": "outcome", "malignant": int(positive.sum()), "threshold": threshold,
            **malignancy_figures(positive, score, threshold),
            "malignancy_ece": calibration_error(binned(score, positive, MALIGNANCY_BINS)),
            "malignancy_ece_uncalibrated": calibration_error(binned(unscaled, positive, MALIGNANCY_BINS)),
            "intervals": malignancy_intervals(positive, score, threshold, groups, RESAMPLES),
            "interval_method": (f"95% intervals; sensitivity and specificity: Wilson score interval with the malignant "
                                f"and the benign {unit} as the sample size; AUROC: percentile bootstrap, {RESAMPLES} "
                                f"resamples of {unit} (seed 0)")}


def markdown(m: dict) -> str:
    """A human-readable report with the headline metrics, per-class table and plots."""
    if m.get("labels_kind") == "outcome":
        return outcome_markdown(m)
    lines = [
        *_heading(m, f"{m['n']} images"),
        f"| accuracy | {figure(m['accuracy'])} |",
        f"| balanced accuracy (mean recall) | {with_interval(m, 'balanced_accuracy')} |",
        f"| macro AUROC (one vs rest) | {figure(m['macro_auroc'])} |",
        f"| malignant-vs-benign AUROC | {with_interval(m, 'malignant_auroc')} |",
        f"| sensitivity at threshold {m['threshold']:.3f} | {with_interval(m, 'sensitivity')} |",
        f"| specificity at threshold {m['threshold']:.3f} | {with_interval(m, 'specificity')} |",
        f"| expected calibration error, top class (calibrated / T=1) | {figure(m['ece'])} / {figure(m['ece_uncalibrated'])} |",
        (f"| expected calibration error, malignancy (calibrated / unscaled) | {figure(m['malignancy_ece'])} / "
         f"{figure(m['malignancy_ece_uncalibrated'])} |"),
        "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|",
    ]
    for code, c in m["per_class"].items():
        lines.append(f"| {code} | {figure(c['precision'])} | {with_interval(m, f'recall_{code}', c['recall'])} | "
                     f"{figure(c['f1'])} | {c['support']} |")
    lines += ["", *interval_note(m), ""]
    if m.get("operating_points"):
        lines += ["Other operating points on these images (thresholds fitted on them):", "", *operating_points_table(m)]
    lines += ["Confusion matrix (rows true, columns predicted):", "",
              "| | " + " | ".join(m["classes"]) + " |", "|---" * (len(m["classes"]) + 1) + "|"]
    for code, row in zip(m["classes"], m["confusion_matrix"]):
        lines.append(f"| **{code}** | " + " | ".join(map(str, row)) + " |")
    lines += ["", "![confusion matrix](confusion_matrix.png)", "![ROC curves](roc.png)",
              "![reliability](reliability.png)", ""]
    return "\n".join(lines)


def outcome_markdown(m: dict) -> str:
    """:func:`markdown` for labels of malignant or benign alone."""
    return "\n".join([
        *_heading(m, f"{m['n']} images labelled malignant or benign ({m['malignant']} malignant)"),
        f"| malignant-vs-benign AUROC | {with_interval(m, 'malignant_auroc')} |",
        f"| sensitivity at threshold {m['threshold']:.3f} | {with_interval(m, 'sensitivity')} |",
        f"| specificity at threshold {m['threshold']:.3f} | {with_interval(m, 'specificity')} |",
        (f"| expected calibration error, malignancy (calibrated / unscaled) | {figure(m['malignancy_ece'])} / "
         f"{figure(m['malignancy_ece_uncalibrated'])} |"),
        "", *interval_note(m), "",
        *(["Other operating points on these images (thresholds fitted on them):", "", *operating_points_table(m)]
          if m.get("operating_points") else []),
        "![ROC and reliability of the malignancy probability](malignancy.png)", ""])


def _heading(m: dict, images: str) -> list[str]:
    """The report's title, notice and what was scored, then the head of the metrics table."""
    return ["# SkinScreen evaluation", "", f"> {NOTICE}", "",
            (f"Model `{m['model']}` (sha256 `{m['sha256'][:12]}`), labels `{m['labels']}`, {images}, "
             f"temperature {m['temperature']:.3f}, malignancy scaling a={m['malignancy_scaling'][0]:.3f} "
             f"b={m['malignancy_scaling'][1]:.3f}, TTA {'on' if m['tta'] else 'off'}."), "",
            *([f"**{len(m['unreadable'])} labelled image(s) could not be read and are left out:** "
               + "; ".join(m["unreadable"][:10]) + ("; ... (all in metrics.json)" if len(m["unreadable"]) > 10 else ""),
               ""] if m.get("unreadable") else []),
            *([f"**The model was trained on {len(m['trained_on'])} of these images** ("
               + ", ".join(m["trained_on"][:5]) + (", ..." if len(m["trained_on"]) > 5 else "")
               + "): its figures on them overstate what it does on new images.", ""] if m.get("trained_on") else []),
            "| metric | value |", "|---|---|"]


def main(argv: list[str] | None = None) -> int:
    def run(args: argparse.Namespace) -> int:
        m = evaluate(args)
        accuracy = "" if "balanced_accuracy" not in m else f"balanced accuracy {with_interval(m, 'balanced_accuracy')}, "
        print(f"{m['n']} image{'' if m['n'] == 1 else 's'}: {accuracy}malignant AUROC {with_interval(m, 'malignant_auroc')}, sensitivity "
              f"{with_interval(m, 'sensitivity')} / specificity {with_interval(m, 'specificity')} at "
              f"{m['threshold']:.3f}; report in {args.out}")
        return 0

    return run_cli(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
