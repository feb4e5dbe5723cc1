"""The model card CLI: a draft from a bundle and its evaluations, with hand-written notes folded in."""

import json

import pandas as pd

from screening.evaluate import main as evaluate
from screening.model_card import main as card_main
from screening.subgroups import main as subgroups_main
from tests.conftest import labelled


def test_model_card_draft_uses_bundle_and_metrics(tiny_bundle, tmp_path):
    images = labelled(tmp_path, ["mel", "nv", "bcc", "nv"])
    assert evaluate(["--model", str(tiny_bundle), "--images", str(images), "--labels", str(tmp_path / "l.csv"),
                     "--out", str(tmp_path / "val")]) == 0
    out = tmp_path / "MODEL_CARD.md"
    json_meta = json.loads((tiny_bundle / "bundle.json").read_text())
    json_meta["training"] = {"recipe": {"seed": 0, "train_prefer": "images_200x150"}, "train_images": 1, "val_images": 4}
    (tiny_bundle.parent / "card_bundle").mkdir(exist_ok=True)
    (tiny_bundle.parent / "card_bundle" / "bundle.json").write_text(json.dumps(json_meta))
    (tmp_path / "notes.md").write_text("## Why this recipe\nHand-written.\n")
    assert card_main(["--model", str(tiny_bundle.parent / "card_bundle"), "--validation", str(tmp_path / "val"),
                      "--out", str(out), "--notes", str(tmp_path / "notes.md")]) == 0
    text = out.read_text()
    m = json.loads((tmp_path / "val" / "metrics.json").read_text())
    lo, hi = m["intervals"]["malignant_auroc"]
    assert f"| malignant-vs-benign AUROC | {m['malignant_auroc']:.3f} ({lo:.3f}-{hi:.3f}) |" in text
    assert "In brackets: 95% intervals; per-class recall, sensitivity and specificity: Wilson score interval with the class's, the malignant and the benign images" in text
    assert f"{m['balanced_accuracy']:.3f}" in text and "not a medical device" in text
    assert "CC BY-NC 4.0" in text and "(val/roc.png)" in text
    assert "batch norm frozen at its ImageNet statistics" in text  # a recipe from before --batch-norm
    assert "### Other operating points" in text and f"| 0.95 | {m['operating_points'][3]['threshold']:.3f} |" in text
    assert "Training uses the `images_200x150` copy" in text and "test use each image's best copy" in text
    assert text.index("## Calibration") < text.index("## Why this recipe\nHand-written.") < text.index("## Validation")
    assert "### By subgroup" not in text  # no subgroups.json in the evaluation
    pd.DataFrame({"image_id": ["I0", "I1", "I2", "I3"], "sex": ["male", "female", "male", "female"]}).to_csv(
        tmp_path / "meta.csv", index=False)
    assert subgroups_main([str(tmp_path / "val"), "--metadata", str(tmp_path / "meta.csv"), "--resamples", "10"]) == 0
    assert card_main(["--model", str(tiny_bundle.parent / "card_bundle"), "--validation", str(tmp_path / "val"),
                      "--out", str(out)]) == 0
    text = out.read_text()
    assert text.index("## Validation") < text.index("### By subgroup") < text.index("## Limitations")
    assert "| **sex** (`sex`) | | | | | | |" in text and "| male | 2 | 2 / 0 | 100.0% | 1.000 (" in text
    assert "(val/subgroups.png)" in text
