"""Throughput benchmark: ``python -m screening.bench [--json]``.

Inference and training images/s at 224x224, batch 32, for stock Keras MobileNet layers
and the project's (``screening.layers``), measured in the same process on the same
weights. A benchmark that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

import jax
import keras
import numpy as np

from screening.backend import use_training_flags
from screening.cli import described, nonneg_int, positive_int
from screening.inference import forward_fn
from screening.model import build_model, set_trainable


def _rate(step, images: int, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return images * repeats / (time.perf_counter() - start)


def setup_model(fast: bool, batch: int) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """A MobileNet (stock or project layers) with random weights and one fixed batch."""
    keras.utils.set_random_seed(0)
    model = build_model(None, fast=fast)  # random weights: speed does not depend on them
    x = np.random.default_rng(0).integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)
    y = np.eye(7, dtype="float32")[np.arange(batch) % 7]
    return model, x, y


def training_step(model: keras.Model, x: np.ndarray, y: np.ndarray, train_blocks: int) -> Callable[[], object]:
    """One compiled training step on a fixed batch, as ``model.fit`` runs it."""
    set_trainable(model, train_blocks)
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    return lambda: model.train_on_batch(x, y)


def measure(fast: bool, batch: int, repeats: int, train_blocks: int | None = 13) -> dict[str, float]:
    """Images/s for inference and (unless ``train_blocks`` is None) training."""
    model, x, y = setup_model(fast, batch)
    forward = forward_fn(model)
    infer = _rate(lambda: forward(x), batch, 2, repeats)
    if train_blocks is None:
        return {"infer": infer}
    train = _rate(training_step(model, x, y, train_blocks), batch, 2, max(2, repeats // 2))
    return {"infer": infer, "train": train}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m screening.bench", description=described(__doc__))
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--repeats", type=positive_int, default=6, help="timed batches (inference; half for training)")
    p.add_argument("--train-blocks", type=nonneg_int, default=13,
                   help="backbone blocks trained in the training measurement (13 = whole network)")
    args = p.parse_args(argv)
    use_training_flags()  # both implementations, as screening.train runs them
    stock = measure(False, args.batch_size, args.repeats, args.train_blocks)
    ours = measure(True, args.batch_size, args.repeats, args.train_blocks)
    result = {
        "infer_ips": round(ours["infer"], 2), "infer_ips_stock": round(stock["infer"], 2),
        "train_ips": round(ours["train"], 2), "train_ips_stock": round(stock["train"], 2),
        "batch_size": args.batch_size, "train_blocks": args.train_blocks,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} "
                   f"({jax.default_backend()}), keras {keras.__version__}",
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"MobileNet 1.0 @ 224x224, batch {args.batch_size}, {result['machine']}")
    print(f"{'':12}{'stock Keras':>14}{'screening':>12}{'ratio':>8}")
    for key, name in (("infer", "inference"), ("train", "training")):
        print(f"{name:12}{stock[key]:>10.1f} i/s{ours[key]:>8.1f} i/s{ours[key] / stock[key]:>7.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
