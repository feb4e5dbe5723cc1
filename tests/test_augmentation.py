import numpy as np

from screening.augmentation import augmentation_grid, build_augmentation
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
