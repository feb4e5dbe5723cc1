import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from screening import subgroups
from screening.evaluate import PREDICTIONS
from screening.info import CLASS_CODES, SUBGROUPS
from screening.metrics import auroc

HAM10000 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ham10000" / "HAM10000_metadata.csv"
VALIDATION = Path(__file__).resolve().parents[1] / "docs" / "model" / "validation"


@pytest.fixture
def evaluation(tmp_path) -> Path:
    """An evaluation folder of 31 images, threshold 0.5: 24 women aged 45 (12 malignant, 10 of
    them referred; 12 benign, 3 referred), 6 men aged 75 (3 and 3, all right), and one image the
    metadata does not list. The first two women's images are one lesion."""
    folder = tmp_path / "eval"
    folder.mkdir()
    dx = ["mel"] * 12 + ["nv"] * 12 + ["bcc"] * 3 + ["bkl"] * 3 + ["nv"]
    score = [0.9] * 10 + [0.2] * 2 + [0.6] * 3 + [0.1] * 9 + [0.8] * 3 + [0.3] * 3 + [0.1]
    table = pd.DataFrame({"image_id": [f"I{i}" for i in range(31)], "dx": dx,
                          "lesion_id": ["L0", *(f"L{i}" for i in range(30))], "malignancy_probability": score})
    for c in CLASS_CODES:
        table[f"p_{c}"] = (table["dx"] == c).astype(float)
    table["width"], table["height"] = [224] * 20 + [200] * 11, [224] * 20 + [150] * 11
    table.to_csv(folder / PREDICTIONS, index=False)
    (folder / "metrics.json").write_text(json.dumps({"threshold": 0.5}))
    pd.DataFrame({"image_id": [f"I{i}" for i in range(30)], "sex": ["female"] * 24 + ["male"] * 6,
                  "age": ["45.0"] * 24 + ["75.0"] * 6}).to_csv(tmp_path / "meta.csv", index=False)
    return folder


@pytest.mark.parametrize(("age", "band"), [("29.9", "under 30"), ("30", "30-49"), (49.5, "30-49"), ("69", "50-69"),
                                           ("70.0", "70 and over"), ("", "unknown"), (float("nan"), "unknown"),
                                           ("n/a", "unknown")])
def test_ages_fall_in_bands(age, band):
    assert subgroups.age_band(age, SUBGROUPS["age"]["bands"]) == band


def test_body_sites_are_gathered_into_regions_and_other_values_kept():
    sites = pd.Series(["face", "Scalp", "back", "hand", "palms/soles", None, " "])
    assert list(subgroups.group_names(sites, SUBGROUPS["body site"])) == [
        "head and neck", "head and neck", "trunk", "hands and feet", "palms/soles", "unknown", "unknown"]
    confirmed = pd.Series(["histo", "follow_up", "single image expert consensus"])
    assert list(subgroups.group_names(confirmed, SUBGROUPS["diagnosis confirmed by"])) == [
        "histopathology", "follow-up (unchanged)", "single image expert consensus"]


def test_each_group_gets_its_own_figures(evaluation):
    result = subgroups.subgroups(evaluation, evaluation.parent / "meta.csv", resamples=50)
    women, men = result["subgroups"]["sex"]["female"], result["subgroups"]["sex"]["male"]
    assert (women["images"], women["malignant_lesions"], women["benign_lesions"]) == (24, 11, 12)  # I0, I1: one lesion
    assert (women["sensitivity"], women["specificity"]) == (10 / 12, 9 / 12)
    assert women["malignant_auroc"] == pytest.approx(auroc(np.r_[[True] * 12, [False] * 12],
                                                           np.r_[[0.9] * 10, [0.2] * 2, [0.6] * 3, [0.1] * 9]))
    lo, hi = women["intervals"]["malignant_auroc"]
    assert lo <= women["malignant_auroc"] <= hi
    assert (men["sensitivity"], men["specificity"]) == (1.0, 1.0) and np.isnan(men["malignant_auroc"])  # 3 and 3
    assert men["intervals"]["sensitivity"][0] < 0.5  # Wilson's, on three lesions: wide
    assert list(result["subgroups"]["sex"]) == ["female", "male", "unknown"]  # the most images first, unknown last
    assert list(result["subgroups"]["age"]) == ["30-49", "70 and over", "unknown"]
    assert result["subgroups"]["image size"]["200x150"]["images"] == 11
    assert result["not_in_metadata"] == 1 and result["overall"]["images"] == 31
    assert "body site" not in result["subgroups"] and result["columns"] == {"sex": "sex", "age": "age"}


