import json
import re

import pandas as pd
import pytest
from PIL import Image

from screening.evaluate import OUTPUTS, main
from screening.metrics import wilson_interval
from tests.conftest import Terminal, labelled, lesion_like


def test_evaluate_writes_report_and_plots(tiny_bundle, tmp_path):
    dx = ["mel", "nv", "bcc", "nv", "bkl", "akiec"]
    images = labelled(tmp_path, dx, "IMG_", ".jpg")
    out = tmp_path / "eval"
    assert main(["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv"),
                 "--out", str(out)]) == 0
    for name in ("metrics.json", "report.md", "confusion_matrix.png", "roc.png", "reliability.png"):
        assert (out / name).stat().st_size > 0, name
    # OUTPUTS, the names an earlier evaluation is known by (not replaced unasked), are all it writes
    assert {p.name for p in out.iterdir()} == set(OUTPUTS) - {"malignancy.png"}
    report = (out / "report.md").read_text()
    assert "balanced accuracy" in report and "not a medical device" in report
    assert "bootstrap, 1000 resamples of images" in report
    m = json.loads((out / "metrics.json").read_text())
    lo, hi = m["intervals"]["balanced_accuracy"]
    assert lo <= m["balanced_accuracy"] <= hi and f"{m['balanced_accuracy']:.3f} ({lo:.3f}-{hi:.3f})" in report
    points = m["operating_points"]
    assert [p["target"] for p in points] == [0.80, 0.85, 0.90, 0.95, 0.98]
    assert all(p["sensitivity"] >= p["target"] for p in points)
    assert [p["threshold"] for p in points] == sorted((p["threshold"] for p in points), reverse=True)
    assert f"| 0.90 | {points[2]['threshold']:.3f} |" in report
    argv = ["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv"), "--out", str(out)]
    (out / "metrics.json").write_text("{}")  # stands for an earlier evaluation
    assert main(argv) == 2 and (out / "metrics.json").read_text() == "{}"  # not replaced without asking
    assert main([*argv, "--overwrite"]) == 0 and json.loads((out / "metrics.json").read_text())["n"] == len(dx)


def test_labels_of_malignant_or_benign_give_the_malignancy_figures_of_the_diagnoses_they_stand_for(
        tiny_bundle, tmp_path, capsys):
    """A clinic's biopsy results say malignant or benign, not which of the seven diagnoses: the
    figures those labels can give are the same as the diagnoses' would be."""
    dx = ["mel", "nv", "bcc", "nv", "bkl", "akiec", "df", "vasc"]
    images = labelled(tmp_path, dx)
    outcome = tmp_path / "outcome.csv"
    pd.DataFrame({"image_id": [f"I{i}" for i in range(len(dx))],  # a diagnosis code may stand beside them
                  "dx": ["malignant" if d in ("mel", "bcc", "akiec") else "benign" for d in dx[:-1]] + ["vasc"]}
                 ).to_csv(outcome, index=False)
    runs = {}
    for name, labels in (("diagnoses", tmp_path / "l.csv"), ("outcome", outcome)):
        assert main(["--model", str(tiny_bundle), "--images", str(images), "--labels", str(labels),
                     "--out", str(tmp_path / name)]) == 0
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    diagnoses, m = runs["diagnoses"], runs["outcome"]
    for key in ("malignant_auroc", "sensitivity", "specificity", "malignancy_ece", "operating_points"):
        assert m[key] == diagnoses[key], key
    assert m["intervals"]["malignant_auroc"] == diagnoses["intervals"]["malignant_auroc"]
    # a dozen malignant lesions, all referred, would get (1.000-1.000) from a bootstrap
    assert m["intervals"]["sensitivity"] == wilson_interval(m["sensitivity"] * 3, 3)
    assert m["intervals"]["specificity"] == wilson_interval(m["specificity"] * 5, 5)
    assert m["n"] == len(dx) and m["malignant"] == 3 and "balanced_accuracy" not in m
    printed = capsys.readouterr().out.splitlines()[-1]
    assert printed.startswith(f"{len(dx)} images: malignant AUROC") and "balanced accuracy" not in printed
    out = tmp_path / "outcome"
    assert sorted(p.name for p in out.iterdir()) == ["malignancy.png", "metrics.json", "predictions.csv", "report.md"]
    assert {p.name for p in out.iterdir()} <= set(OUTPUTS)
    report = (out / "report.md").read_text()
    assert "8 images labelled malignant or benign (3 malignant)" in report and "not a medical device" in report
    assert f"| 0.90 | {m['operating_points'][2]['threshold']:.3f} |" in report and "confusion" not in report.lower()


