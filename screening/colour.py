"""Shades-of-Gray colour constancy as the model's first layer (Finlayson and Trezzi, 2004).

Dermatoscopes and cameras light and white-balance lesions differently; the top ISIC 2018 and
2019 entries normalised each image's colour this way before their networks. Inside the model
it runs wherever the model runs (training, calibration, the page, the worklist, Grad-CAM) and
is saved with it, so a bundle trained with it always scores with it.
"""

from __future__ import annotations

import keras
from keras import ops

#: The Minkowski norm: 1 is Gray World, infinity is max-RGB; 6 is the paper's and the ISIC entries' choice.
DEFAULT_POWER = 6.0


@keras.saving.register_keras_serializable(package="screening")
class ShadesOfGray(keras.layers.Layer):
    """Divide each channel of each image by its illuminant estimate, the ``power``-norm of the
    channel's values, scaled so that a grey illuminant leaves the image unchanged.

    Takes and returns uint8-range RGB (0-255), clipped. The illuminant ``e`` (one value per
    channel) is normalised to unit length, and each channel multiplied by
    ``1 / (sqrt(3) * e_c)``: a uniform image of colour (r, g, b) becomes grey at the level
    ``|(r, g, b)| / sqrt(3)``.
    """

    def __init__(self, power: float = DEFAULT_POWER, **kwargs):
        super().__init__(**kwargs)
        self.power = power

    def call(self, images):
        x = ops.clip(ops.cast(images, "float32") / 255.0, 0.0, 1.0)
        illuminant = ops.power(ops.mean(ops.power(x, self.power), axis=(1, 2), keepdims=True), 1.0 / self.power)
        illuminant = illuminant / ops.maximum(ops.sqrt(ops.sum(illuminant**2, axis=-1, keepdims=True)), 1e-6)
        gain = 1.0 / ops.maximum(illuminant * 3.0**0.5, 0.05)  # a channel with almost no light: at most 20x
        return ops.clip(x * gain, 0.0, 1.0) * 255.0

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "power": self.power}
