"""Evaluation metrics in plain NumPy (no scikit-learn dependency for a handful of formulas)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from statistics import NormalDist

import numpy as np

from screening.info import CLASS_CODES, MALIGNANT

MALIGNANT_IDX = [CLASS_CODES.index(c) for c in MALIGNANT]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


IDENTITY = (1.0, 0.0)


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), finite at 0 and 1."""
    return np.log(np.clip(p, 1e-12, None)) - np.log(np.clip(1.0 - p, 1e-12, None))


def malignancy(probs: np.ndarray, scaling: Sequence[float] = IDENTITY) -> np.ndarray:
    """p(mel) + p(bcc) + p(akiec), mapped through ``sigmoid(a * logit(p) + b)`` for
    ``scaling = (a, b)``: with balanced class weights the summed probability overstates how
    often a lesion is malignant, which one softmax temperature cannot undo. Monotone (a > 0),
    so it changes no ranking and no referral decision at a matching threshold."""
    score = np.asarray(probs)[..., MALIGNANT_IDX].sum(axis=-1)
    a, b = map(float, scaling)
    if (a, b) == IDENTITY:
        return score
    return 1.0 / (1.0 + np.exp(-(a * logit(score) + b)))


def is_malignant(y: np.ndarray) -> np.ndarray:
    return np.isin(np.asarray(y), MALIGNANT_IDX)


def confusion_matrix(y: np.ndarray, pred: np.ndarray, k: int = len(CLASS_CODES)) -> np.ndarray:
    """Rows are true classes, columns predicted."""
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y), np.asarray(pred)), 1)
    return cm


def per_class(cm: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class; NaN where there is nothing to measure (no
    image of the class for recall, none predicted as it for precision), not 0: a clinic's check
    without a melanoma should not read "melanoma recall 0.000"."""
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.full_like(tp, np.nan), where=predicted > 0)
    recall = np.divide(tp, support, out=np.full_like(tp, np.nan), where=support > 0)
    either = support + predicted  # 2TP / (2TP + FP + FN): 0 for a class present but never found
    f1 = np.divide(2 * tp, either, out=np.full_like(tp, np.nan), where=either > 0)
    return {
        code: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, code in enumerate(CLASS_CODES)
    }


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes present (the ISIC 2018 Task 3 metric)."""
    support = cm.sum(axis=1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean())


def roc_curve(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds, from the highest score down."""
    positive = np.asarray(positive, dtype=bool)
    order = np.argsort(-np.asarray(score), kind="mergesort")
    s, p = np.asarray(score)[order], positive[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps, fps = np.cumsum(p)[distinct], np.cumsum(~p)[distinct]
    tpr = np.r_[0, tps] / max(positive.sum(), 1)
    fpr = np.r_[0, fps] / max((~positive).sum(), 1)
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(positive, score)
    return float(np.trapezoid(tpr, fpr))


def macro_auroc(y: np.ndarray, probs: np.ndarray) -> float:
    """One-vs-rest AUROC averaged over the classes present in ``y``."""
    values = [auroc(np.asarray(y) == k, probs[:, k]) for k in range(probs.shape[1])]
    return float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan")


def sensitivity_specificity(positive: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float]:
    positive = np.asarray(positive, dtype=bool)
    flagged = np.asarray(score) >= threshold
    sens = flagged[positive].mean() if positive.any() else float("nan")
    spec = (~flagged[~positive]).mean() if (~positive).any() else float("nan")
    return float(sens), float(spec)


def binned(confidence: np.ndarray, outcome: np.ndarray, bins: int = 15) -> dict[str, np.ndarray]:
    """Mean stated probability vs observed frequency per equal-width bin of the probability."""
    confidence = np.asarray(confidence, dtype=float)
    idx = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(idx, minlength=bins)
    hits = np.bincount(idx, weights=np.asarray(outcome, dtype=float), minlength=bins)
    mean_conf = np.bincount(idx, weights=confidence, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"count": count, "accuracy": hits / count, "confidence": mean_conf / count}


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, np.ndarray]:
    """Top-label confidence vs accuracy per equal-width bin."""
    return binned(probs.max(axis=1), probs.argmax(axis=1) == np.asarray(y), bins)


MALIGNANCY_BINS = 10  # fewer than the top class's 15: malignant cases are a fifth of the images


def malignancy_reliability(
    probs: np.ndarray, y: np.ndarray, scaling: Sequence[float] = IDENTITY, bins: int = MALIGNANCY_BINS
) -> dict[str, np.ndarray]:
    """Malignancy probability vs the observed fraction of malignant lesions per bin."""
    return binned(malignancy(probs, scaling), is_malignant(y), bins)


def calibration_error(r: dict[str, np.ndarray]) -> float:
    """Expected calibration error of a :func:`binned` table: the count-weighted mean gap."""
    used = r["count"] > 0
    gap = np.abs(r["accuracy"][used] - r["confidence"][used])
    return float((gap * r["count"][used]).sum() / r["count"].sum())


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    return calibration_error(reliability(probs, y, bins))


def calibration_errors(probs: np.ndarray, y: np.ndarray, scaling: Sequence[float] = IDENTITY) -> dict[str, float]:
    """Top-class ECE and the malignancy probability's ECE (under ``scaling``)."""
    return {"ece": expected_calibration_error(probs, y),
            "malignancy_ece": calibration_error(malignancy_reliability(probs, y, scaling))}


def resamples_of(n: int, groups: Sequence | None = None, resamples: int = 1000, seed: int = 0) -> Iterator[np.ndarray]:
    """Index arrays of bootstrap resamples of ``n`` cases, whole groups (lesions) at a time if given.

    Several images of one lesion are not independent evidence; resampling them singly would
    make every interval too narrow.
    """
    keys = np.unique(np.asarray(groups if groups is not None else np.arange(n)), return_inverse=True)[1]
    members = np.split(np.argsort(keys, kind="stable"), np.cumsum(np.bincount(keys))[:-1])
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])


