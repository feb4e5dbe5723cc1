"""Image checks that make a result less trustworthy: too small, blurry, unlike the training data.

Reference statistics come from the training images and travel in the bundle, so the
"unlike the training images" check measures distance from what the model actually saw.
"""

from __future__ import annotations

import numpy as np

MIN_SIDE = 150  # px; below this a dermoscopic structure is a few pixels wide
MAX_ASPECT = 1.5  # the model sees the centre square: past 3:2 (HAM10000's are 4:3) much of the picture is left out
LOW_CONFIDENCE = 0.40  # top-class probability below which a result is marked uncertain


def features(images: np.ndarray) -> np.ndarray:
    """Per image: mean and std of R, G, B and log sharpness (Laplacian variance), (N, 7)."""
    x = np.asarray(images, dtype=np.float32)
    mean = x.mean(axis=(1, 2))
    std = x.std(axis=(1, 2))
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lap = (
        -4 * gray[:, 1:-1, 1:-1]
        + gray[:, :-2, 1:-1] + gray[:, 2:, 1:-1] + gray[:, 1:-1, :-2] + gray[:, 1:-1, 2:]
    )
    sharp = np.log1p(lap.var(axis=(1, 2)))
    return np.concatenate([mean, std, sharp[:, None]], axis=1)


def reference(images: np.ndarray) -> dict:
    """Statistics of training images for ``check``: feature mean/covariance and cut-offs."""
    f = features(images).astype(np.float64)
    mu, cov = f.mean(axis=0), np.cov(f, rowvar=False) + 1e-6 * np.eye(f.shape[1])
    inv = np.linalg.inv(cov)
    d = np.sqrt(np.einsum("ni,ij,nj->n", f - mu, inv, f - mu))
    return {
        "mean": mu.tolist(),
        "inv_cov": inv.tolist(),
        "distance_p99": float(np.percentile(d, 99.5)),  # the 99.5th percentile: the key predates it, in shipped bundles
        "sharpness_p01": float(np.percentile(f[:, -1], 1)),
    }


def check(images: np.ndarray, sizes: list[tuple[int, int]], ref: dict | None) -> list[list[str]]:
    """Warnings per image (empty list when nothing is wrong)."""
    out: list[list[str]] = [[] for _ in sizes]
    for w, (width, height) in zip(out, sizes):
        if min(width, height) < MIN_SIDE:
            w.append(f"very small ({width}x{height} px)")
        if max(width, height) > MAX_ASPECT * min(width, height):
            w.append(f"only the centre square was assessed ({width}x{height} px): crop the picture to the lesion")
    if ref:
        f = features(images).astype(np.float64)
        diff = f - np.asarray(ref["mean"])
        d = np.sqrt(np.einsum("ni,ij,nj->n", diff, np.asarray(ref["inv_cov"]), diff))
        for w, fi, di in zip(out, f, d):
            if fi[-1] < ref["sharpness_p01"]:
                w.append("very blurry")
            if di > ref["distance_p99"]:
                w.append("unlike the dermoscopy training images")
    return out
