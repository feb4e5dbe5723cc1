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
    auroc,
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
    positive, score = is_malignant(y), malignancy(probs, scaling)
    if positive.any() and not positive.all():
        fpr, tpr, _ = roc_curve(positive, score)
        axes[1].plot(fpr, tpr, color="crimson", label=f"malignant vs benign ({auroc(positive, score):.3f})")
        if threshold is not None:
            flagged = score >= threshold
            axes[1].plot(flagged[~positive].mean(), flagged[positive].mean(), "ko",
                         label=f"threshold {threshold:.3f}")
    for ax, title in zip(axes, ("Per class (one vs rest)", "Malignancy score (mel+bcc+akiec)")):
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(xlabel="false-positive rate (1 - specificity)", ylabel="sensitivity", title=title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def reliability_png(y: np.ndarray, curves: dict[str, tuple[np.ndarray, Sequence[float]]], path: Path) -> None:
    """Reliability diagrams of the top class and of the malignancy probability; ``curves`` maps
    a label (e.g. 'calibrated') to (class probabilities, malignancy scaling)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    panels = (("confidence (top class)", "accuracy", "Top class"),
              ("malignancy probability", "fraction malignant", "Malignancy (mel+bcc+akiec)"))
    for ax, (xlabel, ylabel, title) in zip(axes, panels):
        ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
        ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1), title=title)
    for label, (probs, scaling) in curves.items():
        for ax, r in zip(axes, (reliability(probs, y), malignancy_reliability(probs, y, scaling))):
            used = r["count"] > 0
            ax.plot(r["confidence"][used], r["accuracy"][used], "o-", label=f"{label}: ECE {calibration_error(r):.3f}")
    for ax in axes:
        ax.legend(loc="upper left", fontsize=8)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