def test_a_clinics_dicom_export_is_evaluated_by_the_paths_of_its_files(tiny_bundle, tmp_path, capsys):
    """A PACS export names its files without a suffix (DICOM/PAT1/IM0001)."""
    from tests.dicom_files import write_dicom

    (tmp_path / "export" / "DICOM" / "PAT1").mkdir(parents=True)
    write_dicom(tmp_path / "export" / "DICOM" / "PAT1" / "IM0001", lesion_like(seed=1))
    Image.fromarray(lesion_like(seed=2)).save(tmp_path / "export" / "photo.jpg")
    (tmp_path / "l.csv").write_text("image_id,dx\nDICOM/PAT1/IM0001,malignant\nphoto.jpg,benign\n")
    assert main(["--model", str(tiny_bundle), "--images", str(tmp_path / "export"), "--labels",
                 str(tmp_path / "l.csv"), "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.startswith("2 images: malignant AUROC")


def test_the_threshold_a_clinic_uses_is_checked_on_its_images(tiny_bundle, tmp_path, capsys):
    images = labelled(tmp_path, ["malignant", "benign", "benign"])
    argv = ["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv")]
    assert main([*argv, "--out", str(tmp_path / "o"), "--threshold", "0"]) == 0  # everything referred
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert (m["threshold"], m["sensitivity"], m["specificity"]) == (0.0, 1.0, 0.0)
    assert main([*argv, "--out", str(tmp_path / "p"), "--threshold", "12"]) == 2  # 12% meant
    assert "--threshold must be between 0 and 1, got 12.0" in capsys.readouterr().err and not (tmp_path / "p").exists()


def test_a_figure_without_cases_to_measure_it_on_is_said_so(tiny_bundle, tmp_path, capsys):
    images = labelled(tmp_path, ["benign", "benign"])  # no malignant image: no sensitivity, no AUROC
    assert main(["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv"),
                 "--out", str(tmp_path / "o")]) == 0
    assert "malignant AUROC n/a, sensitivity n/a / specificity" in capsys.readouterr().out
    report = (tmp_path / "o" / "report.md").read_text()
    assert "| malignant-vs-benign AUROC | n/a |" in report and not re.search(r"\bnan\b", report, re.IGNORECASE)


def test_evaluate_resamples_lesions_when_the_labels_name_them(tiny_bundle, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        Image.fromarray(lesion_like(seed=i)).save(images / f"I{i}.png")
    pd.DataFrame({"image_id": [f"I{i}" for i in range(4)], "dx": ["mel", "mel", "nv", "nv"],
                  "lesion_id": ["L1", "L1", "L2", "L3"]}).to_csv(tmp_path / "l.csv", index=False)
    assert main(["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv"),
                 "--out", str(tmp_path / "eval")]) == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert "1000 resamples of lesions" in m["interval_method"] and "benign lesions" in m["interval_method"]
    assert m["intervals"]["recall_mel"] == wilson_interval(m["per_class"]["mel"]["recall"] * 1, 1)  # L1: one lesion
    assert m["intervals"]["recall_nv"] == wilson_interval(m["per_class"]["nv"]["recall"] * 2, 2)
    # sensitivity and specificity as recalls of the malignant and the benign lesions, not a
    # bootstrap that says (1.000-1.000) when two images of one melanoma are both referred
    assert m["intervals"]["sensitivity"] == wilson_interval(m["sensitivity"] * 1, 1)
    assert m["intervals"]["specificity"] == wilson_interval(m["specificity"] * 2, 2)


