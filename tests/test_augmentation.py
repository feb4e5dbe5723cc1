import keras
import numpy as np

from screening.augmentation import affine_bilinear, augmentation_grid, build_augmentation
from tests.conftest import lesion_like


def test_identity_at_inference_random_in_training():
    aug = build_augmentation(seed=0)
    x = np.stack([lesion_like(224, 224, seed=i) for i in range(2)]).astype("float32") / 127.5 - 1
    np.testing.assert_array_equal(np.asarray(aug(x, training=False)), x)
    y = np.asarray(aug(x, training=True))
    assert y.shape == x.shape and not np.allclose(y, x)
    assert -1.5 < y.min() and y.max() < 1.5  # stays in the scaled range (plus a little noise)


def test_grid_has_original_plus_copies():
    grid = augmentation_grid(np.stack([lesion_like(224, 224, seed=i) for i in range(2)]), copies=3)
    assert grid.size == (4 * 224, 2 * 224)


def test_affine_bilinear_matches_keras_affine_transform():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (4, 20, 16, 3)).astype("float32")
    angle, scale = rng.uniform(-np.pi, np.pi, 4), 1 + rng.uniform(-0.3, 0.3, 4)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    cx, cy = 7.5, 9.5
    t = np.stack([cos, -sin, cx - cos * cx + sin * cy + 0.3, sin, cos, cy - sin * cx - cos * cy], 1)
    t = t.astype("float32")
    ours = np.asarray(affine_bilinear(x, t))
    stock = keras.ops.convert_to_numpy(keras.ops.image.affine_transform(
        x, np.pad(t, ((0, 0), (0, 2))), interpolation="bilinear", fill_mode="reflect"))
    np.testing.assert_allclose(ours, stock, atol=1e-5)
