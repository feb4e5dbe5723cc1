import json
import shutil

import numpy as np
import pytest

from screening.bundle import BundleError, decision_digest, load_bundle, read_meta, save_bundle
from screening.inference import batched_logits, forward_fn
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


@pytest.mark.parametrize("field, value", [("threshold", 0.05), ("temperature", 2.0), ("malignancy_scaling", [1.0, 1.0])])
def test_calibration_edited_by_hand_is_refused(tiny_bundle, tmp_path, field, value):
    """The operating point decides referrals: a bundle.json edited after saving is refused,
    while one from before decision_sha256 existed still loads."""
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    (copy / "bundle.json").write_text(json.dumps({**meta, field: value}))
    with pytest.raises(BundleError, match="differs from what the bundle was saved with"):
        load_bundle(copy)
    del meta["decision_sha256"]
    (copy / "bundle.json").write_text(json.dumps({**meta, field: value}))
    assert load_bundle(copy)[1][field] == value


def test_newer_format_is_refused_and_format_1_still_loads(tiny_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    assert meta["format_version"] == 2
    for version, loads in ((3, False), (1, True)):
        (copy / "bundle.json").write_text(json.dumps({**meta, "format_version": version}))
        if loads:
            assert load_bundle(copy)[1]["format_version"] == 1
        else:
            with pytest.raises(BundleError, match="bundle format 3 is newer than this software"):
                load_bundle(copy)


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
