"""Synthetic data with a known answer, for tests, benchmarks and the paper recipes."""

from __future__ import annotations

import numpy as np

from lipspline.data.dataset import Dataset


def make_circle(n_samples: int = 1000, *, seed: int = 0) -> Dataset:
    """The 2-D circle benchmark of Aziznejad, Gupta, Campos, Unser, *Deep Neural Networks With
    Trainable Activations and Controlled Lipschitz Constant* (paper 000 in docs/design.md#paper-numbers).

    Points are uniform in ``[-1, 1]^2``; the label is 1 iff ``x1^2 + x2^2 <= 2/pi``. That disc
    has area ``pi * 2/pi = 2``, half the square's area 4, so the classes are balanced.
    ``classes`` is always ``[0, 1]`` (even if a tiny sample misses one) because the task is known.
    """
    if not isinstance(n_samples, int | np.integer) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(int(n_samples), 2))
    y = (np.sum(X**2, axis=1) <= 2.0 / np.pi).astype(np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return Dataset(X=X, y=y, task="classification", feature_names=["x1", "x2"], classes=[0, 1], name="circle")
