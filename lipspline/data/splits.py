"""Train/validation splits that depend on the seed alone, so a resumed run sees the same split."""

from __future__ import annotations

import numpy as np


def train_validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random disjoint (train, validation) index arrays, each sorted, deterministic per seed.

    The validation size is ``round(n * fraction)`` but capped at ``n - 1`` so training always
    gets at least one sample; ``fraction == 0`` gives an empty validation set.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}.")
    n_val = min(int(round(n * fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)