def test_a_blank_lesion_id_is_a_lesion_of_its_own_and_compare_and_subgroups_read_it(tiny_bundle, tmp_path):
    """ISIC Archive exports leave many lesion ids blank: the intervals crashed on them."""
    from screening import compare

    images = tmp_path / "images"
    images.mkdir()
    for i in range(5):
        Image.fromarray(lesion_like(seed=i)).save(images / f"I{i}.png")
    pd.DataFrame({"image_id": [f"I{i}" for i in range(5)], "dx": ["mel", "mel", "nv", "nv", "bcc"],
                  "lesion_id": ["L1", "L1", "", " ", None]}).to_csv(tmp_path / "l.csv", index=False)
    for out in ("a", "b"):
        assert main(["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv"),
                     "--out", str(tmp_path / out)]) == 0
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m["intervals"]["recall_nv"] == wilson_interval(m["per_class"]["nv"]["recall"] * 2, 2)  # two lesions
    assert m["intervals"]["sensitivity"] == wilson_interval(m["sensitivity"] * 2, 2)  # L1 and I4's own
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0


def test_images_the_model_trained_on_are_named(tiny_bundle, tmp_path, capsys):
    """Scores on the training images overstate a model: evaluate says so, before the scoring."""
    import shutil

    from screening.bundle import update_meta

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    meta = json.loads((bundle / "bundle.json").read_text())
    update_meta(bundle, training={**meta["training"], "train_image_ids": ["I1", "I3", "ISIC_0000000"]})
    images = labelled(tmp_path, ["mel", "nv", "bcc", "nv"])
    pd.DataFrame({"image_id": ["I0", "I1.png", "I2", "I3"], "dx": ["mel", "nv", "bcc", "nv"]}).to_csv(
        tmp_path / "l.csv", index=False)
    assert main(["--model", str(bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv"),
                 "--out", str(tmp_path / "e")]) == 0
    err = capsys.readouterr().err
    assert "warning: the model was trained on 2 of these 4 images (I1.png, I3): its figures on them overstate" in err
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["trained_on"] == ["I1.png", "I3"]
    assert "**The model was trained on 2 of these images** (I1.png, I3)" in (tmp_path / "e" / "report.md").read_text()
    assert main(["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv"),
                 "--out", str(tmp_path / "f")]) == 0
    assert "trained on" not in capsys.readouterr().err  # a bundle that lists none


def test_a_terminal_sees_the_scoring_progress(tiny_bundle, tmp_path, monkeypatch):
    """An external test set of large images scores for many minutes: not in silence."""
    import functools

    import screening.evaluate
    from screening.progress import Progress

    terminal = Terminal()
    monkeypatch.setattr(screening.evaluate, "Progress", functools.partial(Progress, stream=terminal))
    images = labelled(tmp_path, ["nv", "mel", "bcc"])
    assert main(["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv"),
                 "--out", str(tmp_path / "o")]) == 0
    assert "scoring [" in terminal.getvalue() and " 3/3 " in terminal.getvalue()


def test_a_class_without_images_is_not_measured_as_missed(tiny_bundle, tmp_path, capsys):
    images = labelled(tmp_path, ["nv", "nv", "bcc"])  # no melanoma in this clinic's check
    assert main(["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv"),
                 "--out", str(tmp_path / "o")]) == 0
    report = (tmp_path / "o" / "report.md").read_text()
    m = json.loads((tmp_path / "o" / "metrics.json").read_text(), parse_constant=pytest.fail)  # strict: null, not NaN
    never = [c for c, v in m["per_class"].items() if not v["support"] and v["precision"] is None]  # nor predicted
    assert never and all(m["per_class"][c] == {"precision": None, "recall": None, "f1": None, "support": 0}
                         for c in never)
    assert all(f"| {c} | n/a | n/a | n/a | 0 |" in report for c in never)
    assert re.search(r"\| mel \| (n/a|0\.000) \| n/a \|", report)
    assert not re.search(r"\bnan\b", report, re.IGNORECASE)


@pytest.mark.parametrize("problem", ["labels", "model", "image", "not a csv", "out is a file", "none readable",
                                     "none of two readable", "out holds an evaluation", "out holds a report",
                                     "out is the images"])
