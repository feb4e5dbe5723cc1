"""The one inference path: load a bundle, score arrays or files in batches.

Batch mode, the UI, evaluation and training's final validation all call ``Screener``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import keras
import numpy as np

from screening import quality
from screening.bundle import BundleError, load_bundle
from screening.calibration import prevalence_shift, shifted
from screening.info import CLASS_CODES, CLASS_NAMES
from screening.metrics import IDENTITY, malignancy, softmax
from screening.preprocessing import ImageError, ImageSource, open_image, preprocess

DEFAULT_MODEL = Path(__file__).parent / "models" / "default"


@dataclass
class Result:
    """One scored image. ``error`` is set (and the scores are empty) when it could not be read."""

    source: str
    probabilities: dict[str, float] = field(default_factory=dict)
    malignancy_probability: float = float("nan")
    refer: bool = False
    width: int = 0
    height: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def predicted_class(self) -> str:
        return max(self.probabilities, key=self.probabilities.get) if self.ok else ""

    @property
    def predicted_label(self) -> str:
        return CLASS_NAMES.get(self.predicted_class, "")

    @property
    def confidence(self) -> float:
        return max(self.probabilities.values()) if self.ok else float("nan")


def default_model_path() -> Path:
    if not (DEFAULT_MODEL / "bundle.json").is_file():
        raise BundleError(f"no default model is installed at {DEFAULT_MODEL}; pass a model path")
    return DEFAULT_MODEL


def forward_fn(model: keras.Model, tta: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Logits of the model's current weights, compiled once per input shape.

    Weights are arguments, not constants, so training can call it after every epoch
    without recompiling. TTA averages the logits of the four flipped views.
    """

    @jax.jit
    def run(tv, ntv, x):
        x = jnp.asarray(x, jnp.float32)
        views = (x, x[:, :, ::-1], x[:, ::-1], x[:, ::-1, ::-1]) if tta else (x,)
        total = sum(model.stateless_call(tv, ntv, v, training=False)[0] for v in views)
        return total / len(views)

    def call(x: np.ndarray) -> np.ndarray:
        tv = [v.value for v in model.trainable_variables]
        ntv = [v.value for v in model.non_trainable_variables]
        return np.asarray(run(tv, ntv, x))

    return call


def batched_logits(forward: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits for ``(N, 224, 224, 3)`` uint8 images in fixed-size (padded) batches: one compile."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start : start + batch_size])
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - n, *batch.shape[1:]), batch.dtype)])
        out.append(forward(batch)[:n])
    return np.concatenate(out) if out else np.zeros((0, len(CLASS_CODES)), np.float32)


