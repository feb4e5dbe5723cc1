"""Keras' torch backend on the same MobileNet (stock layers), for comparison with screening.bench.

    pip install torch==2.13.0 && python benchmarks/torch_baseline.py

Not a project dependency: it runs plain Keras with KERAS_BACKEND=torch (it does not import
``screening``, which selects JAX) and prints inference and training images/s at 224x224,
batch 32, the setting of ``python -m screening.bench``: batch norm frozen (the project's
fine-tuning setting). Here the stem convolution trains too and there is no augmentation;
the project's step keeps the stem frozen and runs augmentation, so the two differ by a
little work each way.
"""

import os
import time

os.environ["KERAS_BACKEND"] = "torch"

import keras
import numpy as np
import torch


def rate(step, images, warmup=1, repeats=4):
    # The same timing loop as screening.bench._rate, repeated on purpose: importing
    # screening would select the JAX backend, and this script must run on torch.
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return images * repeats / (time.perf_counter() - start)


def main() -> int:
    base = keras.applications.MobileNet(input_shape=(224, 224, 3), include_top=False, weights=None, pooling="avg")
    model = keras.Sequential([keras.Input((224, 224, 3)), keras.layers.Rescaling(1 / 127.5, -1), base,
                              keras.layers.Dense(7)])
    x = np.random.default_rng(0).integers(0, 256, (32, 224, 224, 3)).astype("float32")
    y = np.eye(7, dtype="float32")[np.arange(32) % 7]
    with torch.no_grad():
        infer = rate(lambda: model(x, training=False), 32, 2, 6)
    for layer in base.layers:  # as screening.model.set_trainable: batch norm stays frozen
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    train = rate(lambda: model.train_on_batch(x, y), 32, 1, 3)
    print(f"Keras {keras.__version__} torch {torch.__version__} backend, MobileNet 1.0 @ 224, batch 32, "
          f"{torch.get_num_threads()} threads: inference {infer:.1f} images/s, training {train:.1f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
