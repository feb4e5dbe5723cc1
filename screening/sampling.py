"""Class-balanced batches for training: the other way than a class-weighted loss to keep the
rare diagnoses (115 dermatofibromas beside 6,705 naevi) from being drowned out."""

from __future__ import annotations

import keras
import numpy as np


class BalancedBatches(keras.utils.PyDataset):
    """Batches whose images are drawn with replacement, each class equally likely, so that
    every class fills about a seventh of every batch; as many batches an epoch as a plain pass
    over the images takes. Batch ``i`` depends on ``(seed, epoch, i)`` alone (``epoch`` counting
    the passes Keras starts, from the one given), so a run resumed at an epoch draws the batches
    an uninterrupted run would; give ``fit`` ``shuffle=False``, whose reordering would not be."""

    def __init__(self, x: np.ndarray, y: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                 epoch: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.seed, self.epoch = x, y, batch_size, seed, epoch
        counts = np.bincount(labels)
        weight = np.where(counts[labels] > 0, 1.0 / counts[labels], 0.0)
        self.p = weight / weight.sum()

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        rows = np.sort(rng.choice(len(self.x), self.batch_size, p=self.p))  # sorted: reads a memory map in order
        return np.asarray(self.x[rows]), self.y[rows]

    def on_epoch_end(self) -> None:
        self.epoch += 1