class Screener:
    """Scores dermoscopy images with a calibrated model bundle.

    ``threshold`` (on the scaled malignancy probability, as the model card lists them) and
    ``tta`` default to the bundle's values. ``prevalence``, the share of malignant lesions where
    the model is used, converts the malignancy probability (and the threshold with it, so no flag
    changes) from the share its validation images had.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        threshold: float | None = None,
        tta: bool | None = None,
        batch_size: int = 32,
        prevalence: float | None = None,
    ) -> None:
        self.path = Path(model) if model is not None else default_model_path()
        self.model, self.meta = load_bundle(self.path)
        self.temperature = float(self.meta.get("temperature", 1.0))
        self.base_threshold = float(self.meta.get("threshold", 0.5) if threshold is None else threshold)
        if not 0.0 <= self.base_threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.base_threshold}")
        self.calibrated_share = calibrated_share(self.meta)
        self.prevalence = prevalence
        shift = 0.0
        if prevalence is not None:
            if not 0.0 < prevalence < 1.0:
                raise ValueError(f"prevalence must be between 0 and 1, exclusive, got {prevalence}")
            if self.calibrated_share is None:
                raise BundleError(f"{self.path}: the model does not record the share of malignant lesions it was "
                                  "calibrated at, so --prevalence cannot convert its probabilities")
            shift = prevalence_shift(prevalence, self.calibrated_share)
        a, b = map(float, self.meta.get("malignancy_scaling", IDENTITY))
        self.scaling = (a, b + shift)
        self.threshold = shifted(self.base_threshold, shift)
        self.tta = bool(self.meta.get("tta", False) if tta is None else tta)
        self.batch_size = batch_size
        self._forward = forward_fn(self.model, self.tta)

    @property
    def held_out(self) -> dict | None:
        """What the threshold in use did on images not used to train the model or choose the
        threshold (``metrics.held_out``: sensitivity, specificity, images, where); None for
        another threshold or TTA setting than the one measured, or a bundle without the figures.
        The validation split's figures are never shown instead: the threshold was fitted on them."""
        h = self.meta.get("metrics", {}).get("held_out")
        if not h or h.get("threshold") != float(self.meta.get("threshold", 0.5)) or \
                self.base_threshold != h["threshold"] or self.tta != bool(h.get("tta", False)):
            return None
        return h

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) logits for ``(N, 224, 224, 3)`` uint8 images."""
        return batched_logits(self._forward, images, self.batch_size)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, ``(N, 7)``."""
        return softmax(self.logits(images), self.temperature)

    def score_arrays(self, images: np.ndarray, sizes: Sequence[tuple[int, int]], names: Sequence[str]) -> list[Result]:
        probs = self.probabilities(images)
        mal = malignancy(probs, self.scaling)
        checks = quality.check(images, list(sizes), self.meta.get("quality"))
        results = []
        for name, p, m, (w, h), warn in zip(names, probs, mal, sizes, checks):
            if p.max() < quality.LOW_CONFIDENCE:
                warn.append("unusually low confidence")
            results.append(
                Result(
                    source=name,
                    probabilities={c: float(v) for c, v in zip(CLASS_CODES, p)},
                    malignancy_probability=float(m),
                    refer=bool(m >= self.threshold),
                    width=w,
                    height=h,
                    warnings=warn,
                )
            )
        return results

    def score(
        self, sources: Iterable[ImageSource], workers: int = 4, names: Iterable[str] | None = None
    ) -> Iterator[Result]:
        """Score images in input order; decoding of the next batch overlaps inference."""
        sources = list(sources)
        names = [str(n) for n in names] if names is not None else [_name(s, i) for i, s in enumerate(sources)]
        chunks = [range(i, min(i + self.batch_size, len(sources))) for i in range(0, len(sources), self.batch_size)]
        with ThreadPoolExecutor(max(1, workers)) as pool:
            pending: list[list[Future]] = []
            for k in range(len(chunks) + 1):
                if k < len(chunks):  # queue decoding one batch ahead
                    pending.append([pool.submit(_decode, sources[i]) for i in chunks[k]])
                if k >= 1:
                    yield from self._finish(chunks[k - 1], pending.pop(0), names)

    def _finish(self, idx: range, futures: list[Future], names: list[str]) -> list[Result]:
        decoded = [f.result() for f in futures]
        good = [j for j, d in enumerate(decoded) if not isinstance(d, str)]
        scored = (
            self.score_arrays(
                np.stack([decoded[j][0] for j in good]),
                [decoded[j][1] for j in good],
                [names[idx[j]] for j in good],
            )
            if good
            else []
        )
        by_pos = dict(zip(good, scored))
        return [by_pos.get(j) or Result(source=names[idx[j]], error=decoded[j]) for j in range(len(idx))]


def calibrated_share(meta: dict) -> float | None:
    """The share of malignant lesions among the validation images the malignancy probability
    was calibrated on (from the bundle's per-class counts), or None where it does not say."""
    v = meta.get("metrics", {}).get("validation", {})
    counts = {c: m.get("support", 0) for c, m in v.get("per_class", {}).items()}
    total = sum(counts.values())
    malignant = sum(counts.get(c, 0) for c in meta.get("malignant", ()))
    return malignant / total if total and 0 < malignant < total else None


def _decode(source: ImageSource) -> tuple[np.ndarray, tuple[int, int]] | str:
    """(array, (width, height)) or the error message."""
    try:
        img = open_image(source)
        return preprocess(img), img.info["source_size"]
    except ImageError as err:  # the row already names the file
        return str(err).removeprefix(f"{source}: ")
    except Exception as err:  # noqa: BLE001  a decoder bug in one file must not end a run of thousands
        return f"could not read image ({type(err).__name__}: {err})"


def _name(source: ImageSource, i: int) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"image {i + 1}"
