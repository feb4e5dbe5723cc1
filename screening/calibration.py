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
    """A malignancy threshold with sensitivity >= target for malignant lesions, flagging as few
    cases as possible.

    It lies halfway between the score of the last malignant case that must be caught and the
    next lower score of any case: the same cases are flagged as at that score itself, but a
    numerical difference smaller than half the gap (another CPU, a GPU, float16 weights) can
    no longer drop that case below the threshold and the sensitivity below the target.
    """
    positive = is_malignant(y)
    if not positive.any():
        raise ValueError("no malignant cases: cannot choose a threshold for sensitivity")
    score = malignancy(probs)
    # Flagging score >= t catches the k highest-scoring positives; we need k >= target * P.
    k = int(np.ceil(target * positive.sum()))
    edge = np.sort(score[positive])[::-1][k - 1]
    below = score[score < edge]
    return float((edge + below.max()) / 2 if below.size else edge / 2)
