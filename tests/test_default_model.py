"""The packaged default model: what it promises (size, calibration, recorded figures) holds,
and on the shared data it still scores what its model card says."""

import json
import os
import shlex

import pytest

from screening import evaluate
from screening.bundle import read_meta
from screening.data import folder_order, parse_prefer
from screening.inference import DEFAULT_MODEL, Screener
from screening.train import command_for, parser, prepare_split
from tests.conftest import HAM, ROOT, needs_ham

CARD_FIGURES = ROOT / "docs" / "model" / "validation" / "metrics.json"
TEST_FIGURES = ROOT / "docs" / "model" / "test" / "metrics.json"
HEADLINE = ("balanced_accuracy", "malignant_auroc", "sensitivity", "specificity")


@pytest.fixture(scope="module")
def meta() -> dict:
    return read_meta(DEFAULT_MODEL)[1]


def test_bundle_is_small_calibrated_and_records_its_recipe(meta):
    size = sum(f.stat().st_size for f in DEFAULT_MODEL.iterdir())
    assert size <= 20 * 2**20, f"default model is {size / 2**20:.1f} MiB, over the 20 MB budget"
    assert meta["temperature"] > 0 and 0 < meta["threshold"] < 1
    assert meta["metrics"]["validation"]["sensitivity"] >= 0.90
    assert {"seed", "epochs", "unfreeze_blocks"} <= set(meta["training"]["recipe"])
    assert Screener().threshold == meta["threshold"]  # the referral flag uses the stored point
    test = json.loads(TEST_FIGURES.read_text())  # what the page says REFER does: the hold-out test split's figures
    assert Screener().held_out == {**meta["metrics"]["held_out"], "sensitivity": test["sensitivity"],
                                   "specificity": test["specificity"], "images": test["n"]}
    assert test["sha256"] == meta["sha256"] and test["threshold"] == meta["threshold"]


def test_the_app_says_what_its_threshold_did_on_held_out_images(meta):
    from screening.app import ScreeningApp
    from screening.inference import Result

    h = meta["metrics"]["held_out"]
    text = " ".join(ScreeningApp().assessment(Result("x", {"nv": 1.0}, malignancy_probability=0.01)).split())
    assert (f"referred {h['sensitivity']:.1%} of malignant and {1 - h['specificity']:.1%} of benign lesions among "
            f"{h['images']:,} HAM10000 images of its hold-out test split, used neither to train the model nor to "
            "choose the threshold") in text
    own = ScreeningApp(threshold=0.043).assessment(Result("x", {"nv": 1.0}, malignancy_probability=0.01))
    assert "threshold of 4.3%" in own and "This threshold referred" not in own  # measured for the model's own only


def test_model_card_figures_belong_to_the_shipped_model(meta):
    card = json.loads(CARD_FIGURES.read_text())
    assert card["sha256"] == meta["sha256"]
    assert card["threshold"] == pytest.approx(meta["threshold"])


def test_the_app_shows_every_plot_the_model_card_has(meta):
    """The app's Model tab shows the card's text and these plots, copied from docs/model/validation."""
    from screening.app import MODEL_PLOTS

    for name in MODEL_PLOTS:
        assert (DEFAULT_MODEL / name).read_bytes() == (CARD_FIGURES.parent / name).read_bytes(), name


def test_the_model_card_is_what_its_command_writes_and_ships_with_the_model():
    """Hand edits belong in build/default_model_notes.md, which the command folds in; an edit made
    to MODEL_CARD.md itself would be lost at the next re-ship. The packaged copy (the app's Model
    tab, the executable) is the same card."""
    from screening.model_card import main as card_main

    out = ROOT / f".model_card_check_{os.getpid()}.md"  # beside MODEL_CARD.md: its links are relative
    try:
        assert card_main(["--model", str(DEFAULT_MODEL), "--validation", str(CARD_FIGURES.parent),
                          "--test", str(CARD_FIGURES.parent.parent / "test"),
                          "--notes", str(ROOT / "build" / "default_model_notes.md"), "--out", str(out)]) == 0
        assert out.read_text() == (ROOT / "MODEL_CARD.md").read_text()
    finally:
        out.unlink(missing_ok=True)
    assert (DEFAULT_MODEL / "MODEL_CARD.md").read_text() == (ROOT / "MODEL_CARD.md").read_text()


@needs_ham
def test_validation_split_still_scores_the_model_card_figures(meta, tmp_path):
    """Re-derive the validation split by replaying the stored recipe through the training
    CLI's own split, and score it through the same path as the card: a change to
    preprocessing or inference that moves predictions fails here."""
    run = tmp_path / "run"
    argv = shlex.split(command_for(meta["training"]["recipe"], data=str(HAM), run=str(run)))[3:]
    prepare_split(parser().parse_args(argv))  # writes RUN/val_labels.csv
    prefer = parse_prefer(meta["training"]["recipe"].get("val_prefer") or "")
    folders = [HAM / f for f in folder_order(prefer)]  # read_metadata's order: the preferred copy first
    got = evaluate.evaluate(evaluate.parser().parse_args(["--labels", str(run / "val_labels.csv"), "--out",
                                                          str(tmp_path / "eval"), "--no-tta",
                                                          "--images", *map(str, folders)]))
    card = json.loads(CARD_FIGURES.read_text())
    assert got["n"] == card["n"]
    for key in HEADLINE:
        assert got[key] == pytest.approx(card[key], abs=0.002), key
