"""Evaluation figures: confusion matrix, ROC curves, reliability diagrams (PNG, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from screening.info import CLASS_CODES
from screening.metrics import (
    IDENTITY,
    MALIGNANCY_BINS,
    auroc,
    binned,
    calibration_error,
    is_malignant,
    malignancy,
    malignancy_reliability,
    reliability,
    roc_curve,
)


def confusion_matrix_png(cm: np.ndarray, path: Path) -> None:
    """Row-normalised (recall) colours with raw counts written in each cell."""
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5.2))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(j, i, cm[i, j], ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(CLASS_CODES)), CLASS_CODES)
    ax.set_yticks(range(len(CLASS_CODES)), CLASS_CODES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (colour: row recall)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    _save(fig, path)


def roc_png(
    y: np.ndarray, probs: np.ndarray, path: Path, threshold: float | None = None, scaling: Sequence[float] = IDENTITY
) -> None:
    """One-vs-rest ROC per class and malignant-vs-benign, with the operating point (``threshold``
    on the malignancy probability under ``scaling``)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for k, code in enumerate(CLASS_CODES):
        positive = np.asarray(y) == k
        if positive.any() and not positive.all():
            fpr, tpr, _ = roc_curve(positive, probs[:, k])
            axes[0].plot(fpr, tpr, label=f"{code} ({auroc(positive, probs[:, k]):.3f})")
    _malignancy_roc(axes[1], is_malignant(y), malignancy(probs, scaling), threshold)
    for ax, title in zip(axes, ("Per class (one vs rest)", MALIGNANCY_TITLE)):
        _roc_axes(ax, title)
    _save(fig, path)


MALIGNANCY_TITLE = "Malignancy score (mel+bcc+akiec)"


def _malignancy_roc(ax, positive: np.ndarray, score: np.ndarray, threshold: float | None) -> None:
    if positive.any() and not positive.all():
        fpr, tpr, _ = roc_curve(positive, score)
        ax.plot(fpr, tpr, color="crimson", label=f"malignant vs benign ({auroc(positive, score):.3f})")
        if threshold is not None:
            flagged = score >= threshold
            ax.plot(flagged[~positive].mean(), flagged[positive].mean(), "ko", label=f"threshold {threshold:.3f}")


def _roc_axes(ax, title: str) -> None:
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false-positive rate (1 - specificity)", ylabel="sensitivity", title=title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)


def reliability_png(y: np.ndarray, curves: dict[str, tuple[np.ndarray, Sequence[float]]], path: Path) -> None:
    """Reliability diagrams of the top class and of the malignancy probability; ``curves`` maps
    a label (e.g. 'calibrated') to (class probabilities, malignancy scaling)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    _reliability_axes(axes[0], "confidence (top class)", "accuracy", "Top class")
    _reliability_axes(axes[1], *MALIGNANCY_RELIABILITY)
    for label, (probs, scaling) in curves.items():
        for ax, r in zip(axes, (reliability(probs, y), malignancy_reliability(probs, y, scaling))):
            _reliability_curve(ax, r, label)
    for ax in axes:
        ax.legend(loc="upper left", fontsize=8)
    _save(fig, path)


MALIGNANCY_RELIABILITY = ("malignancy probability", "fraction malignant", "Malignancy (mel+bcc+akiec)")


def _reliability_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1), title=title)


def _reliability_curve(ax, r: dict[str, np.ndarray], label: str) -> None:
    used = r["count"] > 0
    ax.plot(r["confidence"][used], r["accuracy"][used], "o-", label=f"{label}: ECE {calibration_error(r):.3f}")


def malignancy_png(positive: np.ndarray, scores: dict[str, np.ndarray], threshold: float, path: Path) -> None:
    """For labels saying only malignant or benign: the ROC of the malignancy probability with
    the operating point (the last of ``scores``, the calibrated one), and the reliability of
    each of ``scores`` (a label -> malignancy probabilities)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    _malignancy_roc(axes[0], positive, list(scores.values())[-1], threshold)
    _roc_axes(axes[0], MALIGNANCY_TITLE)
    _reliability_axes(axes[1], *MALIGNANCY_RELIABILITY)
    for label, score in scores.items():
        _reliability_curve(axes[1], binned(score, positive, MALIGNANCY_BINS), label)
    axes[1].legend(loc="upper left", fontsize=8)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


SUBGROUP_PANELS = (("sensitivity", "Sensitivity at the threshold"), ("specificity", "Specificity at the threshold"),
                   ("malignant_auroc", "Malignant-vs-benign AUROC"))


def subgroups_png(result: dict, path: Path) -> None:
    """A forest plot of ``screening.subgroups``' result: per group, each figure with its 95%
    interval, the dashed line at the figure for all images; a kind of subgroup heads its groups."""
    rows: list[tuple[str, dict | None]] = [("all", result["overall"])]
    for name, groups in result["subgroups"].items():
        rows += [(name, None), *((f"  {group}", r) for group, r in groups.items())]
    fig, axes = plt.subplots(1, len(SUBGROUP_PANELS), sharey=True, figsize=(13, 1.2 + 0.26 * len(rows)))
    y = np.arange(len(rows))[::-1]
    for ax, (key, title) in zip(axes, SUBGROUP_PANELS):
        for yi, (_, r) in zip(y, rows):
            if r is None or np.isnan(r[key]):
                continue
            lo, hi = r["intervals"][key]
            ax.errorbar(r[key], yi, xerr=[[r[key] - lo], [hi - r[key]]], fmt="o", color="tab:blue", ms=4, capsize=2)
        ax.axvline(result["overall"][key], color="grey", linestyle="--", linewidth=1)
        ax.set_xlim(0, 1.02)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    labels = [label if r is None else f"{label} ({r['malignant_lesions']}/{r['benign_lesions']})" for label, r in rows]
    axes[0].set_yticks(y, labels, fontsize=8)
    for tick, (_, r) in zip(axes[0].get_yticklabels(), rows):
        tick.set_fontweight("bold" if r is None else "normal")
    axes[0].set_ylim(-0.7, len(rows) - 0.3)
    fig.suptitle(f"By subgroup (in brackets: malignant / benign {result['unit']}); threshold "
                 f"{result['threshold']:.3f}", fontsize=10)
    _save(fig, path)
