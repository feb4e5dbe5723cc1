import numpy as np

from screening.bundle import load_bundle
from screening.explain import GradCAM
from tests.conftest import lesion_like


def test_gradcam_is_normalised_and_follows_the_evidence(tiny_bundle):
    model, _ = load_bundle(tiny_bundle)
    cam = GradCAM(model)
    img = lesion_like(224, 224)
    m = cam.heatmap(img, 4)
    assert m.shape == (7, 7) and 0 <= m.min() and m.max() <= 1 + 1e-6
    out = cam.overlay(img, 4)
    assert out.size == (224, 224) and out.mode == "RGB"


def test_overlay_leaves_cold_regions_unchanged_and_colours_hot_ones(tiny_bundle, monkeypatch):
    model, _ = load_bundle(tiny_bundle)
    cam = GradCAM(model)
    img = lesion_like(224, 224, seed=3)
    heat = np.zeros((7, 7), np.float32)
    heat[3, 3] = 1.0
    monkeypatch.setattr(cam, "heatmap", lambda image, class_index: heat)
    out = np.asarray(cam.overlay(img, 4)).astype(int)
    assert np.array_equal(out[:40, :40], img[:40, :40])  # far from the hot cell: the image itself
    assert np.abs(out[112, 112] - img[112, 112]).sum() > 60  # the hot cell: visibly coloured


def test_gradcam_matches_class_activation_map_for_pooled_linear_head(tiny_bundle):
    """With global average pooling and a dense head, Grad-CAM equals CAM (Zhou et al.)."""
    import jax.numpy as jnp

    model, _ = load_bundle(tiny_bundle)
    cam = GradCAM(model)
    img = lesion_like(224, 224, seed=2)
    x = jnp.asarray(img[None], jnp.float32)
    for layer in cam.front:  # scaling
        x = layer(x)
    fmap = np.asarray(cam.features(x))[0]
    w = np.asarray(cam.logits.kernel.value)[:, 4]
    expected = np.maximum((fmap * w).sum(-1), 0)
    expected = expected / (expected.max() + 1e-8)
    np.testing.assert_allclose(cam.heatmap(img, 4), expected, atol=1e-4)
