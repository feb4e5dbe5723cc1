import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from screening import compare, evaluate
from screening.info import CLASS_CODES
from screening.metrics import paired_difference_interval
from tests.conftest import lesion_like


@pytest.fixture(scope="module")
def two_evaluations(tiny_bundle, tmp_path_factory):
    """The same tiny model evaluated twice on eight images of four lesions, then B's class
    probabilities replaced by the truth."""
    root = tmp_path_factory.mktemp("cmp")
    (root / "images").mkdir()
    dx = ["mel", "nv", "bcc", "nv", "bkl", "akiec", "bcc", "nv"]
    for i in range(len(dx)):
        Image.fromarray(lesion_like(seed=i)).save(root / "images" / f"I{i}.png")
    pd.DataFrame({"image_id": [f"I{i}" for i in range(len(dx))], "dx": dx,
                  "lesion_id": [f"L{i // 2}" for i in range(len(dx))]}).to_csv(root / "l.csv", index=False)
    for name in ("a", "b"):
        assert evaluate.main(["--model", str(tiny_bundle), "--images", str(root / "images"), "--labels",
                              str(root / "l.csv"), "--out", str(root / name)]) == 0
    table = pd.read_csv(root / "b" / evaluate.PREDICTIONS)  # B: certain of every true class
    for c in CLASS_CODES:
        table[f"p_{c}"] = (table["dx"] == c).astype(float)
    table.to_csv(root / "b" / evaluate.PREDICTIONS, index=False)
    return root


def test_predictions_csv_has_a_row_per_labelled_image(two_evaluations):
    table = pd.read_csv(two_evaluations / "a" / evaluate.PREDICTIONS)
    assert list(table.columns[:3]) == ["image_id", "dx", "lesion_id"] and len(table) == 8
    assert set(table["flag"]) <= {"REFER", "routine"}
    np.testing.assert_allclose(table[[c for c in table.columns if c.startswith("p_")]].sum(axis=1), 1, atol=1e-5)


def test_the_same_evaluation_twice_differs_by_exactly_nothing(two_evaluations):
    result = compare.compare(two_evaluations / "a", two_evaluations / "a", resamples=50)
    assert result["resampled"] == "lesions"
    for r in result["figures"].values():
        assert r["difference"] == 0 or np.isnan(r["difference"])


def test_a_better_candidate_shows_in_the_difference_and_its_interval(two_evaluations, capsys):
    result = compare.compare(two_evaluations / "a", two_evaluations / "b", resamples=200)["figures"]
    a = json.loads((two_evaluations / "a" / "metrics.json").read_text())
    assert result["balanced_accuracy"]["a"] == pytest.approx(a["balanced_accuracy"])
    assert result["balanced_accuracy"]["b"] == 1.0 > result["balanced_accuracy"]["a"]
    lo, hi = result["balanced_accuracy"]["interval"]
    assert 0 <= lo <= result["balanced_accuracy"]["difference"] <= hi and hi > 0  # never worse, paired
    assert compare.main([str(two_evaluations / "a"), str(two_evaluations / "b"), "--resamples", "20"]) == 0
    out = capsys.readouterr().out
    assert "| balanced accuracy |" in out and "20 resamples of lesions" in out
    assert "| recall df | n/a | n/a | n/a | 0 / 0 |" in out and " nan " not in out  # no dermatofibroma labelled


def test_labels_of_malignant_or_benign_compare_the_malignancy_figures_alone(two_evaluations, tmp_path, capsys):
    """A clinic's biopsy results: the two evaluations' figures as the diagnoses' would be."""
    outcome = {}
    for name in ("a", "b"):
        table = pd.read_csv(two_evaluations / name / evaluate.PREDICTIONS)
        table["dx"] = np.where(table["dx"].isin(["mel", "bcc", "akiec"]), "malignant", "benign")
        (tmp_path / name).mkdir()
        table.to_csv(tmp_path / name / evaluate.PREDICTIONS, index=False)
        (tmp_path / name / "metrics.json").write_bytes((two_evaluations / name / "metrics.json").read_bytes())
        outcome[name] = tmp_path / name
    result = compare.compare(outcome["a"], outcome["b"], resamples=100)["figures"]
    diagnoses = compare.compare(two_evaluations / "a", two_evaluations / "b", resamples=100)["figures"]
    assert list(result) == ["malignant_auroc", "sensitivity", "specificity"]
    assert all(result[k] == diagnoses[k] for k in result)
    assert compare.main([str(outcome["a"]), str(outcome["b"]), "--resamples", "20"]) == 0
    assert "| malignant auroc |" in capsys.readouterr().out


