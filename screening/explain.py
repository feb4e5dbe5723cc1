"""Grad-CAM in JAX: where in the image the predicted class's evidence lies.

The keras-io Grad-CAM example uses TensorFlow's GradientTape; here the gradient of the class
logit with respect to the last convolutional feature map comes from ``jax.grad``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras
import matplotlib
import numpy as np
from PIL import Image

from screening.model import backbone_of, front_layers

FEATURE_LAYER = "conv_pw_13_relu"  # MobileNet's last convolutional activation (7x7x1024)
# Hotter is brighter (dark red, orange, pale yellow), readable with red-green colour blindness
# and unlike the lesions' own reds and browns; jet's red centre was both
COLOURMAP = "inferno"
CAPTION = "Grad-CAM: brighter regions drove the top diagnosis more"  # page and PDF record


class GradCAM:
    """Heatmaps for a classifier built by ``screening.model.build_model``."""

    def __init__(self, model: keras.Model) -> None:
        backbone = backbone_of(model)
        self.front = front_layers(model)  # scaling, and colour constancy where the model has it
        self.features = keras.Model(backbone.inputs, backbone.get_layer(FEATURE_LAYER).output)
        self.logits = model.get_layer("logits")
        self._cam = jax.jit(self._compute)

    def _compute(self, images, class_index):
        x = jnp.asarray(images, jnp.float32)
        for layer in self.front:
            x = layer(x)
        fmap = self.features(x)

        def score(a):
            logits = self.logits(jnp.mean(a, axis=(1, 2)))
            return jnp.take_along_axis(logits, class_index[:, None], axis=1).sum()

        grads = jax.grad(score)(fmap)
        weights = grads.mean(axis=(1, 2), keepdims=True)  # one weight per channel
        cam = jax.nn.relu((weights * fmap).sum(axis=-1))
        return cam / (cam.max(axis=(1, 2), keepdims=True) + 1e-8)

    def heatmap(self, image: np.ndarray, class_index: int) -> np.ndarray:
        """A (7, 7) map in [0, 1] for one uint8 (224, 224, 3) image."""
        return np.asarray(self._cam(image[None], jnp.asarray([class_index])))[0]

    def overlay(self, image: np.ndarray, class_index: int, alpha: float = 0.5) -> Image.Image:
        """The heatmap, upsampled smoothly and coloured, blended over the model's input image
        in proportion to its heat: where the map is cold the lesion shows unchanged, so the
        clinician sees the structures under the hot regions rather than a tinted picture."""
        cam = self.heatmap(image, class_index)
        size = image.shape[1], image.shape[0]
        up = np.asarray(Image.fromarray(np.uint8(cam * 255)).resize(size, Image.Resampling.BICUBIC)) / 255.0
        colour = matplotlib.colormaps[COLOURMAP](up)[..., :3] * 255
        weight = alpha * up[..., None]
        return Image.fromarray(np.uint8(np.rint((1 - weight) * image + weight * colour)))
