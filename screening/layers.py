"""Convolution layers that XLA runs well on CPU, as drop-ins for the Keras ones.

Each class subclasses its Keras twin and keeps its config and variables (``kernel``,
``bias``), so ImageNet weights and saved models load unchanged; only ``call`` differs.

- ``DepthwiseConv2D``: XLA lowers depthwise convolution to a grouped convolution that is
  slow on CPU (jax-ml/jax#23713). Here it is a sum of k*k shifted per-channel multiplies
  of the padded input (fused elementwise work), with a custom gradient. Its kernel part,
  on CPU in float32, is the native kernel ``_skinscreen_native`` (built from
  ``native/`` at install) when present: one pass over input and gradient for all
  taps. Otherwise it is a tree of elementwise adds, since XLA's CPU reductions over the
  batch and spatial axes are several times slower than the same sum written that way.
- ``Conv2D``: im2col (the k*k shifted views side by side) and one matrix multiply; XLA's
  CPU GEMM beats its convolution several times, forward and backward, and MobileNet spends
  most of its FLOPs in 1x1 convolutions, where im2col is just a reshape.

Configurations outside these paths (dilation, depth multiplier > 1, groups,
channels_first) fall back to the stock implementation.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras import ops

try:
    import _skinscreen_native as native

    jax.ffi.register_ffi_target("skinscreen_depthwise_kernel_grad", native.depthwise_kernel_grad(), platform="cpu")
except (ImportError, RuntimeError, ValueError):  # not built (no C++ compiler) or unusable: XLA below
    native = None  # an optional training speed-up must never stop the app or batch tool from importing


def _padding(size: int, k: int, stride: int, mode: str) -> tuple[tuple[int, int], int]:
    """(before, after) padding and output size, with TensorFlow/Keras 'same' semantics."""
    if mode == "valid":
        return (0, 0), (size - k) // stride + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return (total // 2, total - total // 2), out


def _pad_and_views(layer: keras.layers.Layer, inputs):
    """Padded input plus the (i, j) -> strided view function, and the output size."""
    (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
    _, h, w, _ = inputs.shape
    (top, bottom), out_h = _padding(h, kh, sh, layer.padding)
    (left, right), out_w = _padding(w, kw, sw, layer.padding)
    x = jnp.pad(inputs, ((0, 0), (top, bottom), (left, right), (0, 0))) if top + bottom + left + right else inputs
    return x, (out_h, out_w)


def _view(x, i: int, j: int, strides: tuple[int, int], out_hw: tuple[int, int]):
    (sh, sw), (oh, ow) = strides, out_hw
    return x[:, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw, :]


def _tree_sum(x):
    """Sum over axis 0 by pairwise halving: elementwise adds that XLA fuses and vectorises."""
    while x.shape[0] > 1:
        half = x.shape[0] // 2
        head = x[:half] + x[half : 2 * half]
        x = head if x.shape[0] % 2 == 0 else jnp.concatenate([head[:1] + x[2 * half :], head[1:]])
    return x[0]


def _depthwise_forward(x, kernel, strides, out_hw):
    kh, kw = kernel.shape[:2]
    out = None
    for i in range(kh):
        for j in range(kw):
            term = _view(x, i, j, strides, out_hw) * kernel[i, j]
            out = term if out is None else out + term
    return out


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def depthwise(x, kernel, strides: tuple[int, int], out_hw: tuple[int, int]):
    """Depthwise correlation of padded NHWC ``x`` with a ``(kh, kw, C)`` kernel."""
    return _depthwise_forward(x, kernel, strides, out_hw)


def _depthwise_fwd(x, kernel, strides, out_hw):
    return _depthwise_forward(x, kernel, strides, out_hw), (x, kernel)


def _kernel_grad_xla(x, g, kernel_hw, strides, out_hw):
    kh, kw = kernel_hw
    return jnp.stack([
        jnp.stack([_tree_sum(_tree_sum(_tree_sum(_view(x, i, j, strides, out_hw) * g))) for j in range(kw)])
        for i in range(kh)
    ])


def _kernel_grad_native(x, g, kernel_hw, strides):
    (kh, kw), (sh, sw) = kernel_hw, strides  # the output size is g's
    call = jax.ffi.ffi_call("skinscreen_depthwise_kernel_grad", jax.ShapeDtypeStruct((kh, kw, x.shape[-1]), x.dtype))
    return call(x, g, kh=np.int64(kh), kw=np.int64(kw), sh=np.int64(sh), sw=np.int64(sw))


def kernel_grad(x, g, kernel_hw: tuple[int, int], strides: tuple[int, int], out_hw: tuple[int, int]):
    """The depthwise kernel gradient ``(kh, kw, C)``: native on CPU in float32, XLA otherwise."""
    xla = partial(_kernel_grad_xla, kernel_hw=kernel_hw, strides=strides, out_hw=out_hw)
    if native is None or x.dtype != jnp.float32 or g.dtype != jnp.float32:
        return xla(x, g)
    cpu = partial(_kernel_grad_native, kernel_hw=kernel_hw, strides=strides)
    return jax.lax.platform_dependent(x, g, cpu=cpu, default=xla)


def _depthwise_bwd(strides, out_hw, residuals, g):
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda x_: _depthwise_forward(x_, kernel, strides, out_hw), x)
    dk = kernel_grad(x, g, kernel.shape[:2], strides, out_hw)
    return input_vjp(g)[0], dk.astype(kernel.dtype)


depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)


def _finish(layer: keras.layers.Layer, out):
    if layer.use_bias:
        out = out + ops.cast(layer.bias, out.dtype)
    return layer.activation(out) if layer.activation is not None else out


@keras.saving.register_keras_serializable(package="screening")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """Depthwise 2-D convolution as shifted multiplies (channels_last, multiplier 1)."""

    def call(self, inputs):
        if not (self.data_format == "channels_last" and self.depth_multiplier == 1
                and tuple(self.dilation_rate) == (1, 1)):
            return super().call(inputs)
        x, out_hw = _pad_and_views(self, inputs)
        kernel = ops.cast(self.kernel[:, :, :, 0], x.dtype)
        return _finish(self, depthwise(x, kernel, tuple(self.strides), out_hw))


@keras.saving.register_keras_serializable(package="screening")
class Conv2D(keras.layers.Conv2D):
    """2-D convolution as im2col and one matrix multiply (channels_last, no groups/dilation)."""

    def call(self, inputs):
        if not (self.data_format == "channels_last" and self.groups == 1 and tuple(self.dilation_rate) == (1, 1)):
            return super().call(inputs)
        x, out_hw = _pad_and_views(self, inputs)
        (kh, kw), strides = self.kernel_size, tuple(self.strides)
        views = [_view(x, i, j, strides, out_hw) for i in range(kh) for j in range(kw)]
        patches = views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)
        n, oh, ow, k = patches.shape
        kernel = ops.cast(self.kernel, x.dtype).reshape(k, self.filters)  # (kh, kw, Cin) order matches
        out = (patches.reshape(-1, k) @ kernel).reshape(n, oh, ow, self.filters)
        return _finish(self, out)


@jax.custom_vjp
def relu6(x):
    """min(max(x, 0), 6) whose gradient mask is taken from the output, not the input.

    The output is what the next layer reads, so it is in memory anyway; a mask from the
    input makes XLA recompute the whole preceding block inside the backward pass.
    """
    return jnp.clip(x, 0.0, 6.0)


def _relu6_fwd(x):
    y = jnp.clip(x, 0.0, 6.0)
    return y, y


def _relu6_bwd(y, g):
    return (jnp.where((y > 0.0) & (y < 6.0), g, 0.0),)


relu6.defvjp(_relu6_fwd, _relu6_bwd)


@keras.saving.register_keras_serializable(package="screening")
class ReLU(keras.layers.ReLU):
    """``keras.layers.ReLU``; the ReLU6 case (MobileNet's) uses ``relu6`` above."""

    def call(self, inputs):
        if self.max_value == 6.0 and self.negative_slope == 0.0 and self.threshold == 0.0:
            return relu6(inputs)
        return super().call(inputs)
