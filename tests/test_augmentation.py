import keras
import numpy as np
import pytest

from screening.augmentation import affine_bilinear, augmentation_grid, build_augmentation, layer_seeds
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


def _draw(aug: keras.Sequential, x: np.ndarray, times: int) -> np.ndarray:
    return np.concatenate([keras.ops.convert_to_numpy(aug(x, training=True)) for _ in range(times)])


def _dot(n: int, size: int = 8) -> np.ndarray:
    """``n`` copies of a dark image with one bright pixel off every axis of symmetry."""
    x = np.full((n, size, size, 3), -0.5, "float32")
    x[:, 1, 2] = 0.5
    return x


def test_flips_mirror_each_axis_on_its_own_and_brightness_is_drawn_apart():
    """A quarter of the draws each unchanged, mirrored left-right, mirrored top-bottom and
    turned 180 degrees; darker or lighter half the time whichever flip was drawn. Keras'
    ``horizontal_and_vertical`` flip only ever turned the image, and with one seed for
    every layer every flipped image came out darker (the review's finding)."""
    aug = build_augmentation({"rotation": 0, "zoom": 0, "noise": 0}, seed=0)
    y = _draw(aug, _dot(64), 10)
    shift = np.median(y, axis=(1, 2, 3)) - (-0.5)  # the background's brightness change
    where = [np.unravel_index(np.argmax(im[..., 0] - s), im.shape[:2]) for im, s in zip(y, shift)]
    kind = np.array([{(1, 2): 0, (1, 5): 1, (6, 2): 2, (6, 5): 3}[tuple(map(int, w))] for w in where])
    counts = np.bincount(kind, minlength=4)
    assert all(110 <= c <= 210 for c in counts), counts  # 160 expected each; 4 sd of a binomial is 44
    for k in range(4):
        assert 0.35 <= np.mean(shift[kind == k] > 0) <= 0.65, (k, np.mean(shift[kind == k] > 0))
    # brightness moves by up to 15% of the value range [-1, 1], spread over all of it
    assert 0.27 < np.abs(shift).max() <= 0.3 + 1e-6 and np.mean(np.abs(shift) < 0.15) > 0.35


def _bar() -> np.ndarray:
    """A bright bar along the x axis at the centre of a 65x65 image."""
    x = np.full((65, 65, 3), -1.0, "float32")
    x[30:35, 20:45] = 1.0
    return x


