"""Shades-of-Gray colour constancy: hand-worked cases, and the model that carries it."""

import numpy as np
import pytest

from screening.colour import ShadesOfGray
from tests.conftest import lesion_like


def test_a_uniform_colour_becomes_grey_at_its_length_over_root_three():
    """Hand-worked: every pixel (r, g, b) gives the illuminant (r, g, b) itself, so each channel
    becomes |(r, g, b)| / sqrt(3)."""
    x = np.zeros((1, 4, 4, 3), "float32") + np.array([200.0, 100.0, 50.0], "float32")
    y = np.asarray(ShadesOfGray()(x))
    np.testing.assert_allclose(y, np.full_like(x, np.sqrt(200**2 + 100**2 + 50**2) / np.sqrt(3)), rtol=1e-5)


def test_a_colour_cast_is_removed_and_a_grey_lit_image_kept():
    """Hand-worked: a grey scene g under a light of colour c becomes g |c| / sqrt(3), grey again
    (the light's colour is removed, its strength kept); the grey-lit scene is unchanged (its
    illuminant is grey). Each image is corrected on its own."""
    rng = np.random.default_rng(0)
    scene = rng.uniform(20, 120, (1, 16, 16, 3)).astype("float32")
    grey = scene.mean(axis=-1, keepdims=True) * np.ones(3, "float32")  # a grey-world scene under grey light
    warm = grey * np.array([1.5, 1.0, 0.6], "float32")
    y = np.asarray(ShadesOfGray()(np.concatenate([grey, warm])))
    np.testing.assert_allclose(y[0], grey[0], rtol=1e-4)
    np.testing.assert_allclose(y[1], grey[0] * np.linalg.norm([1.5, 1.0, 0.6]) / np.sqrt(3), rtol=1e-4)


def test_the_norm_matches_numpy_on_a_lesion_and_stays_in_range():
    x = lesion_like(64, 64, seed=2)[None].astype("float32")
    e = np.mean((x / 255.0) ** 6, axis=(1, 2)) ** (1 / 6)
    e = e / np.linalg.norm(e)
    expected = np.clip(x / 255.0 / (np.sqrt(3) * e[:, None, None, :]), 0, 1) * 255
    y = np.asarray(ShadesOfGray()(x))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-3)
    assert y.min() >= 0 and y.max() <= 255


def test_the_model_carries_it_through_resizing_saving_and_grad_cam(tmp_path):
    from screening.bundle import load_bundle, save_bundle
    from screening.explain import GradCAM
    from screening.model import build_model, inference_graph, resized

    model = resized(build_model(None, alpha=0.25, seed=0, size=96, colour_constancy=True), 224, alpha=0.25)
    assert model.layers[1].name == "colour_constancy"
    path = save_bundle(inference_graph(model), tmp_path / "b", {})
    loaded, _ = load_bundle(path)
    x = lesion_like(224, 224, seed=1)[None].astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x, training=False)), atol=1e-5)
    assert isinstance(loaded.layers[1], ShadesOfGray)  # saved and loaded with the model
    cam = GradCAM(loaded).heatmap(x[0].astype(np.uint8), 0)
    plain = GradCAM(inference_graph(build_model(None, alpha=0.25, seed=0))).heatmap(x[0].astype(np.uint8), 0)
    assert cam.shape == plain.shape == (7, 7) and 0 <= cam.min() and cam.max() <= 1 + 1e-6


@pytest.mark.parametrize("power", [1.0, 6.0])
def test_power_is_saved_with_the_layer(power):
    layer = ShadesOfGray(power=power)
    assert ShadesOfGray.from_config(layer.get_config()).power == power
