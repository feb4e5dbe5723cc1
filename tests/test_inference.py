import json
import shutil

import numpy as np
import pytest
from PIL import Image

from screening.bundle import decision_digest
from screening.inference import Screener
from tests.conftest import lesion_like, with_validation_mix


@pytest.fixture(scope="module")
def screener(tiny_bundle):
    return Screener(tiny_bundle, batch_size=4)


def test_scores_paths_in_order_with_errors_in_place(screener, tmp_path):
    paths = []
    for i in range(6):
        p = tmp_path / f"{i}.png"
        Image.fromarray(lesion_like(seed=i)).save(p)
        paths.append(p)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths.insert(2, broken)
    results = list(screener.score(paths, workers=2))
    assert [r.source for r in results] == [str(p) for p in paths]
    assert [r.ok for r in results] == [True, True, False, True, True, True, True]
    assert "not a readable image" in results[2].error
    ok = results[0]
    assert sum(ok.probabilities.values()) == pytest.approx(1, abs=1e-5)
    assert ok.malignancy_probability == pytest.approx(
        ok.probabilities["mel"] + ok.probabilities["bcc"] + ok.probabilities["akiec"])
    assert ok.refer == (ok.malignancy_probability >= 0.3)  # the bundle's threshold
    assert (ok.width, ok.height) == (400, 300)


def test_arrays_and_pil_images_are_accepted(screener):
    results = list(screener.score([lesion_like(seed=1), Image.fromarray(lesion_like(seed=2))]))
    assert all(r.ok for r in results)


def test_small_image_warning(screener):
    (result,) = screener.score([lesion_like(80, 90)])
    assert any("very small" in w for w in result.warnings)


def test_threshold_override_and_validation(tiny_bundle):
    assert Screener(tiny_bundle, threshold=0.9).threshold == 0.9
    with pytest.raises(ValueError, match="between 0 and 1"):
        Screener(tiny_bundle, threshold=1.5)


def test_tta_is_flip_invariant(tiny_bundle):
    s = Screener(tiny_bundle, tta=True, batch_size=2)
    x = lesion_like(224, 224, seed=3)
    a, b = s.probabilities(np.stack([x, x[:, ::-1]]))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_malignancy_scaling_from_the_bundle_is_applied(tiny_bundle, tmp_path):
    """A bundle's malignancy scaling maps the summed probability; the flag follows the mapped value."""
    scaled = tmp_path / "scaled"
    shutil.copytree(tiny_bundle, scaled)
    meta = json.loads((scaled / "bundle.json").read_text())
    meta["malignancy_scaling"] = [0.5, -1.0]
    meta["decision_sha256"] = decision_digest(meta)
    (scaled / "bundle.json").write_text(json.dumps(meta))
    images = [lesion_like(seed=i) for i in range(3)]
    plain, mapped = list(Screener(tiny_bundle).score(images)), list(Screener(scaled).score(images))
    for p, m in zip(plain, mapped):
        s = p.probabilities["mel"] + p.probabilities["bcc"] + p.probabilities["akiec"]
        assert p.malignancy_probability == pytest.approx(s)
        assert m.malignancy_probability == pytest.approx(1 / (1 + np.exp(-(0.5 * np.log(s / (1 - s)) - 1.0))))
        assert m.probabilities == p.probabilities and m.refer == (m.malignancy_probability >= 0.3)


def test_held_out_operating_point_only_for_the_setting_it_was_measured_at(tiny_bundle, tmp_path):
    """REFER's meaning in practice is reported from images held out from training and from the
    threshold's choice, for the threshold and TTA setting they were measured at; never the
    validation figures the threshold was fitted on."""
    assert Screener(tiny_bundle).held_out is None  # a bundle without the figures
    measured = tmp_path / "measured"
    shutil.copytree(tiny_bundle, measured)
    meta = json.loads((measured / "bundle.json").read_text())
    meta["metrics"] = {"validation": {"sensitivity": 0.91, "specificity": 0.7}}
    (measured / "bundle.json").write_text(json.dumps(meta))
    assert Screener(measured).held_out is None  # validation alone: the threshold was chosen on it
    figures = {"where": "test images", "images": 50, "sensitivity": 0.85, "specificity": 0.75, "threshold": 0.3,
               "tta": False}
    meta["metrics"]["held_out"] = figures
    (measured / "bundle.json").write_text(json.dumps(meta))
    assert Screener(measured).held_out == figures
    assert Screener(measured, threshold=0.2).held_out is None
    assert Screener(measured, tta=True).held_out is None  # the figures were measured without TTA
    meta["metrics"]["held_out"] = {**figures, "threshold": 0.25}  # measured at another threshold than the bundle's
    (measured / "bundle.json").write_text(json.dumps(meta))
    assert Screener(measured).held_out is None and Screener(measured, threshold=0.25).held_out is None


def test_a_prevalence_converts_the_probability_by_bayes_rule_and_changes_no_flag(tiny_bundle, tmp_path):
    bundle = with_validation_mix(tiny_bundle, tmp_path / "b")
    images = [lesion_like(seed=i) for i in range(6)]
    base, rare = Screener(bundle), Screener(bundle, prevalence=0.05)
    assert base.calibrated_share == pytest.approx(0.2) and base.prevalence is None
    odds = (0.05 / 0.95) / (0.2 / 0.8)  # the likelihood ratio of each image stays; the prior odds change
    for b, r in zip(base.score(images), rare.score(images)):
        p = b.malignancy_probability
        assert r.malignancy_probability == pytest.approx(p * odds / (p * odds + 1 - p))
        assert r.refer == b.refer and r.probabilities == b.probabilities
    t = base.threshold
    assert rare.threshold == pytest.approx(t * odds / (t * odds + 1 - t)) and rare.base_threshold == t
    assert rare.held_out == base.held_out  # the same decisions: the same figures
    for other_threshold in (0.0, 0.4, 1.0):  # a model card threshold converts the same way
        assert Screener(bundle, threshold=other_threshold, prevalence=0.05).base_threshold == other_threshold


def test_a_prevalence_needs_a_share_and_a_model_that_records_its_own(tiny_bundle, tmp_path):
    with pytest.raises(ValueError, match="prevalence must be between 0 and 1"):
        Screener(with_validation_mix(tiny_bundle, tmp_path / "b"), prevalence=1.0)
    with pytest.raises(ValueError, match="does not record the share of malignant lesions"):
        Screener(tiny_bundle, prevalence=0.05)
