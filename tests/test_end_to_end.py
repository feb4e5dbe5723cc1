"""On the real shared data: train briefly, evaluate, reload, predict; resume a run."""

import json

import numpy as np
import pandas as pd
import pytest

from screening import evaluate, train
from screening.inference import Screener
from tests.conftest import HAM, WEIGHTS, needs_ham, needs_weights

pytestmark = [needs_ham, needs_weights]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One head epoch and one fine-tuning epoch on 48 training images."""
    folder = tmp_path_factory.mktemp("run") / "r"
    code = train.main([str(HAM), "--run", str(folder), "--weights", str(WEIGHTS), "--limit", "48",
                       "--val-limit", "32", "--head-epochs", "1", "--epochs", "1", "--batch-size", "16",
                       "--unfreeze-blocks", "2", "--verbose", "0"])
    assert code == 0
    return folder


def test_run_folder_has_history_checkpoint_and_split(run):
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1] and "val_balanced_accuracy" in history
    split = pd.read_csv(run / "split.csv")
    assert (split.groupby("lesion_id")["split"].nunique() == 1).all()
    assert split[split["split"] == "val"]["path"].str.contains("images_224").mean() > 0.5
    assert (run / "checkpoint.keras").is_file() and json.loads((run / "state.json").read_text())["epoch"] == 2


def test_bundle_is_calibrated_and_predicts(run):
    screener = Screener(run / "bundle")
    meta = screener.meta
    assert meta["temperature"] > 0 and 0 <= meta["threshold"] <= 1
    assert meta["metrics"]["validation"]["sensitivity"] >= 0.9
    test = pd.read_csv(run / "split.csv").query("split == 'test'").head(5)
    results = list(screener.score(test["path"]))
    assert all(r.ok for r in results)
    assert all(abs(sum(r.probabilities.values()) - 1) < 1e-5 for r in results)


def test_evaluate_scores_the_bundle(run, tmp_path):
    labels = tmp_path / "labels.csv"
    pd.read_csv(run / "test_labels.csv").groupby("dx").head(3).to_csv(labels, index=False)
    assert evaluate.main(["--model", str(run / "bundle"), "--images", str(HAM / "images_224"),
                          str(HAM / "images_200x150"), "--labels", str(labels), "--out", str(tmp_path / "e")]) == 0
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["n"] == 21 and 0 <= m["balanced_accuracy"] <= 1 and not np.isnan(m["malignant_auroc"])


def test_resume_continues_from_the_checkpoint(run):
    code = train.main([str(HAM), "--run", str(run), "--resume", "--head-epochs", "1", "--epochs", "2",
                       "--unfreeze-blocks", "2", "--batch-size", "16", "--verbose", "0"])
    assert code == 0
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1, 2]  # only the new epoch ran
    assert json.loads((run / "state.json").read_text())["epoch"] == 3


def test_calibrate_only_rewrites_the_bundle_without_training(run, tmp_path):
    """A run brought back from another machine (its kept model, the last epoch's, with its state,
    split and history) is calibrated without training: no epoch runs."""
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    for name in ("checkpoint.keras", "state.json", "split.csv", "history.csv"):
        (stopped / name).write_bytes((run / name).read_bytes())
    code = train.main([str(HAM), "--run", str(stopped), "--calibrate-only", "--val-limit", "32", "--batch-size", "16",
                       "--verbose", "0"])
    assert code == 0
    assert (stopped / "history.csv").read_text() == (run / "history.csv").read_text()
    meta = Screener(stopped / "bundle").meta
    assert meta["metrics"]["validation"]["sensitivity"] >= 0.9 and len(meta["malignancy_scaling"]) == 2
    assert "calibrate_only" not in meta["training"]["recipe"]
    assert train.main([str(HAM), "--run", str(stopped), "--calibrate-only", "--keep", "best"]) == 2  # not its --keep
