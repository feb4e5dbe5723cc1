"""Post-hoc calibration on validation data: a softmax temperature and a referral threshold."""

from __future__ import annotations

import numpy as np

from screening.metrics import is_malignant, malignancy, softmax


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising validation NLL (coarse log-grid, then a fine one)."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))
    best = min(grid, key=lambda t: nll(logits, y, t))
    fine = best * np.exp(np.linspace(-0.06, 0.06, 61))
    return float(min(fine, key=lambda t: nll(logits, y, t)))


def threshold_for_sensitivity(y: np.ndarray, probs: np.ndarray, target: float = 0.90) -> float:
    """The highest malignancy threshold whose sensitivity for malignant lesions is >= target."""
    positive = is_malignant(y)
    if not positive.any():
        raise ValueError("no malignant cases: cannot choose a threshold for sensitivity")
    scores = np.sort(malignancy(probs)[positive])[::-1]
    # Flagging score >= t catches the k highest-scoring positives; we need k >= target * P.
    k = int(np.ceil(target * len(scores)))
    return float(scores[k - 1])