def test_errors_are_one_line(tiny_bundle, tmp_path, capsys, problem):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(lesion_like()).save(images / "A.jpg")
    labels = tmp_path / "l.csv"
    labels.write_text("image_id,dx\nA,nv\n" + ("B,mel\n" if problem in ("image", "none of two readable") else "")
                      + ("# a README\n\ntext, with, more, commas\n" if problem == "not a csv" else ""))
    argv = ["--model", str(tiny_bundle if problem != "model" else tmp_path), "--images", str(images),
            "--labels", str(labels if problem != "labels" else tmp_path / "none.csv"), "--out", str(tmp_path / "o")]
    if problem == "out is a file":  # was "[Errno 17] File exists", after the scoring
        (tmp_path / "o").write_text("kept")
    if problem.startswith("none"):
        (images / "A.jpg").write_bytes(b"not an image")
        if problem == "none of two readable":
            (images / "B.jpg").write_bytes(b"nor this")
    if problem.startswith("out holds"):  # the hold-out split's, scored once; a user's own notes
        (tmp_path / "o").mkdir()
        (tmp_path / "o" / ("metrics.json" if problem.endswith("evaluation") else "report.md")).write_text("kept")
    if problem == "out is the images":  # its plots would be scored as images by the next batch run
        argv[-1] = str(images / ".")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(argv) == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, nothing replaced
    assert all(p.read_text() == "kept" for p in (tmp_path / "o").rglob("*"))
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert {"labels": "labels file not found", "model": "not a SkinScreen model bundle",
            "image": "image B is listed but has no file", "not a csv": "not a readable CSV",
            "out is a file": f"--out {tmp_path / 'o'} is a file; give a folder",
            "none readable": "the labelled image could not be read (A: not a readable image",
            "none of two readable": "none of the 2 labelled images could be read (A: not a readable image",
            "out holds an evaluation": "already holds an evaluation; use --overwrite or another --out",
            "out holds a report": "already holds files of an evaluation's names (report.md); use --overwrite",
            "out is the images": "is a folder of the images; give the evaluation a folder of its own"}[problem] in err


def test_an_unreadable_image_is_left_out_and_named_not_the_hours_of_scoring(tiny_bundle, tmp_path, capsys):
    images = labelled(tmp_path, ["nv", "mel", "bcc", "nv"])
    (images / "I2.png").write_bytes(b"a download cut short")
    assert main(["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv"),
                 "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 of 4 labelled images could not be read and are left out of the figures: I2: " in err
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["n"] == 3 and len(m["unreadable"]) == 1 and m["unreadable"][0].startswith("I2: ")
    assert m["per_class"]["bcc"]["support"] == 0  # the unreadable one was the bcc
    assert list(pd.read_csv(tmp_path / "o" / "predictions.csv")["image_id"]) == ["I0", "I1", "I3"]
    assert "**1 labelled image(s) could not be read and are left out:** I2: " in (tmp_path / "o" / "report.md").read_text()


def test_an_isic_ground_truth_file_gives_the_same_evaluation_as_image_id_dx(tiny_bundle, tmp_path):
    dx = ["mel", "nv", "bcc", "akiec"]
    images = labelled(tmp_path, dx, "ISIC_", ".jpg")
    one_hot = pd.DataFrame({"image": [f"ISIC_{i}" for i in range(len(dx))] + ["ISIC_9"]})
    for column, code in (("MEL", "mel"), ("NV", "nv"), ("BCC", "bcc"), ("AK", "akiec"), ("BKL", "bkl"),
                         ("DF", "df"), ("VASC", "vasc")):
        one_hot[column] = [1.0 * (d == code) for d in dx] + [0.0]
    one_hot["SCC"] = [0.0] * len(dx) + [1.0]  # an ISIC 2019 class the model does not know: left out
    one_hot.to_csv(tmp_path / "ISIC_2019_GroundTruth.csv", index=False)
    for labels, out in (("l.csv", "a"), ("ISIC_2019_GroundTruth.csv", "b")):
        assert main(["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / labels),
                     "--out", str(tmp_path / out)]) == 0
    assert (tmp_path / "a" / "predictions.csv").read_text() == (tmp_path / "b" / "predictions.csv").read_text()