def test_isic_archive_column_names_are_read(evaluation):
    meta = evaluation.parent / "meta.csv"
    table = pd.read_csv(meta).rename(columns={"image_id": "isic_id", "age": "age_approx"})
    table["anatom_site_general"] = "head/neck"
    table.to_csv(meta, sep=";", index=False)  # as Excel saves a CSV where the decimal mark is a comma
    result = subgroups.subgroups(evaluation, meta, resamples=20)
    assert result["columns"] == {"sex": "sex", "age": "age_approx", "body site": "anatom_site_general"}
    assert result["subgroups"]["body site"]["head/neck"]["images"] == 30


def test_the_command_writes_its_files_and_keeps_them_unless_told(evaluation, capsys):
    meta = str(evaluation.parent / "meta.csv")
    assert subgroups.main([str(evaluation), "--metadata", meta, "--resamples", "20"]) == 0
    out = capsys.readouterr().out
    assert "| female | 24 | 11 / 12 | 54.2% | 0.833 (" in out and "| male | 6 | 3 / 3 | 50.0% |" in out
    assert "1 evaluated image(s) are not in the metadata" in out and "not a medical device" in out
    assert out == (evaluation / "subgroups.md").read_text(encoding="utf-8")
    saved = json.loads((evaluation / "subgroups.json").read_text())
    assert saved["subgroups"]["sex"]["male"]["malignant_auroc"] is None  # JSON's null, not NaN
    assert (evaluation / "subgroups.png").read_bytes()[:4] == b"\x89PNG"
    before = {name: (evaluation / name).read_bytes() for name in subgroups.OUTPUTS}
    assert subgroups.main([str(evaluation), "--metadata", meta]) == 2
    assert "already holds subgroups.md" in capsys.readouterr().err
    assert all((evaluation / name).read_bytes() == data for name, data in before.items())
    assert subgroups.main([str(evaluation), "--metadata", meta, "--resamples", "20", "--overwrite"]) == 0


@pytest.mark.parametrize(("meta", "message"), [
    ("image_id,colour\nI0,red\n", "none of the subgroup columns"),
    ("name,sex\nI0,male\n", "no image_id column"),
    ("image_id,sex\nX9,male\n", "lists none of the 31 images"),
])
def test_metadata_that_cannot_serve_is_a_one_line_error(evaluation, meta, message, capsys):
    path = evaluation.parent / "bad.csv"
    path.write_text(meta)
    assert subgroups.main([str(evaluation), "--metadata", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (evaluation / "subgroups.md").exists()


def test_without_metadata_the_evaluations_own_labels_are_read(evaluation, capsys):
    """A clinic's labels may carry age, sex and site beside dx: nothing else to give."""
    labels = evaluation.parent / "labels.csv"
    pd.read_csv(evaluation.parent / "meta.csv").assign(dx="benign").to_csv(labels, index=False)
    metrics = {"threshold": 0.5}
    (evaluation / "metrics.json").write_text(json.dumps(metrics))
    assert subgroups.main([str(evaluation)]) == 2  # an evaluation from before it named its labels
    assert "does not name the labels file it read; give --metadata" in capsys.readouterr().err
    (evaluation / "metrics.json").write_text(json.dumps({**metrics, "labels": str(labels)}))
    result = subgroups.subgroups(evaluation, resamples=20)
    assert result["metadata"] == str(labels) and result["subgroups"]["sex"]["male"]["images"] == 6
    pd.DataFrame({"image_id": ["I0"], "dx": ["benign"]}).to_csv(labels, index=False)  # labels alone
    assert subgroups.main([str(evaluation)]) == 2
    assert "none of the subgroup columns" in (err := capsys.readouterr().err) and "give a table that has them" in err
    labels.unlink()  # named as given to evaluate, from another folder
    assert subgroups.main([str(evaluation)]) == 2
    assert f"{labels}, the labels file {evaluation} read, is not found from here" in capsys.readouterr().err


def test_a_folder_that_is_no_evaluation_is_a_one_line_error(tmp_path, capsys):
    assert subgroups.main([str(tmp_path), "--metadata", str(tmp_path / "m.csv")]) == 2
    assert "is " + str(tmp_path) + " a screening.evaluate output folder" in capsys.readouterr().err


@pytest.mark.skipif(not HAM10000.is_file(), reason="needs ../shared/data/ham10000 (the HAM10000 metadata)")
def test_all_images_together_give_the_evaluations_own_figures():
    """The shipped model's validation evaluation: the subgroup command's row for all images
    is evaluate's, intervals included (the same resamples of the same lesions)."""
    result = subgroups.subgroups(VALIDATION, HAM10000)
    metrics = json.loads((VALIDATION / "metrics.json").read_text())
    for key in ("malignant_auroc", "sensitivity", "specificity"):
        assert result["overall"][key] == pytest.approx(metrics[key])
        assert result["overall"]["intervals"][key] == pytest.approx(metrics["intervals"][key])
    histo = result["subgroups"]["diagnosis confirmed by"]["histopathology"]
    assert histo["malignant_lesions"] == result["overall"]["malignant_lesions"]  # every malignant lesion was biopsied