def headline(y: np.ndarray, pred: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """The figures a bootstrap interval is given for, from true and predicted classes and the
    malignancy probability: balanced accuracy, malignant AUROC, sensitivity, specificity and
    each class's recall (``recall_<code>``, NaN for a class absent from ``y``)."""
    cm = confusion_matrix(y, pred)
    support = cm.sum(axis=1)
    recall = np.divide(np.diag(cm), support, out=np.full(len(support), np.nan), where=support > 0)
    return {"balanced_accuracy": balanced_accuracy(cm), **malignancy_figures(is_malignant(y), score, threshold),
            **{f"recall_{c}": float(r) for c, r in zip(CLASS_CODES, recall)}}


def malignancy_figures(positive: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Malignant-vs-benign AUROC, and sensitivity and specificity at ``threshold``: all that
    labels saying only malignant or benign (a biopsy's verdict) can measure."""
    sens, spec = sensitivity_specificity(positive, score, threshold)
    return {"malignant_auroc": auroc(positive, score), "sensitivity": sens, "specificity": spec}


def percentile_intervals(draws: Sequence[dict[str, float]], level: float = 0.95) -> dict[str, list[float]]:
    """Per key, the central ``level`` interval of the bootstrap draws (NaN draws left out)."""
    tail = 50 * (1 - level)
    out = {}
    for key in draws[0]:
        values = np.array([d[key] for d in draws], dtype=float)
        finite = values[~np.isnan(values)]
        out[key] = [float(v) for v in np.percentile(finite, [tail, 100 - tail])] if finite.size else [float("nan")] * 2
    return out


def bootstrap_intervals(
    probs: np.ndarray, y: np.ndarray, threshold: float, scaling: Sequence[float] = IDENTITY,
    groups: Sequence | None = None, resamples: int = 1000, level: float = 0.95, seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals for the :func:`headline` figures.

    A validation split of a thousand images leaves these figures uncertain by several points
    (a dozen dermatofibromas decide a seventh of the balanced accuracy); the interval says by
    how much. ``groups`` (lesion ids) resamples whole lesions.
    """
    y, pred, score = np.asarray(y), np.asarray(probs).argmax(axis=1), malignancy(probs, scaling)
    draws = [headline(y[i], pred[i], score[i], threshold) for i in resamples_of(len(y), groups, resamples, seed)]
    return percentile_intervals(draws, level)


def malignancy_intervals(positive: np.ndarray, score: np.ndarray, threshold: float, groups: Sequence | None = None,
                         resamples: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """95% intervals for :func:`malignancy_figures`: AUROC by percentile bootstrap (of lesions,
    ``groups``, if given), sensitivity and specificity by Wilson's (:func:`referral_intervals`)."""
    positive, score = np.asarray(positive, dtype=bool), np.asarray(score)
    draws = [{"malignant_auroc": auroc(positive[i], score[i])} for i in resamples_of(len(positive), groups, resamples, seed)]
    return {**percentile_intervals(draws), **referral_intervals(positive, score, threshold, groups)}


def wilson_interval(successes: float, n: float, level: float = 0.95) -> list[float]:
    """Wilson score interval for a proportion. Unlike the percentile bootstrap it stays open
    at 0 of n and n of n: 11 of 11 correct gives (0.74, 1.00), not (1.00, 1.00)."""
    if n <= 0:
        return [float("nan")] * 2
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p, zz = successes / n, z * z / n
    centre, half = (p + zz / 2) / (1 + zz), z * np.sqrt(p * (1 - p) / n + zz / (4 * n)) / (1 + zz)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def paired_difference_interval(both: float, only_b: float, only_a: float, neither: float,
                               level: float = 0.95) -> list[float]:
    """Newcombe's (1998, Stat Med 17:2635, method 10) interval for p_B - p_A, two proportions
    measured on the same cases, from the four cells of their paired table.

    It combines the two Wilson intervals, allowing for the correlation of the pairs; unlike a
    bootstrap it stays open when the two agree on every case of a small class (0 and 0
    discordant cases give a symmetric interval around zero, not zero to zero).
    """
    n = both + only_b + only_a + neither
    if n <= 0:
        return [float("nan")] * 2
    p_b, p_a = (both + only_b) / n, (both + only_a) / n
    (lo_b, hi_b), (lo_a, hi_a) = wilson_interval(both + only_b, n, level), wilson_interval(both + only_a, n, level)
    margins = (both + only_b) * (only_a + neither) * (both + only_a) * (only_b + neither)
    cross = both * neither - only_b * only_a
    corrected = cross - n / 2 if cross > n / 2 else min(cross, 0.0)  # Newcombe's continuity-corrected phi
    phi = corrected / np.sqrt(margins) if margins > 0 else 0.0
    d = p_b - p_a
    down = np.sqrt(max((p_b - lo_b) ** 2 - 2 * phi * (p_b - lo_b) * (hi_a - p_a) + (hi_a - p_a) ** 2, 0.0))
    up = np.sqrt(max((p_a - lo_a) ** 2 - 2 * phi * (p_a - lo_a) * (hi_b - p_b) + (hi_b - p_b) ** 2, 0.0))
    return [float(max(-1.0, d - down)), float(min(1.0, d + up))]


def recall_intervals(y: np.ndarray, pred: np.ndarray, groups: Sequence | None = None,
                     level: float = 0.95) -> dict[str, list[float]]:
    """Per class (``recall_<code>``), a Wilson interval for its recall with the number of the
    class's lesions (``groups``; images without) as the sample size: a dozen cases are too few
    for a bootstrap, and several images of one lesion count as one, as in the resampling."""
    y, pred = np.asarray(y), np.asarray(pred)
    groups = np.asarray(groups) if groups is not None else np.arange(len(y))
    return {f"recall_{code}": share_interval(pred[y == i] == i, groups[y == i], level)
            for i, code in enumerate(CLASS_CODES)}


def referral_intervals(positive: np.ndarray, score: np.ndarray, threshold: float,
                       groups: Sequence | None = None, level: float = 0.95) -> dict[str, list[float]]:
    """Wilson intervals for the sensitivity and specificity at ``threshold``, the malignant and
    the benign lesions (``groups``; images without) the sample sizes, as for a class's recall:
    a check holding a dozen malignant lesions, all referred, gets (0.76-1.00), where a
    bootstrap says (1.00-1.00)."""
    positive, flagged = np.asarray(positive, dtype=bool), np.asarray(score) >= threshold
    groups = np.asarray(groups) if groups is not None else np.arange(len(positive))
    return {"sensitivity": share_interval(flagged[positive], groups[positive], level),
            "specificity": share_interval(~flagged[~positive], groups[~positive], level)}


def share_interval(right: np.ndarray, groups: np.ndarray, level: float = 0.95) -> list[float]:
    """Wilson interval for the share of ``right`` cases, their lesions (``groups``, one per
    case) the sample size: 11 of 11 right gives (0.74, 1.00), where a bootstrap gives (1, 1)."""
    n = len(np.unique(groups))
    return wilson_interval(float(np.mean(right)) * n if n else 0.0, n, level)


def summary(probs: np.ndarray, y: np.ndarray, threshold: float, scaling: Sequence[float] = IDENTITY) -> dict:
    """Every headline metric for one set of predictions, JSON-ready (``threshold`` applies to
    the malignancy probability under ``scaling``)."""
    y = np.asarray(y)
    cm = confusion_matrix(y, probs.argmax(axis=1))
    positive, score = is_malignant(y), malignancy(probs, scaling)
    sens, spec = sensitivity_specificity(positive, score, threshold)
    return {
        "n": len(y),
        "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "balanced_accuracy": balanced_accuracy(cm),
        "macro_auroc": macro_auroc(y, probs),
        "malignant_auroc": auroc(positive, score),
        "threshold": float(threshold),
        "sensitivity": sens,
        "specificity": spec,
        **calibration_errors(probs, y, scaling),
        "per_class": per_class(cm),
        "confusion_matrix": cm.tolist(),
        "classes": list(CLASS_CODES),
    }
