"""The fast layers match Keras' own, forward and gradients, and load stock weights."""

import shutil

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from screening import layers
from tests.conftest import HAM, WEIGHTS, needs_ham, needs_weights

CASES = [  # (input shape, kernel, strides, padding): MobileNet's cases plus odd sizes
    ((2, 12, 12, 8), 3, 1, "same"),
    ((2, 13, 13, 8), 3, 2, "valid"),  # MobileNet pads (0, 1) then uses a stride-2 'valid' conv
    ((2, 12, 12, 8), 3, 2, "same"),
    ((2, 11, 9, 8), 3, 2, "same"),
    ((2, 7, 7, 16), 1, 1, "valid"),
    ((1, 10, 10, 4), 5, 1, "same"),
]


def _pair(stock_cls, fast_cls, shape, **kw):
    stock, fast = stock_cls(**kw), fast_cls(**kw)
    stock.build(shape)
    fast.build(shape)
    rng = np.random.default_rng(0)
    for a, b in zip(stock.weights, fast.weights):
        value = rng.normal(size=a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    return stock, fast


def _close(actual, desired, tol: float = 1e-5) -> None:
    """Max abs difference within ``tol`` of the result's scale (float32 sums reorder freely)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    scale = max(1.0, float(np.abs(desired).max()))
    assert np.abs(actual - desired).max() <= tol * scale, np.abs(actual - desired).max() / scale


def _check(stock, fast, shape):
    x = jnp.asarray(np.random.default_rng(1).normal(size=shape).astype("float32"))
    _close(fast(x), stock(x))

    def loss(layer):
        def f(weights, x):
            y = layer.stateless_call(weights, [], x)[0]
            return (y * jnp.cos(y)).sum()  # a non-trivial upstream gradient
        return jax.grad(f, argnums=(0, 1))

    weights = [w.value for w in stock.trainable_weights]
    (gw_s, gx_s), (gw_f, gx_f) = loss(stock)(weights, x), loss(fast)(weights, x)
    _close(gx_f, gx_s)
    for a, b in zip(gw_f, gw_s):
        _close(a, b)


@pytest.mark.parametrize("shape, k, s, pad", CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_depthwise_matches_keras(shape, k, s, pad, bias):
    kw = {"kernel_size": k, "strides": s, "padding": pad, "use_bias": bias}
    _check(*_pair(keras.layers.DepthwiseConv2D, layers.DepthwiseConv2D, shape, **kw), shape)


@pytest.mark.parametrize("shape, k, s, pad", CASES)
def test_depthwise_without_the_native_kernel_matches_keras(shape, k, s, pad, monkeypatch):
    """The XLA kernel gradient that installs without a C++ compiler use."""
    monkeypatch.setattr(layers, "native", None)
    kw = {"kernel_size": k, "strides": s, "padding": pad, "use_bias": False}
    _check(*_pair(keras.layers.DepthwiseConv2D, layers.DepthwiseConv2D, shape, **kw), shape)


def test_native_kernel_is_built_where_there_is_a_compiler():
    """``pip install .`` builds ``_skinscreen_native``; the tests above then run through it."""
    if not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):
        pytest.skip("no C++ compiler, so the install had no native kernel to build")
    assert layers.native is not None, "pip install . did not build _skinscreen_native (see its build log)"


def test_native_kernel_is_lowered_for_cpu_only():
    """A GPU run (lent for training) must get the XLA formulation: lowered for CUDA, the
    program holds no call to the CPU handler (checked without a GPU, by exporting for it)."""
    if layers.native is None:
        pytest.skip("no native kernel in this install")
    x, g = np.zeros((2, 9, 9, 4), np.float32), np.zeros((2, 7, 7, 4), np.float32)
    f = jax.jit(lambda x, g: layers.kernel_grad(x, g, (3, 3), (1, 1), (7, 7)))
    assert "skinscreen_depthwise_kernel_grad" not in jax.export.export(f, platforms=["cuda"])(x, g).mlir_module()
    assert "skinscreen_depthwise_kernel_grad" in f.lower(x, g).as_text()


@pytest.mark.parametrize("shape, k, s, pad", CASES)
def test_conv_matches_keras(shape, k, s, pad):
    kw = {"filters": 6, "kernel_size": k, "strides": s, "padding": pad, "use_bias": True, "activation": "relu"}
    _check(*_pair(keras.layers.Conv2D, layers.Conv2D, shape, **kw), shape)


def test_unsupported_configs_fall_back_to_stock():
    x = jnp.ones((1, 9, 9, 4))
    stock, fast = _pair(keras.layers.DepthwiseConv2D, layers.DepthwiseConv2D, x.shape,
                        kernel_size=3, depth_multiplier=2, dilation_rate=2, padding="same")
    _close(fast(x), stock(x))


def test_config_round_trip_is_the_stock_config():
    layer = layers.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=False, name="conv_dw_2")
    assert layer.get_config() == keras.layers.DepthwiseConv2D.from_config(layer.get_config()).get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is layers.DepthwiseConv2D


@needs_weights
@needs_ham
def test_backbone_with_imagenet_weights_matches_stock_on_real_images():
    from screening.data import load_images, read_metadata
    from screening.model import build_backbone

    stock = build_backbone(str(WEIGHTS), fast=False)
    fast = build_backbone(str(WEIGHTS), fast=True)
    assert {type(layer) for layer in fast.layers} >= {layers.DepthwiseConv2D, layers.Conv2D}
    paths = list(read_metadata(HAM).groupby("dx").head(1)["path"])
    x = load_images(paths).astype("float32") / 127.5 - 1
    a, b = np.asarray(stock(x)), np.asarray(fast(x))
    _close(b, a)
    assert np.abs(a).max() > 0.1  # real activations, not all zeros
