"""Recipes compared over the same folds: fold scores, pairing by fold, the t interval."""

import json

import pandas as pd
import pytest

from screening.cv import fold_score, main, t_interval


def fake_run(path, fold: int, balanced: list[float], auroc: list[float] | None = None):
    """A run folder with a history of validation figures, validating on fold ``fold`` of 3."""
    path.mkdir(parents=True)
    history = {"epoch": range(len(balanced)), "val_balanced_accuracy": balanced, "val_loss": [1.0] * len(balanced)}
    if auroc is not None:
        history["val_malignant_auroc"] = auroc
    pd.DataFrame(history).to_csv(path / "history.csv", index=False)
    ids = [f"I{i}" for i in range(9)]
    pd.DataFrame({"image_id": ids, "split": ["val" if i % 3 == fold else "train" for i in range(9)]}).to_csv(
        path / "split.csv", index=False)
    (path / "bundle").mkdir()
    (path / "bundle" / "bundle.json").write_text("{}")  # finished
    return path


def test_a_fold_scores_the_mean_of_its_last_epochs(tmp_path):
    run = fake_run(tmp_path / "r", 0, [0.1, 0.9, 0.5, 0.6, 0.7])  # one lucky epoch (0.9) does not count
    score = fold_score(run, 3)
    assert score["val_balanced_accuracy"] == pytest.approx(0.6) and score["val"] == {"I0", "I3", "I6"}


def test_t_interval_matches_a_hand_worked_case():
    # mean 0.02, sd 0.01, 3 folds: t(0.975, 2 df) = 4.3027 in the published table; Nadeau and Bengio's
    # variance factor 1/3 + 1/2 for 3-fold, so the half width is 4.3027 * 0.01 * sqrt(5/6) = 0.039278
    lo, hi = t_interval([0.01, 0.03, 0.02])
    assert lo == pytest.approx(0.02 - 0.039278, abs=2e-6) and hi == pytest.approx(0.02 + 0.039278, abs=2e-6)


def test_recipes_are_paired_by_fold_and_a_lever_kept_only_where_the_interval_says(tmp_path, capsys):
    a = [fake_run(tmp_path / f"a{k}", k, [0.5, 0.60 + 0.05 * k, 0.60 + 0.05 * k], [0.9, 0.90, 0.90]) for k in range(3)]
    # B given in another order: each fold is better by 0.02-0.04, the folds themselves differ by 0.05
    b = [fake_run(tmp_path / f"b{k}", k, [0.5, 0.63 + 0.05 * k + 0.01 * (k % 2), 0.63 + 0.05 * k + 0.01 * (k % 2)],
                  [0.9, 0.89 + 0.01 * k, 0.89 + 0.01 * k]) for k in (2, 0, 1)]
    assert main([*map(str, a), "--against", *map(str, b), "--last", "2", "--json", str(tmp_path / "cv.json")]) == 0
    result = json.loads((tmp_path / "cv.json").read_text())
    ba = result["figures"]["val_balanced_accuracy"]
    assert ba["difference"] == pytest.approx((0.03 + 0.04 + 0.03) / 3)
    assert ba["interval"][0] > 0 and ba["verdict"] == "B helps"  # the folds' own spread cancels in the pairs
    assert result["figures"]["val_malignant_auroc"]["verdict"] == "no difference shown"
    out = capsys.readouterr().out
    assert "3 paired folds" in out and "| val_balanced_accuracy | 0.6500 | 0.6833 | +0.0333 |" in out


def test_runs_on_other_folds_are_refused_in_one_line(tmp_path, capsys):
    a = [fake_run(tmp_path / f"a{k}", k, [0.5, 0.6]) for k in range(2)]
    b = [fake_run(tmp_path / "b2", 2, [0.5, 0.6])]
    assert main([*map(str, a), "--against", *map(str, b), "--last", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "validates on images no run of recipe A does" in err
    assert main([str(tmp_path / "nowhere")]) == 2 and "history.csv not found" in capsys.readouterr().err
    assert main([*map(str, a), "--against", str(a[0]), str(a[0]), "--last", "1"]) == 2
    assert "two of recipe B's runs validate on the same images" in capsys.readouterr().err
    (a[1] / "bundle" / "bundle.json").unlink()
    assert main([*map(str, a), "--last", "1"]) == 2 and "has not finished" in capsys.readouterr().err


def test_one_recipe_alone_gives_its_mean_and_spread(tmp_path, capsys):
    runs = [fake_run(tmp_path / f"a{k}", k, [0.5, v]) for k, v in enumerate([0.70, 0.74, 0.72])]
    assert main([*map(str, runs), "--last", "1"]) == 0
    assert "| val_balanced_accuracy | 0.7200 | 0.0200 |" in capsys.readouterr().out
