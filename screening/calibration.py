"""Post-hoc calibration on validation data: a softmax temperature, a scaling of the
malignancy probability and a referral threshold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from screening.metrics import IDENTITY, is_malignant, logit, malignancy, softmax


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising validation NLL (coarse log-grid, then a fine one)."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))
    best = min(grid, key=lambda t: nll(logits, y, t))
    fine = best * np.exp(np.linspace(-0.06, 0.06, 61))
    return float(min(fine, key=lambda t: nll(logits, y, t)))


def fit_malignancy_scaling(probs: np.ndarray, y: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """Platt scaling of p(mel) + p(bcc) + p(akiec): the (a, b) of ``sigmoid(a * logit(p) + b)``
    with minimum validation log-loss for malignant vs benign (Newton's method on two
    parameters). Falls back to the identity if the fit is not increasing (a <= 0)."""
    score = malignancy(probs)
    x = np.stack([logit(score), np.ones_like(score)], axis=1)
    t = is_malignant(y).astype(float)
    if t.all() or not t.any():
        raise ValueError("malignant and benign cases are both needed to scale the malignancy probability")
    w = np.array(IDENTITY)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w)))
        hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, x.T @ (p - t))
        w = w - step
        if np.abs(step).max() < 1e-10:
            break
    return (float(w[0]), float(w[1])) if w[0] > 0 else IDENTITY


def threshold_for_sensitivity(
    y: np.ndarray, probs: np.ndarray, target: float = 0.90, scaling: Sequence[float] = IDENTITY
) -> float:
    """A malignancy threshold with sensitivity >= target for malignant lesions, flagging as few
    cases as possible.

    It lies halfway between the score of the last malignant case that must be caught and the
    next lower score of any case: the same cases are flagged as at that score itself, but a
    numerical difference smaller than half the gap (another CPU, a GPU, float16 weights) can
    no longer drop that case below the threshold and the sensitivity below the target.
    """
    return threshold_at_sensitivity(is_malignant(y), malignancy(probs, scaling), target)


def threshold_at_sensitivity(positive: np.ndarray, score: np.ndarray, target: float = 0.90) -> float:
    """:func:`threshold_for_sensitivity` for malignant flags and malignancy probabilities."""
    positive, score = np.asarray(positive, dtype=bool), np.asarray(score)
    if not positive.any():
        raise ValueError("no malignant cases: cannot choose a threshold for sensitivity")
    # Flagging score >= t catches the k highest-scoring positives; we need k >= target * P.
    k = int(np.ceil(target * positive.sum()))
    edge = np.sort(score[positive])[::-1][k - 1]
    below = score[score < edge]
    return float((edge + below.max()) / 2 if below.size else edge / 2)


def prevalence_shift(to: float, fitted_at: float) -> float:
    """The change to the malignancy probability's logit that carries it from the malignant share
    it was calibrated at to another (Bayes' rule under label shift: each class's images look the
    same, only the mix differs). At 5% malignant, the packaged model's validation figures go
    from an expected calibration error of 0.081 to 0.011 (``benchmarks/prevalence.py``)."""
    return float(np.log(to / (1 - to)) - np.log(fitted_at / (1 - fitted_at)))


def shifted(p: float, shift: float) -> float:
    """A probability (a threshold) moved by ``shift`` on the logit scale; 0 and 1 stay."""
    return p if p in (0.0, 1.0) or shift == 0 else float(1 / (1 + np.exp(-(logit(np.float64(p)) + shift))))

