"""The classifier: MobileNet backbone, global pooling, dropout, 7-way logits.

The model takes uint8-range RGB at 224x224 and returns logits; softmax with the bundle's
temperature happens in ``screening.inference``, so calibration never needs retraining.
"""

from __future__ import annotations

from pathlib import Path

import keras

from screening.augmentation import build_augmentation, layer_seeds
from screening.colour import ShadesOfGray
from screening.info import CLASS_CODES
from screening.layers import Conv2D, DepthwiseConv2D, ReLU
from screening.preprocessing import INPUT_SIZE, SCALING


def build_backbone(weights: str | None, alpha: float = 1.0, fast: bool = True, size: int = INPUT_SIZE) -> keras.Model:
    """``keras.applications.MobileNet`` without top for ``size`` x ``size`` inputs; ``weights`` is
    a path, 'imagenet' or None. Its weights fit any input size (convolutions, then pooling).

    With ``fast`` the depthwise and convolution layers are swapped for ``screening.layers``
    twins (same config and weights, much faster under XLA on CPU).
    """
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise FileNotFoundError(f"ImageNet weights file not found: {weights}")
    stock = keras.applications.MobileNet(
        input_shape=(size, size, 3),
        alpha=alpha,
        include_top=False,
        weights=weights,
        pooling="avg",
    )
    if not fast:
        return stock
    fast_model = keras.models.clone_model(stock, clone_function=_fast_layer)
    fast_model.set_weights(stock.get_weights())
    return fast_model


FAST_LAYERS = {keras.layers.DepthwiseConv2D: DepthwiseConv2D, keras.layers.Conv2D: Conv2D, keras.layers.ReLU: ReLU}


def _fast_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    return FAST_LAYERS.get(type(layer), type(layer)).from_config(layer.get_config())


def build_model(
    weights: str | None = None,
    alpha: float = 1.0,
    dropout: float = 0.2,
    augmentation: dict | None = None,
    seed: int | None = None,
    fast: bool = True,
    size: int = INPUT_SIZE,
    colour_constancy: bool = False,
) -> keras.Model:
    """[Shades-of-Gray colour constancy] -> scaling -> augmentation (training only) ->
    MobileNet -> dropout -> Dense(7) logits.

    ``size`` is the input's side: the shipped model takes ``INPUT_SIZE``; training may run
    most epochs smaller and then copy the weights into a full-size model (``resized``).
    """
    augmentation_seed, dropout_seed = layer_seeds(seed, 2)
    inputs = keras.Input((size, size, 3), name="image")
    x = ShadesOfGray(name="colour_constancy")(inputs) if colour_constancy else inputs
    x = keras.layers.Rescaling(**SCALING, name="scaling")(x)
    x = build_augmentation(augmentation, seed=augmentation_seed)(x)
    x = build_backbone(weights, alpha, fast, size)(x)
    x = keras.layers.Dropout(dropout, seed=dropout_seed, name="dropout")(x)
    logits = keras.layers.Dense(len(CLASS_CODES), name="logits")(x)
    return keras.Model(inputs, logits, name="skinscreen_mobilenet")


def resized(model: keras.Model, size: int, augmentation: dict | None = None, seed: int | None = None,
            alpha: float = 1.0) -> keras.Model:
    """The same network and weights for ``size`` x ``size`` inputs (training's last stage at
    full size after most epochs at a smaller one), with new augmentation and dropout draws;
    ``alpha`` is the width the model was built with."""
    dropout = model.get_layer("dropout").rate
    twin = build_model(None, alpha, dropout, augmentation=augmentation, seed=seed, size=size,
                       colour_constancy=has_colour_constancy(model))
    twin.set_weights(model.get_weights())  # the random layers hold their seed state, not weights
    return twin


def has_colour_constancy(model: keras.Model) -> bool:
    return any(isinstance(layer, ShadesOfGray) for layer in model.layers)


def front_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers between the input and the backbone that inference runs (colour constancy,
    scaling): Grad-CAM feeds the backbone through them."""
    layers = model.layers[1 : model.layers.index(backbone_of(model))]
    return [layer for layer in layers if layer.name != "augmentation"]


def inference_graph(model: keras.Model) -> keras.Model:
    """The model without its training-only augmentation layer, weights shared: what a bundle
    ships, so that loading one needs no augmentation code and scores the same."""
    if not any(layer.name == "augmentation" for layer in model.layers):
        return model
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = inputs
    for layer in model.layers[1:]:
        if layer.name != "augmentation":
            x = layer(x)
    return keras.Model(inputs, x, name=model.name)


NUM_BLOCKS = 13  # depthwise-separable blocks in MobileNet v1


def backbone_of(model: keras.Model) -> keras.Model:
    return next(layer for layer in model.layers if isinstance(layer, keras.Model) and "mobilenet" in layer.name)


def set_trainable(model: keras.Model, blocks: int, batch_norm: bool = False) -> None:
    """Freeze the backbone except its last ``blocks`` depthwise-separable blocks (0 = head only).

    MobileNet v1 has 13 such blocks (``conv_dw_k``/``conv_pw_k``). Their batch-norm layers
    stay frozen (inference mode, ImageNet statistics: Keras' advice for fine-tuning on little
    data) unless ``batch_norm``, which trains them with the block: batch statistics while
    training, moving statistics re-estimated on dermoscopy images, and their scale and offset.
    """
    backbone = backbone_of(model)
    backbone.trainable = True
    first = NUM_BLOCKS + 1 - blocks
    for layer in backbone.layers:
        block = _block_id(layer.name)
        trainable = blocks > 0 and block is not None and block >= first
        layer.trainable = trainable and (batch_norm or not isinstance(layer, keras.layers.BatchNormalization))


def _block_id(name: str) -> int | None:
    """13 for 'conv_pw_13_bn', 0 for the stem 'conv1', None for pooling and inputs."""
    parts = name.split("_")
    if name.startswith("conv1"):
        return 0
    if len(parts) >= 3 and parts[0] == "conv" and parts[2].isdigit():
        return int(parts[2])
    return None
