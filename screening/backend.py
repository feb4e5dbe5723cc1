"""The one place that chooses the Keras backend and JAX's runtime settings."""

from __future__ import annotations

import os
import sys


def select_jax() -> None:
    """Make keras use JAX; fail clearly if keras was already loaded with another backend."""
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != "jax":
            raise ImportError(
                "screening needs the JAX backend, but keras was imported first with "
                f"'{keras.backend.backend()}'; import screening before keras."
            )
        return
    os.environ["KERAS_BACKEND"] = "jax"
