import numpy as np
import pytest

from screening.calibration import fit_malignancy_scaling, fit_temperature, threshold_for_sensitivity
from screening.info import CLASS_CODES
from screening.metrics import (
    auroc,
    balanced_accuracy,
    bootstrap_intervals,
    calibration_error,
    confusion_matrix,
    expected_calibration_error,
    malignancy,
    malignancy_reliability,
    paired_difference_interval,
    recall_intervals,
    sensitivity_specificity,
    softmax,
    summary,
    wilson_interval,
)

MEL, NV, BCC = CLASS_CODES.index("mel"), CLASS_CODES.index("nv"), CLASS_CODES.index("bcc")


def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    pos = rng.random(200) < 0.3
    score = rng.random(200) + pos * 0.3
    score[:20] = 0.5  # ties count one half
    pairs = score[pos][:, None] - score[~pos][None, :]
    expected = ((pairs > 0) + 0.5 * (pairs == 0)).mean()
    assert auroc(pos, score) == pytest.approx(expected)
    assert np.isnan(auroc(np.ones(5, bool), np.arange(5)))


def test_balanced_accuracy_is_mean_recall():
    y = np.array([NV] * 8 + [MEL] * 2)
    pred = np.array([NV] * 8 + [NV, MEL])
    cm = confusion_matrix(y, pred)
    assert balanced_accuracy(cm) == pytest.approx((1.0 + 0.5) / 2)


def test_malignancy_sums_mel_bcc_akiec():
    p = np.zeros((1, 7))
    p[0, [MEL, BCC, NV]] = [0.2, 0.3, 0.5]
    assert malignancy(p)[0] == pytest.approx(0.5)


def test_sensitivity_specificity_at_threshold():
    pos = np.array([1, 1, 0, 0], bool)
    sens, spec = sensitivity_specificity(pos, np.array([0.9, 0.4, 0.6, 0.1]), 0.5)
    assert (sens, spec) == (0.5, 0.5)


def test_threshold_reaches_target_sensitivity():
    rng = np.random.default_rng(1)
    y = rng.choice([MEL, NV], 300)
    logits = rng.normal(size=(300, 7))
    logits[y == MEL, MEL] += 1.5
    p = softmax(logits)
    t = threshold_for_sensitivity(y, p, 0.9)
    score = malignancy(p)
    sens, spec = sensitivity_specificity(y == MEL, score, t)
    assert sens >= 0.9
    edge = score[score >= t].min()  # the lowest flagged case
    assert sensitivity_specificity(y == MEL, score, edge + 1e-9)[0] < 0.9  # no fewer cases flagged would do
    gap = min(edge - t, t - score[score < t].max())
    assert gap > 0 and edge - t == pytest.approx(t - score[score < t].max())  # halfway between two cases
    assert sensitivity_specificity(y == MEL, score + gap / 2, t) == (sens, spec)  # small shifts change nothing
    assert sensitivity_specificity(y == MEL, score - gap / 2, t) == (sens, spec)


def test_temperature_recovers_overconfidence_and_lowers_ece():
    rng = np.random.default_rng(2)
    true_logits = rng.normal(size=(4000, 7)) * 2
    y = np.array([rng.choice(7, p=softmax(z)) for z in true_logits])
    overconfident = true_logits * 3  # a model three times too sure
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(3, rel=0.15)
    assert expected_calibration_error(softmax(overconfident, t), y) < expected_calibration_error(softmax(overconfident), y)


def test_malignancy_scaling_corrects_an_inflated_probability_without_reordering():
    """Class weights make the summed malignant probability too high; Platt scaling brings it
    back to the observed frequency, and the same threshold, mapped, flags the same cases."""
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, 5000)
    y = np.where(rng.random(5000) < 1 / (1 + np.exp(-(0.6 * z - 1.0))), MEL, NV)
    p = np.zeros((5000, 7))
    p[:, MEL], p[:, NV] = 1 / (1 + np.exp(-z)), 1 / (1 + np.exp(z))
    scaling = fit_malignancy_scaling(p, y)
    assert scaling == pytest.approx((0.6, -1.0), abs=0.1)
    raw, fitted = malignancy_reliability(p, y), malignancy_reliability(p, y, scaling)
    assert calibration_error(fitted) < 0.03
    assert calibration_error(raw) > 0.1
    assert np.array_equal(np.argsort(malignancy(p), kind="stable"), np.argsort(malignancy(p, scaling), kind="stable"))
    t_raw, t_fit = threshold_for_sensitivity(y, p, 0.9), threshold_for_sensitivity(y, p, 0.9, scaling)
    assert np.array_equal(malignancy(p) >= t_raw, malignancy(p, scaling) >= t_fit)
    assert summary(p, y, t_fit, scaling)["sensitivity"] == summary(p, y, t_raw)["sensitivity"] >= 0.9
    assert np.array_equal(malignancy(p, (1.0, 0.0)), malignancy(p))  # the identity is exact


