"""SkinScreen: dermoscopy screening with a Keras 3 MobileNet on JAX.

A research and education tool, not a medical device.

Importing the package selects the JAX backend (see ``screening.backend``) before
anything imports keras, so no user has to set ``KERAS_BACKEND``.
"""

from screening import backend as _backend

_backend.select_jax()

__version__ = "0.1.0"
