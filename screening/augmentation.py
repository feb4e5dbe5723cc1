"""Training-time augmentation as Keras layers, so it runs inside the compiled JAX step.

``python -m screening.augmentation DATA_DIR --out docs/augmentation_grid.png`` renders a
grid of augmented samples for a human to check that the pipeline is sane.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax.numpy as jnp
import keras
import numpy as np
from PIL import Image

from screening.preprocessing import SCALING

#: The design's list, applied to scaled inputs in [-1, 1]. Rotation is a fraction of a full
#: turn (0.5 = any angle: lesions have no "up"); zoom a fraction of the size; brightness a
#: fraction of the value range; noise a standard deviation (0.04 is about 5 of 255 levels).
DEFAULT_AUGMENTATION: dict = {
    "flip": "horizontal_and_vertical",
    "rotation": 0.5,
    "zoom": 0.15,
    "brightness": 0.15,
    "noise": 0.04,
    # levers, off by default: the smallest share of the image's area a random-resized crop keeps
    # (0 is off), and colour jitter's contrast and saturation range (0 is off)
    "crop": 0.0,
    "jitter": 0.0,
}


class RandomLayer(keras.layers.Layer):
    """An augmentation layer with its own seed stream, the identity outside training; a
    subclass draws with ``uniform`` in ``augment``."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training: bool = False):
        return self.augment(images) if training else images

    def augment(self, images):
        raise NotImplementedError

    def uniform(self, shape: tuple, low: float, high: float):
        return keras.random.uniform(shape, low, high, seed=self.generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="screening")
class RandomRotateZoom(RandomLayer):
    """Random rotation and zoom as one affine resampling (one interpolation, not two).

    Keras' RandomRotation and RandomZoom mark themselves ``supports_jit = False``, which
    makes ``model.fit`` run the whole training step eagerly (several times slower on JAX).
    This layer compiles, and resamples with ``affine_bilinear`` rather than
    ``keras.ops.image.affine_transform`` (same result, several times faster on CPU).
    ``rotation`` is a fraction of a full turn, ``zoom`` a fraction of the size; outside
    pixels are filled by reflection.
    """

    def __init__(self, rotation: float = 0.0, zoom: float = 0.0, seed: int | None = None, **kwargs):
        kwargs.pop("fill_mode", None)  # saved by earlier versions; reflection is the only mode
        super().__init__(seed, **kwargs)
        self.rotation, self.zoom = rotation, zoom

    def augment(self, images):
        ops = keras.ops
        n = ops.shape(images)[0]
        h, w = images.shape[1], images.shape[2]
        angle = self.uniform((n,), -1.0, 1.0) * self.rotation * 2 * np.pi
        scale = 1.0 + self.uniform((n,), -1.0, 1.0) * self.zoom
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        # Output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2): a rotation
        # by `angle` and zoom by `scale` about the image centre.
        transform = ops.stack(
            [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy], axis=1)
        return affine_bilinear(images, transform)

    def get_config(self) -> dict:
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom}


