"""The one place that chooses the Keras backend and JAX's runtime settings.

- Keras runs on JAX; no user sets ``KERAS_BACKEND``.
- Compiled XLA programs persist in a per-user cache folder, so a second launch of the
  batch tool or the app skips compilation. ``SKINSCREEN_CACHE_DIR`` moves it; an empty
  value turns it off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_dir() -> Path | None:
    """Per-user cache folder for compiled programs (None when disabled)."""
    override = os.environ.get("SKINSCREEN_CACHE_DIR")
    if override is not None:
        return Path(override) if override else None
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "skinscreen" / "xla"


def select_jax() -> None:
    """Make keras use JAX; fail clearly if keras was already loaded with another backend."""
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != "jax":
            raise ImportError(
                "screening needs the JAX backend, but keras was imported first with "
                f"'{keras.backend.backend()}'; import screening before keras."
            )
    os.environ["KERAS_BACKEND"] = "jax"
    folder = cache_dir()
    if folder is not None:
        import jax

        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # a read-only home only costs compile time
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
