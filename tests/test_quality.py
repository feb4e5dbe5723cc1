"""Image checks: too small, blurry, unlike the training images."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from screening import quality
from screening.data import read_metadata
from screening.preprocessing import preprocess
from tests.conftest import HAM, lesion_like, needs_ham


def _blur(image: np.ndarray, radius: float = 4) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


@pytest.fixture(scope="module")
def lesions() -> np.ndarray:
    return np.stack([lesion_like(224, 224, seed) for seed in range(40)])


def test_reference_from_sharp_images_flags_blur_but_not_them(lesions):
    ref = quality.reference(lesions[:30])
    sharp = quality.check(lesions[30:], [(224, 224)] * 10, ref)
    assert sum("very blurry" in w for w in sharp) <= 1
    blurred = quality.check(np.stack([_blur(x) for x in lesions[30:]]), [(224, 224)] * 10, ref)
    assert all("very blurry" in w for w in blurred)


def test_unlike_the_training_images(lesions):
    ref = quality.reference(lesions[:30])
    blue = np.zeros((2, 224, 224, 3), np.uint8)
    blue[..., 2] = 255
    assert all("unlike the dermoscopy training images" in w for w in quality.check(blue, [(224, 224)] * 2, ref))


def test_small_images_are_flagged_without_a_reference():
    warnings = quality.check(np.zeros((2, 224, 224, 3), np.uint8), [(100, 80), (600, 450)], None)
    assert warnings[0] == ["very small (100x80 px)"] and warnings[1] == []


def test_a_picture_much_wider_than_the_square_the_model_sees_is_flagged():
    sizes = [(1920, 1080), (1080, 1920), (4032, 3024), (3000, 2000)]  # 16:9 both ways; 4:3 and 3:2 are fine
    warnings = quality.check(np.zeros((4, 224, 224, 3), np.uint8), sizes, None)
    assert [bool(w) for w in warnings] == [True, True, False, False]
    assert warnings[0] == ["only the centre square was assessed (1920x1080 px): crop the picture to the lesion"]


@needs_ham
def test_shipped_reference_on_real_images():
    """The default model's stored reference: few of 40 real HAM10000 images (every 200th, any split)
    are flagged; the same images blurred are."""
    from screening.inference import Screener

    ref = Screener().meta["quality"]
    paths = read_metadata(HAM, prefer=("images_224",))["path"].iloc[::200].tolist()[:40]
    images = np.stack([preprocess(p) for p in paths])
    real = quality.check(images, [(224, 224)] * len(images), ref)
    assert sum(bool(w) for w in real) <= 2
    blurred = quality.check(np.stack([_blur(x, 6) for x in images]), [(224, 224)] * len(images), ref)
    assert sum("very blurry" in w for w in blurred) >= 0.9 * len(images)
