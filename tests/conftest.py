"""Shared fixtures: generated images, a tiny untrained bundle, the shared-data location."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import logging as absl_logging

import screening  # noqa: F401  (selects the JAX backend before keras loads)

# absl (Keras imports it) logs through a handler on the sys.stderr of its import, under pytest a
# capture's stream; uvicorn's logging set-up, at each launch of the app, closes that handler, and
# absl closes its stream unless it is the process's own: the capture, read later, failed the test
# ("I/O operation on closed file"), and a test that launches the app failed when run alone
absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__

ROOT = Path(__file__).resolve().parents[1]
HEIC = ROOT / "tests" / "fixtures" / "lesion_like_seed0.heic"  # lesion_like(150, 200), HEVC quality 60
SHARED = ROOT.parent / "shared"
HAM = SHARED / "data" / "ham10000"
WEIGHTS = SHARED / "weights" / "mobilenet_1_0_224_imagenet_no_top.weights.h5"

needs_ham = pytest.mark.skipif(
    not (HAM / "HAM10000_metadata.csv").is_file(),
    reason=f"HAM10000 not found at {HAM} (the shared data folder beside the repository)",
)
needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"ImageNet weights not found at {WEIGHTS}")


def lesion_like(h: int = 300, w: int = 400, seed: int = 0) -> np.ndarray:
    """A smooth skin-coloured image with a dark blob: dermoscopy-ish, generated."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / h, (xx - w / 2) / w)
    blob = np.clip(1.5 - 5 * r, 0, 1)[..., None]
    skin = np.array([220, 170, 150], dtype=float)
    lesion = np.array([90, 50, 40], dtype=float)
    img = skin * (1 - blob) + lesion * blob + rng.normal(0, 4, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """An untrained alpha-0.25 model saved as a bundle (fast to build, same code path)."""
    from screening.bundle import save_bundle
    from screening.model import build_model

    model = build_model(weights=None, alpha=0.25)
    path = tmp_path_factory.mktemp("bundle") / "tiny"
    return save_bundle(model, path, {"name": "tiny-test-model", "threshold": 0.3})


def pdf_text(path) -> str:
    """A PDF's text as a reader's copy-and-paste would give it (poppler's pdftotext)."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def auth_file(folder: Path, text: str, mode: int = 0o600) -> Path:
    """A sign-in file for the app (``--auth-file``), by default readable by its owner alone."""
    path = folder / "logins.txt"
    path.write_text(text)
    path.chmod(mode)
    return path


class Terminal(io.StringIO):
    """Text written to or read from a terminal, as far as ``isatty`` tells."""

    def isatty(self) -> bool:
        return True