def test_different_labels_or_folders_are_one_line_errors(two_evaluations, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.json").write_text((two_evaluations / "a" / "metrics.json").read_text())
    pd.read_csv(two_evaluations / "a" / evaluate.PREDICTIONS).iloc[:5].to_csv(other / evaluate.PREDICTIONS, index=False)
    assert compare.main([str(two_evaluations / "a"), str(other)]) == 2
    assert "not evaluated on the same labelled images" in capsys.readouterr().err
    assert compare.main([str(two_evaluations / "a"), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "predictions.csv not found" in err


@pytest.mark.parametrize("damage", ["column", "json"])
def test_a_damaged_evaluation_is_a_one_line_error(two_evaluations, tmp_path, capsys, damage):
    broken = tmp_path / "broken"
    broken.mkdir()
    table = pd.read_csv(two_evaluations / "a" / evaluate.PREDICTIONS)
    (table.drop(columns=["p_mel"]) if damage == "column" else table).to_csv(broken / evaluate.PREDICTIONS, index=False)
    (broken / "metrics.json").write_text("{" if damage == "json" else
                                         (two_evaluations / "a" / "metrics.json").read_text())
    assert compare.main([str(two_evaluations / "a"), str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and {"column": "missing column(s) p_mel", "json": "unreadable evaluation"}[damage] in err


def test_discordant_counts_are_what_the_difference_rests_on(two_evaluations, capsys):
    result = compare.compare(two_evaluations / "a", two_evaluations / "b", resamples=20)["figures"]
    table = pd.read_csv(two_evaluations / "a" / evaluate.PREDICTIONS)
    support = table["dx"].value_counts()
    for c in CLASS_CODES:
        r = result[f"recall_{c}"]
        if c in support:  # B is right on every image, so it alone is right where A was wrong
            assert r["only_a"] == 0 and (r["only_b"] - r["only_a"]) == pytest.approx(r["difference"] * support[c])
    malignant = table["dx"].isin(["mel", "bcc", "akiec"])
    for key, n in (("sensitivity", malignant.sum()), ("specificity", (~malignant).sum())):
        assert result[key]["only_b"] - result[key]["only_a"] == pytest.approx(result[key]["difference"] * n)
    same = compare.compare(two_evaluations / "b", two_evaluations / "b", resamples=20)["figures"]
    assert all(same[k].get("only_b", 0) == same[k].get("only_a", 0) == 0 for k in same)
    assert "only_b" not in result["balanced_accuracy"]  # not a proportion of cases
    assert compare.main([str(two_evaluations / "a"), str(two_evaluations / "b"), "--resamples", "20"]) == 0
    assert "| right only in B / only in A |" in capsys.readouterr().out


def test_proportions_get_newcombes_interval_counting_lesions(two_evaluations):
    """Each proportion's interval is Newcombe's on its paired table, and it stays open where
    A and B agree on every case."""
    result = compare.compare(two_evaluations / "a", two_evaluations / "a", resamples=20)["figures"]
    table = pd.read_csv(two_evaluations / "a" / evaluate.PREDICTIONS)
    nv = table[table["dx"] == "nv"]  # three images, of three lesions
    right = int((nv[[f"p_{c}" for c in CLASS_CODES]].to_numpy().argmax(axis=1) == CLASS_CODES.index("nv")).sum())
    scale = nv["lesion_id"].nunique() / len(nv)
    expected = paired_difference_interval(right * scale, 0, 0, (len(nv) - right) * scale)
    assert result["recall_nv"]["interval"] == pytest.approx(expected)
    lo, hi = result["recall_nv"]["interval"]
    assert lo < 0 < hi and result["recall_nv"]["only_b"] == result["recall_nv"]["only_a"] == 0
    assert np.isnan(result["recall_df"]["interval"]).all()  # no dermatofibroma among the images


def test_several_images_of_one_lesion_count_as_one_case():
    among = np.array([True] * 6 + [False] * 2)
    lesions = np.array(["L1", "L1", "L1", "L2", "L2", "L3", "L4", "L5"])
    interval = compare.proportion_interval(among, (6, 0, 0, 0), lesions)
    assert interval == pytest.approx(paired_difference_interval(3, 0, 0, 0))  # 3 lesions, not 6 images
    assert interval[1] > compare.proportion_interval(among, (6, 0, 0, 0), None)[1]