def test_summary_is_json_ready():
    import json

    y = np.array([MEL, NV, BCC, NV])
    p = softmax(np.eye(7)[[MEL, NV, NV, NV]] * 3)
    s = summary(p, y, 0.3)
    json.dumps(s)
    assert s["per_class"]["bcc"]["recall"] == 0 and s["n"] == 4


def _noisy_predictions(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, n)
    return softmax(np.eye(7)[y] * 2 + rng.normal(0, 1.0, (n, 7))), y


def test_bootstrap_intervals_bracket_the_estimate_and_narrow_with_more_data():
    widths = []
    for n in (200, 2000):
        p, y = _noisy_predictions(n)
        s, ci = summary(p, y, 0.5), bootstrap_intervals(p, y, 0.5, resamples=300)
        for key in ("balanced_accuracy", "malignant_auroc", "sensitivity", "specificity"):
            assert ci[key][0] <= s[key] <= ci[key][1], key
        assert ci["recall_mel"][0] <= s["per_class"]["mel"]["recall"] <= ci["recall_mel"][1]
        widths.append(ci["balanced_accuracy"][1] - ci["balanced_accuracy"][0])
    assert widths[1] < widths[0] / 2  # about 1/sqrt(10) as wide
    assert bootstrap_intervals(p, y, 0.5, resamples=50) == bootstrap_intervals(p, y, 0.5, resamples=50)  # seeded


def test_bootstrap_resamples_whole_lesions():
    """Five copies of each image are one lesion's worth of evidence, not five."""
    p, y = _noisy_predictions(300)
    width = lambda ci: ci["balanced_accuracy"][1] - ci["balanced_accuracy"][0]
    once = width(bootstrap_intervals(p, y, 0.5, resamples=400))
    copies, lesions = np.repeat(p, 5, axis=0), np.repeat(np.arange(300), 5)
    by_lesion = width(bootstrap_intervals(copies, np.repeat(y, 5), 0.5, groups=lesions, resamples=400))
    by_image = width(bootstrap_intervals(copies, np.repeat(y, 5), 0.5, resamples=400))
    assert abs(by_lesion - once) < 0.25 * once
    assert by_image < 0.6 * once


def test_bootstrap_interval_of_an_absent_class_is_nan():
    y = np.array([MEL, NV, BCC, NV] * 5)
    ci = bootstrap_intervals(softmax(np.eye(7)[y] * 3), y, 0.5, resamples=20)
    assert np.isnan(ci["recall_df"]).all() and ci["recall_nv"] == [1.0, 1.0]


def test_wilson_interval_matches_published_values_and_stays_open_at_the_ends():
    # Newcombe (1998), Stat Med 17:857, table I: 0/10, 10/10 and 81/263 (method 3).
    np.testing.assert_allclose(wilson_interval(0, 10), [0.0, 0.2775], atol=1e-4)
    np.testing.assert_allclose(wilson_interval(10, 10), [0.7225, 1.0], atol=1e-4)
    np.testing.assert_allclose(wilson_interval(81, 263), [0.2553, 0.3662], atol=1e-4)
    assert np.isnan(wilson_interval(0, 0)).all()


def test_paired_difference_interval_matches_published_values():
    # Newcombe (1998), Stat Med 17:2635, table II, method 10: 36 / 12 / 2 / 0 pairs.
    np.testing.assert_allclose(paired_difference_interval(36, 12, 2, 0), [0.0569, 0.3404], atol=1e-4)
    # Fagerland, Lydersen & Laake, The 2x2 paired table (Cavo et al. 2012), as checked in
    # the R package contingencytables: 59 / 6 / 16 / 80 -> -0.0621 (-0.1186 to -0.0046).
    np.testing.assert_allclose(paired_difference_interval(59, 6, 16, 80), [-0.1186, -0.0046], atol=1e-4)


def test_paired_difference_interval_stays_open_when_the_two_always_agree():
    lo, hi = paired_difference_interval(13, 0, 0, 0)  # both right on all 13
    assert lo == pytest.approx(-hi) and 0.2 < hi < 0.25
    assert paired_difference_interval(13, 0, 0, 0, level=0.5)[1] < hi
    assert np.isnan(paired_difference_interval(0, 0, 0, 0)).all()


def test_recall_intervals_count_lesions_not_images():
    """Ten images of two lesions, all correct: the evidence of two cases, not ten."""
    y = np.array([MEL] * 10 + [NV] * 4)
    lesions = np.array([1] * 5 + [2] * 5 + [3, 4, 5, 6])
    ci = recall_intervals(y, y, lesions)
    assert ci["recall_mel"] == wilson_interval(2, 2) and ci["recall_mel"][0] < 0.35
    assert recall_intervals(y, y)["recall_mel"] == wilson_interval(10, 10)  # no lesions given: images
    assert np.isnan(ci["recall_df"]).all()