@keras.saving.register_keras_serializable(package="screening")
class RandomResizedCrop(RandomLayer):
    """A random crop of ``area`` to 1 of the image's area, of aspect ratio 3/4 to 4/3 (drawn on a
    log scale, within the ratios at which that area fits) at a random place, resized back to the
    full size (Szegedy et al. 2015; timm's ``RandomResizedCropAndInterpolation`` redraws a crop
    that does not fit instead). Bilinear through ``affine_bilinear``; compiles."""

    RATIO = (3 / 4, 4 / 3)

    def __init__(self, area: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(seed, **kwargs)
        self.area = area

    def augment(self, images):
        ops = keras.ops
        n = ops.shape(images)[0]
        h, w = images.shape[1], images.shape[2]
        share = self.uniform((n,), self.area, 1.0)
        # the aspect ratios at which a crop of this share fits inside the image, within RATIO
        low = ops.log(ops.maximum(self.RATIO[0], share * w / h))
        high = ops.log(ops.minimum(self.RATIO[1], w / (share * h)))
        ratio = ops.exp(low + self.uniform((n,), 0.0, 1.0) * (high - low))
        cw = ops.minimum(ops.sqrt(share * ratio * w * h), w)  # crop size in pixels: width / height = ratio
        ch = ops.minimum(ops.sqrt(share / ratio * w * h), h)  # (the minimum only catches rounding)
        x0 = self.uniform((n,), 0.0, 1.0) * (w - cw)
        y0 = self.uniform((n,), 0.0, 1.0) * (h - ch)
        sx, sy = cw / w, ch / h
        zeros = ops.zeros_like(sx)
        # output pixel centre (x + 0.5) maps to x0 + (x + 0.5) * sx in the input
        transform = ops.stack([sx, zeros, x0 + 0.5 * sx - 0.5, zeros, sy, y0 + 0.5 * sy - 0.5], axis=1)
        return affine_bilinear(images, transform)

    def get_config(self) -> dict:
        return {**super().get_config(), "area": self.area}


@keras.saving.register_keras_serializable(package="screening")
class ColourJitter(RandomLayer):
    """Random contrast and saturation, each image scaled by its own factors, drawn apart from
    each other in ``1 - strength`` to ``1 + strength``, on [-1, 1] RGB, clipped to that range.

    Contrast scales each pixel's distance from the image's mean; saturation each channel's
    distance from the pixel's grey (the mean of its channels). Keras' RandomSaturation and
    RandomHue convert to HSV assuming [0, 1] values and read a single ``factor`` as 0 to
    ``factor`` (0.2 would turn most images nearly grey), so this is written out.
    """

    def __init__(self, strength: float = 0.2, seed: int | None = None, **kwargs):
        super().__init__(seed, **kwargs)
        self.strength = strength

    def augment(self, images):
        ops = keras.ops
        n = ops.shape(images)[0]
        contrast = 1.0 + self.uniform((n, 1, 1, 1), -1.0, 1.0) * self.strength
        saturation = 1.0 + self.uniform((n, 1, 1, 1), -1.0, 1.0) * self.strength
        mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
        x = (images - mean) * contrast + mean
        grey = ops.mean(x, axis=-1, keepdims=True)
        return ops.clip((x - grey) * saturation + grey, -1.0, 1.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "strength": self.strength}


def _reflect(index, size: int):
    """Index into ``size`` pixels reflected about the edges (... b a | a b c d | d c ...)."""
    index = jnp.mod(index, 2 * size)
    return jnp.where(index >= size, 2 * size - 1 - index, index)


def affine_bilinear(images, transform):
    """Bilinear affine resampling of NHWC ``images``, reflecting at the borders.

    ``transform`` is ``(N, 6)``: output pixel (x, y) samples input (a0 x + a1 y + a2,
    b0 x + b1 y + b2), the convention of ``keras.ops.image.affine_transform``. That
    function (through ``jax.scipy.ndimage.map_coordinates``) interpolates in three
    dimensions, channels included: eight gathers per value. Here four gathers fetch all
    channels of a pixel at once.
    """
    n, h, w, c = images.shape
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=images.dtype), jnp.arange(w, dtype=images.dtype), indexing="ij")
    t = [transform[:, i, None, None] for i in range(6)]
    sx, sy = t[0] * xs + t[1] * ys + t[2], t[3] * xs + t[4] * ys + t[5]
    x0, y0 = jnp.floor(sx), jnp.floor(sy)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = x0.astype("int32"), y0.astype("int32")
    flat = images.reshape(n, h * w, c)

    def tap(dy: int, dx: int):
        index = _reflect(y0 + dy, h) * w + _reflect(x0 + dx, w)
        return jnp.take_along_axis(flat, index.reshape(n, h * w, 1), axis=1).reshape(n, h, w, c)

    top = tap(0, 0) * (1 - fx) + tap(0, 1) * fx
    bottom = tap(1, 0) * (1 - fx) + tap(1, 1) * fx
    return top * (1 - fy) + bottom * fy


#: Each flip mode as the axes flipped, each drawn on its own.
FLIPS: dict[str, tuple[str, ...]] = {"horizontal_and_vertical": ("horizontal", "vertical"),
                                     "horizontal": ("horizontal",), "vertical": ("vertical",), "": ()}


#: Each random layer's slot in the seed streams, by name: a recipe that turns a lever on or off
#: leaves the other layers' draws as they were, so recipes compared over folds share them.
SEED_SLOTS = ("flip_horizontal", "flip_vertical", "resized_crop", "rotate_zoom", "brightness", "colour_jitter", "noise")