def _orientation_and_length(image: np.ndarray) -> tuple[float, float]:
    """The bar's angle (degrees, modulo 180) and its length's standard deviation from its moments."""
    w = np.clip(image[..., 0] + 1, 0, None)
    ys, xs = np.mgrid[: w.shape[0], : w.shape[1]]
    cx, cy = (w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()
    cov = np.cov(np.stack([xs.ravel() - cx, ys.ravel() - cy]), aweights=w.ravel())
    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
    return (angle + 90) % 180 - 90, float(np.sqrt(values[1]))


def test_rotation_and_zoom_cover_their_ranges_independently():
    """Angles within +-18 degrees (rotation 0.05 of a turn) and sizes within +-15%, spread over
    those ranges, drawn apart from each other, measured on the output images themselves."""
    aug = build_augmentation({"flip": "", "rotation": 0.05, "zoom": 0.15, "brightness": 0, "noise": 0}, seed=3)
    y = _draw(aug, np.repeat(_bar()[None], 50, axis=0), 6)
    _, length0 = _orientation_and_length(_bar())
    measured = np.array([_orientation_and_length(im) for im in y])
    angle, scale = measured[:, 0], measured[:, 1] / length0
    assert np.abs(angle).max() < 18.5 and np.abs(angle).max() > 15 and np.mean(np.abs(angle) < 9) > 0.35
    assert 0.8 < scale.min() < 0.9 and 1.1 < scale.max() < 1.22  # the image shrinks or grows by up to 15%
    assert abs(np.corrcoef(angle, scale)[0, 1]) < 0.2
    assert abs(np.corrcoef(np.abs(angle), scale)[0, 1]) < 0.2


def test_any_angle_at_the_default_setting():
    aug = build_augmentation({"flip": "", "zoom": 0, "brightness": 0, "noise": 0}, seed=1)
    angle = np.array([_orientation_and_length(im)[0] for im in _draw(aug, np.repeat(_bar()[None], 50, 0), 4)])
    assert np.histogram(angle, bins=6, range=(-90, 90))[0].min() >= 15  # 33 expected in each 30-degree bin


def test_each_layer_draws_its_own_stream_and_a_seed_repeats_them():
    seeds = layer_seeds(0, 5)
    assert len(set(seeds)) == 5 and layer_seeds(0, 5) == seeds and layer_seeds(1, 5) != seeds
    assert layer_seeds(None, 3) == [None, None, None]
    x = _dot(16)
    first, again = (_draw(build_augmentation(seed=7), x, 2) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, _draw(build_augmentation(seed=8), x, 2))


def test_a_lever_turned_on_leaves_the_other_layers_draws_as_they_were():
    """Seeds go by layer name: recipes compared over folds share the draws of their common layers."""
    plain = build_augmentation(seed=3)
    levers = build_augmentation({"crop": 0.5, "jitter": 0.2}, seed=3)
    seeds = lambda aug: {layer.name: layer.seed for layer in aug.layers}
    common = seeds(plain).keys()
    assert {k: seeds(levers)[k] for k in common} == seeds(plain) and len(set(seeds(levers).values())) == 7


def test_unknown_flip_mode_is_refused():
    with pytest.raises(ValueError, match="unknown flip mode 'diagonal'"):
        build_augmentation({"flip": "diagonal"})


def _coordinates(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Images whose red channel is the x coordinate and green the y coordinate, scaled to [-1, 1]."""
    ys, xs = np.mgrid[:h, :w].astype("float32")
    image = np.stack([xs / (w - 1) * 2 - 1, ys / (h - 1) * 2 - 1, np.zeros_like(xs)], axis=-1)
    return np.repeat(image[None], n, axis=0)


def _crops(h: int, w: int) -> tuple[np.ndarray, ...]:
    """Random-resized crops (area 0.5 to 1) read back from the output's coordinates: the crop's
    width and height shares (the slope of the coordinates between two inner columns or rows)
    and its left edge in pixels."""
    aug = build_augmentation({"flip": "", "rotation": 0, "zoom": 0, "brightness": 0, "noise": 0, "crop": 0.5}, seed=2)
    y = _draw(aug, _coordinates(100, h, w), 3)
    sx = (y[:, h // 2, 3 * w // 4, 0] - y[:, h // 2, w // 4, 0]) / (w // 2) * (w - 1) / 2
    sy = (y[:, 3 * h // 4, w // 2, 1] - y[:, h // 4, w // 2, 1]) / (h // 2) * (h - 1) / 2
    x0 = (y[:, h // 2, w // 4, 0] + 1) / 2 * (w - 1) - (w // 4 + 0.5) * sx + 0.5
    return sx, sy, x0


def test_random_resized_crops_keep_their_area_and_aspect_ranges_at_random_places():
    """Area share 0.5 to 1 and aspect ratio 3/4 to 4/3, over their whole ranges and unrelated,
    each crop inside the image, starting anywhere in the room left."""
    sx, sy, x0 = _crops(48, 48)
    area, aspect = sx * sy, sx / sy
    assert 0.5 - 1e-3 <= area.min() < 0.55 and 0.95 < area.max() <= 1 + 1e-3
    assert 0.75 - 1e-3 <= aspect.min() < 0.8 and 1.25 < aspect.max() <= 4 / 3 + 1e-3
    assert x0.min() > -0.01 and (x0 + sx * 48).max() < 48 + 0.01
    room = 48 - sx * 48
    placed = x0[room > 6] / room[room > 6]
    assert placed.min() < 0.15 and placed.max() > 0.85
    assert abs(np.corrcoef(area, aspect)[0, 1]) < 0.2
    assert abs(area.mean() - 0.75) < 0.025  # as drawn: no crop is cut down to fit (3 sd of the mean: 0.025)
    sx, sy, _ = _crops(48, 64)  # the aspect ratio is the crop's in pixels, not the image's times it
    assert 0.75 - 1e-3 <= (sx * 64 / (sy * 48)).min() and (sx * 64 / (sy * 48)).max() <= 4 / 3 + 1e-3


def test_colour_jitter_draws_contrast_and_saturation_apart_within_their_range():
    """Contrast read from the grey image (the channels' mean, which saturation leaves alone),
    saturation from what is left around it; each in 0.8 to 1.2 over its whole range, unrelated."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.3, 0.3, (100, 16, 16, 3)).astype("float32")
    aug = build_augmentation({"flip": "", "rotation": 0, "zoom": 0, "brightness": 0, "noise": 0, "jitter": 0.2}, seed=4)
    y = _draw(aug, x, 3)
    x = np.concatenate([x] * 3)
    grey_in, grey_out = x.mean(-1), y.mean(-1)
    contrast = grey_out.std(axis=(1, 2)) / grey_in.std(axis=(1, 2))
    saturation = (y - grey_out[..., None]).std(axis=(1, 2, 3)) / (x - grey_in[..., None]).std(axis=(1, 2, 3)) / contrast
    for factor in (contrast, saturation):
        assert 0.8 - 1e-4 <= factor.min() < 0.83 and 1.17 < factor.max() <= 1.2 + 1e-4
        assert 0.35 < np.mean(factor < 1) < 0.65
    assert abs(np.corrcoef(contrast, saturation)[0, 1]) < 0.2
    np.testing.assert_allclose(grey_out.mean(axis=(1, 2)), grey_in.mean(axis=(1, 2)), atol=1e-5)  # brightness kept
