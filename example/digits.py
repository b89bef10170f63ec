"""The real handwritten digits every example trains on, with no download.

scikit-learn ships the UCI handwritten digits set (1,797 8x8 grey images, pixel values
0..16). ``load_digits()`` scales them to [0, 1] and splits them 80/20 with a fixed shuffle, so
every example (and its test) sees the same train and test sets.
"""
from __future__ import annotations

import numpy as np


def load_digits(seed: int = 0):
    """``(train_x, train_y, test_x, test_y)``: float32 arrays of shape (n, 64) and (n,)."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError as err:          # the examples' one extra dependency
        raise SystemExit("the examples train on scikit-learn's digits: "
                         "pip install -e '.[examples]'") from err
    digits = sk_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.float32)
    order = np.random.RandomState(seed).permutation(len(x))
    split = int(0.8 * len(x))
    return x[order[:split]], y[order[:split]], x[order[split:]], y[order[split:]]
