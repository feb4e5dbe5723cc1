"""The one place that chooses the Keras backend and JAX's runtime settings.

- Keras runs on JAX; no user sets ``KERAS_BACKEND``.
- Compiled XLA programs persist in a per-user cache folder, so a second launch of the
  batch tool or the app skips compilation. ``SKINSCREEN_CACHE_DIR`` moves it; an empty
  value turns it off.
- Training (``screening.train``, the benchmark) gives XLA's CPU compiler the options in
  ``CPU_FLAGS``, which made the MobileNet training step about 1.4x faster on the
  development machine. The app and batch tool do without: there the flags left inference
  as fast but made the first compilation about 3 s slower (README, Speed). XLA aborts the
  process on a flag it does not know, so they are set only for the jaxlib versions they
  were measured on; a flag the user already put in ``XLA_FLAGS`` keeps the user's value.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

# XLA CPU options: the older loop emitters and 512-bit vectors for fused elementwise work,
# Eigen rather than XNNPACK/YNNPACK for the matrix multiplies.
CPU_FLAGS = {
    "xla_cpu_use_fusion_emitters": "false",
    "xla_cpu_prefer_vector_width": "512",
    "xla_cpu_use_xnnpack": "false",
    "xla_cpu_experimental_ynn_fusion_type": "",
}
CPU_FLAGS_JAXLIB = ("0.10.",)  # jaxlib versions these flags exist in and were measured on


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


def xla_flags(current: str, jaxlib_version: str) -> str:
    """``current`` XLA_FLAGS plus those of ``CPU_FLAGS`` it does not set, on a tested jaxlib."""
    if not jaxlib_version.startswith(CPU_FLAGS_JAXLIB):
        return current
    given = {word.lstrip("-").split("=")[0] for word in current.split()}
    extra = [f"--{name}={value}" for name, value in CPU_FLAGS.items() if name not in given]
    return " ".join([current, *extra]).strip()


def use_training_flags() -> bool:
    """Add ``CPU_FLAGS`` to ``XLA_FLAGS`` unless JAX has started (XLA reads them once, then).

    Returns whether the flags can still take effect.
    """
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return False
    try:
        version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    os.environ["XLA_FLAGS"] = xla_flags(os.environ.get("XLA_FLAGS", ""), version)
    return True


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
        # every program, however quick to compile: a start compiles dozens of small ones (the
        # model's weights as it loads, its first image); cached too, a start to a first result
        # took 3.7 s against 4.4 s (benchmarks/cold_start.py, 2026-11-27)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