def layer_seeds(seed: int | None, count: int) -> list[int | None]:
    """One independent seed per random layer. Layers given the same seed draw the same
    numbers (a flip and a brightness change would move together), so each gets its own
    stream from ``numpy``'s SeedSequence; ``None`` leaves every layer unseeded."""
    if seed is None:
        return [None] * count
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count)]


def build_augmentation(config: dict | None = None, seed: int | None = None) -> keras.Sequential:
    """A Sequential of random layers on [-1, 1] RGB, each with its own seed; identity at inference.

    ``horizontal_and_vertical`` becomes two flips drawn independently: Keras' RandomFlip in
    that mode draws once for both axes, so it only ever turns an image by 180 degrees and
    never mirrors it.
    """
    c = {**DEFAULT_AUGMENTATION, **(config or {})}
    flips = FLIPS.get(c["flip"] or "")
    if flips is None:
        raise ValueError(f"unknown flip mode {c['flip']!r}; one of {', '.join(map(repr, FLIPS))}")
    seeds = dict(zip(SEED_SLOTS, layer_seeds(seed, len(SEED_SLOTS))))
    layers: list[keras.layers.Layer] = [keras.layers.RandomFlip(mode, seed=seeds[f"flip_{mode}"], name=f"flip_{mode}")
                                        for mode in flips]
    if c["crop"]:
        layers.append(RandomResizedCrop(c["crop"], seed=seeds["resized_crop"], name="resized_crop"))
    if c["rotation"] or c["zoom"]:
        layers.append(RandomRotateZoom(c["rotation"], c["zoom"], seed=seeds["rotate_zoom"], name="rotate_zoom"))
    if c["brightness"]:
        layers.append(keras.layers.RandomBrightness(c["brightness"], value_range=(-1, 1), seed=seeds["brightness"],
                                                    name="brightness"))
    if c["jitter"]:
        layers.append(ColourJitter(c["jitter"], seed=seeds["colour_jitter"], name="colour_jitter"))
    if c["noise"]:
        layers.append(keras.layers.GaussianNoise(c["noise"], seed=seeds["noise"], name="noise"))
    return keras.Sequential(layers or [keras.layers.Identity()], name="augmentation")


def augmentation_grid(images: np.ndarray, copies: int = 5, seed: int = 0) -> Image.Image:
    """One row per image: the original, then ``copies`` augmented versions."""
    aug = build_augmentation(seed=seed)
    x = np.asarray(images, dtype="float32")
    scaled = x * SCALING["scale"] + SCALING["offset"]
    augmented = [keras.ops.convert_to_numpy(aug(scaled, training=True)) for _ in range(copies)]
    cols = [x] + [(a - SCALING["offset"]) / SCALING["scale"] for a in augmented]
    n, size = len(x), x.shape[1]
    grid = np.zeros((n * size, len(cols) * size, 3), dtype=np.uint8)
    for j, col in enumerate(cols):
        for i in range(n):
            grid[i * size : (i + 1) * size, j * size : (j + 1) * size] = np.clip(col[i], 0, 255)
    return Image.fromarray(grid)


def main(argv: list[str] | None = None) -> int:
    from screening.cli import described, positive_int, run_cli
    from screening.data import load_images, read_metadata

    parser = argparse.ArgumentParser(prog="python -m screening.augmentation", description=described(__doc__))
    parser.add_argument("data", type=Path, help="HAM10000 folder (with HAM10000_metadata.csv)")
    parser.add_argument("--out", type=Path, default=Path("docs/augmentation_grid.png"))
    parser.add_argument("--rows", type=positive_int, default=6, help="images, one per class where possible")
    parser.add_argument("--seed", type=int, default=0)

    def run(args: argparse.Namespace) -> int:
        df = read_metadata(args.data)
        picks = df.groupby("dx").sample(1, random_state=args.seed).head(args.rows)
        grid = augmentation_grid(load_images(list(picks["path"])), seed=args.seed)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        grid.save(args.out)
        print(f"wrote {args.out} ({len(picks)} images x 6 columns: original, then augmented)")
        return 0

    return run_cli(parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
