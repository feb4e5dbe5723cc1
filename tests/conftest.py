"""Shared fixtures and helpers: generated images and labelled folders, a HAM10000-shaped folder, a tiny
untrained bundle (and one with validation counts), the shared-data location."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from absl import logging as absl_logging
from PIL import Image

import screening  # noqa: F401  (selects the JAX backend before keras loads)
from screening.bundle import decision_digest

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


def labelled(tmp_path, dx: list[str], prefix: str = "I", suffix: str = ".png"):
    """An image folder of generated lesions and its ``image_id,dx`` CSV (``tmp_path/l.csv``)."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(len(dx)):
        Image.fromarray(lesion_like(seed=i)).save(images / f"{prefix}{i}{suffix}")
    pd.DataFrame({"image_id": [f"{prefix}{i}" for i in range(len(dx))], "dx": dx}).to_csv(tmp_path / "l.csv",
                                                                                          index=False)
    return images


def fake_ham(tmp_path: Path, dx: list[str], folders: dict, images_per_lesion: int = 1) -> Path:
    """A HAM10000-shaped folder: metadata for ``dx`` and small images in the folders given,
    each holding the images whose indices it lists."""
    data = tmp_path / "ham"
    rows = [f"L{i // images_per_lesion},ISIC_{i:07d},{d}" for i, d in enumerate(dx)]
    for folder, ids in folders.items():
        (data / folder).mkdir(parents=True)
        for i in ids:
            Image.fromarray(lesion_like(32, 32, i)).save(data / folder / f"ISIC_{i:07d}.jpg")
    (data / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n" + "\n".join(rows) + "\n")
    return data


def with_validation_mix(tiny_bundle, folder, malignant=20, benign=80):
    """The tiny bundle with validation counts (a malignant share of 20% by default) and figures,
    and figures on held-out images at its threshold."""
    shutil.copytree(tiny_bundle, folder)
    meta = json.loads((folder / "bundle.json").read_text())
    meta["metrics"] = {"validation": {"sensitivity": 0.91, "specificity": 0.7, "per_class": {
        "mel": {"support": malignant}, "nv": {"support": benign}}},
        "held_out": {"where": "HAM10000 images of its hold-out test split", "images": 1234, "sensitivity": 0.88,
                     "specificity": 0.75, "threshold": meta["threshold"], "tta": False}}
    meta["malignancy_scaling"] = [0.8, -0.5]
    meta["decision_sha256"] = decision_digest(meta)
    (folder / "bundle.json").write_text(json.dumps(meta))
    return folder


class Terminal(io.StringIO):
    """Text written to or read from a terminal, as far as ``isatty`` tells."""

    def isatty(self) -> bool:
        return True
