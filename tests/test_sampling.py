"""Class-balanced batches: each class equally likely, repeatable by (seed, epoch, batch)."""

import numpy as np

from screening.sampling import BalancedBatches


def test_every_class_fills_an_equal_share_of_the_batches():
    labels = np.repeat(np.arange(7), [6705, 1113, 1099, 514, 327, 142, 115])  # HAM10000's counts
    x = np.arange(len(labels))[:, None]
    batches = BalancedBatches(x, np.eye(7)[labels], labels, batch_size=64, seed=0)
    assert len(batches) == -(-len(labels) // 64)
    drawn = np.concatenate([labels[batches[i][0][:, 0]] for i in range(len(batches))])
    share = np.bincount(drawn, minlength=7) / len(drawn)
    assert np.all(np.abs(share - 1 / 7) < 0.012), share  # 1/7 = 0.143; 4 sd over 10,048 draws is 0.014
    xb, yb = batches[3]
    np.testing.assert_array_equal(yb, np.eye(7)[labels[xb[:, 0]]])  # images and labels stay paired


def test_a_resumed_epoch_draws_what_an_uninterrupted_run_would():
    labels = np.arange(100) % 7
    x = np.arange(100)[:, None]
    run = BalancedBatches(x, labels, labels, 16, seed=1)
    first = run[2][0]
    run.on_epoch_end()
    second = run[2][0]
    resumed = BalancedBatches(x, labels, labels, 16, seed=1, epoch=1)
    np.testing.assert_array_equal(resumed[2][0], second)
    assert not np.array_equal(first, second) and not np.array_equal(BalancedBatches(x, labels, labels, 16, 2)[2][0], first)
