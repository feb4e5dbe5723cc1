import hashlib
import json
import shutil
import zipfile

import numpy as np
import pytest

from screening.bundle import (
    DECISION_FIELDS,
    BundleError,
    decision_digest,
    load_bundle,
    read_meta,
    save_bundle,
    update_meta,
)
from screening.inference import batched_logits, forward_fn
from screening.model import build_model, inference_graph
from tests.conftest import lesion_like


def test_round_trip_keeps_predictions_and_meta(tiny_bundle, tmp_path):
    model, meta = load_bundle(tiny_bundle)
    assert meta["name"] == "tiny-test-model" and meta["threshold"] == 0.3
    assert meta["classes"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert meta["input_size"] == 224 and len(meta["sha256"]) == 64
    x = np.stack([lesion_like(224, 224, seed=i) for i in range(2)])
    again = save_bundle(model, tmp_path / "copy", meta)
    model2, _ = load_bundle(again)
    a, b = (batched_logits(forward_fn(m), x, 2) for m in (model, model2))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_changed_model_file_is_refused(tiny_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    with open(copy / "model.keras", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(BundleError, match="does not match the bundle"):
        load_bundle(copy)


@pytest.mark.parametrize("field, value", [("threshold", 0.05), ("temperature", 2.0), ("malignancy_scaling", [1.0, 1.0]),
                                          ("tta", True), ("malignant", ["mel"]), ("quality", {"brightness": [0, 1]})])
def test_a_field_that_decides_a_result_edited_by_hand_is_refused(tiny_bundle, tmp_path, field, value):
    """The operating point, TTA and the rest decide results: a bundle.json edited after saving
    is refused, and so is one whose check is gone (it could not tell the edit)."""
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    assert meta.get(field) != value
    (copy / "bundle.json").write_text(json.dumps({**meta, field: value}))
    with pytest.raises(BundleError, match="differs from what the bundle was saved with"):
        load_bundle(copy)
    del meta["decision_sha256"]
    (copy / "bundle.json").write_text(json.dumps({**meta, field: value}))
    with pytest.raises(BundleError, match="has no check of its calibration"):
        load_bundle(copy)


def test_a_bundle_of_format_2_is_checked_over_the_fields_it_covered(tiny_bundle, tmp_path):
    """A model a user trained before format 3 still loads; its check covers the weights and the
    calibration, as when it was saved."""
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    meta = {**json.loads((copy / "bundle.json").read_text()), "format_version": 2}
    meta["decision_sha256"] = hashlib.sha256(json.dumps({k: meta.get(k) for k in DECISION_FIELDS[:4]},
                                                        sort_keys=True).encode()).hexdigest()
    (copy / "bundle.json").write_text(json.dumps(meta))
    assert load_bundle(copy)[1]["format_version"] == 2
    (copy / "bundle.json").write_text(json.dumps({**meta, "threshold": 0.9}))
    with pytest.raises(BundleError, match="differs from what the bundle was saved with"):
        load_bundle(copy)


def test_newer_format_is_refused(tiny_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    assert meta["format_version"] == 3
    (copy / "bundle.json").write_text(json.dumps({**meta, "format_version": 4}))
    with pytest.raises(BundleError, match="bundle format 4 is newer than this software"):
        load_bundle(copy)


def test_update_meta_seals_the_change_and_refuses_a_changed_model(tiny_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    update_meta(copy, tta=True, name="renamed")
    meta = load_bundle(copy)[1]
    assert meta["tta"] is True and meta["name"] == "renamed"
    with open(copy / "model.keras", "ab") as f:
        f.write(b"x")
    with pytest.raises(BundleError, match="model file does not match"):
        update_meta(copy, tta=False)
    assert json.loads((copy / "bundle.json").read_text())["tta"] is True


def test_the_saved_model_holds_no_training_augmentation(tmp_path):
    """Loading a bundle needs no augmentation code: the inference graph is saved, with the same
    logits as the training model at inference."""
    model = build_model(None, alpha=0.25, seed=0)
    path = save_bundle(inference_graph(model), tmp_path / "b", {})
    config = json.loads(zipfile.ZipFile(path / "model.keras").read("config.json"))
    assert "augmentation" not in json.dumps(config) and "RandomFlip" not in json.dumps(config)
    x = np.stack([lesion_like(224, 224, seed=i) for i in range(2)]).astype("float32")
    np.testing.assert_allclose(np.asarray(load_bundle(path)[0](x)), np.asarray(model(x, training=False)), atol=1e-5)


def test_foreign_and_missing_files_are_refused(tiny_bundle, tmp_path):
    with pytest.raises(BundleError, match="model not found"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="not a SkinScreen model bundle"):
        load_bundle(tmp_path / "empty")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "bundle.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BundleError, match="not a SkinScreen model bundle"):
        load_bundle(foreign)
    bad = tmp_path / "badjson"
    bad.mkdir()
    (bad / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="unreadable"):
        read_meta(bad)


def test_non_keras_file_with_matching_hash_is_refused(tiny_bundle, tmp_path):
    from screening.bundle import sha256_of

    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    (copy / "model.keras").write_bytes(b"PK not really a zip")
    meta = json.loads((copy / "bundle.json").read_text())
    meta["sha256"] = sha256_of(copy / "model.keras")
    meta["decision_sha256"] = decision_digest(meta)
    (copy / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="not a loadable Keras model"):
        load_bundle(copy)


def test_save_never_overwrites_unless_asked(tiny_bundle):
    model, meta = load_bundle(tiny_bundle)
    with pytest.raises(FileExistsError):
        save_bundle(model, tiny_bundle, meta)


def test_loading_draws_no_random_weights_and_gets_the_files_own(tiny_bundle, monkeypatch):
    """Drawing initial weights the file replaces compiled a program per weight shape: most of a
    first start's model load."""
    import keras

    reference = keras.saving.load_model(tiny_bundle / "model.keras", compile=False)

    def drawn(self, *args, **kwargs):
        raise AssertionError("a random initialiser ran")

    for name in ("GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "RandomNormal", "RandomUniform",
                 "TruncatedNormal", "VarianceScaling", "Orthogonal"):
        monkeypatch.setattr(getattr(keras.initializers, name), "__call__", drawn)
    model, _ = load_bundle(tiny_bundle)
    assert [w.path for w in model.weights] == [w.path for w in reference.weights]
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reference.get_weights(), strict=True))
