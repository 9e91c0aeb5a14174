"""The 1-D targets of paper 003's function-fitting experiment, built from their description.

All three are 1-Lipschitz on [-1, 1] and shifted to zero mean there:

* f1: piecewise linear with slopes +1 / -1 alternating, starting with +1 at
  x = -1 and flipping at 9 knots drawn uniformly on [-1, 1] (a fresh draw per
  seed, as the authors' code does: each model fits its own random function);
* f2: piecewise linear with slopes in {-1, 0, 1}: the slope starts at +1 and,
  at each of 9 uniform knots, moves to one of the two other values, chosen
  uniformly;
* f3: cos(7 pi x) / (7 pi), whose slope -sin(7 pi x) reaches +-1.

The piecewise-linear targets are stored by their breakpoints and values, so
evaluation is exact linear interpolation and the zero-mean shift uses the
exact integral (trapezoids are exact on linear pieces).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

N_KNOTS = 9


@dataclass(frozen=True)
class PiecewiseLinear:
    breakpoints: np.ndarray
    values: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(x, dtype=np.float64), self.breakpoints, self.values)

    @property
    def slopes(self) -> np.ndarray:
        return np.diff(self.values) / np.diff(self.breakpoints)


def _from_slopes(knots: np.ndarray, slopes: np.ndarray) -> PiecewiseLinear:
    """Integrate the slopes from x = -1, then remove the mean over [-1, 1]."""
    breakpoints = np.concatenate([[-1.0], np.sort(knots), [1.0]])
    values = np.concatenate([[0.0], np.cumsum(slopes * np.diff(breakpoints))])
    mean = float(np.sum(0.5 * (values[1:] + values[:-1]) * np.diff(breakpoints))) / 2.0
    return PiecewiseLinear(breakpoints, values - mean)


def alternating_slopes(seed: int, n_knots: int = N_KNOTS) -> PiecewiseLinear:
    """f1: slopes +1, -1, +1, ... changing at ``n_knots`` uniform random knots."""
    knots = np.random.default_rng(7_000 + seed).uniform(-1.0, 1.0, n_knots)
    slopes = np.array([(-1.0) ** i for i in range(n_knots + 1)])
    return _from_slopes(knots, slopes)


def three_slopes(seed: int, n_knots: int = N_KNOTS) -> PiecewiseLinear:
    """f2: slopes in {-1, 0, 1}; each knot moves the slope to one of the two other values."""
    rng = np.random.default_rng(8_000 + seed)
    knots = rng.uniform(-1.0, 1.0, n_knots)
    slopes = [1.0]
    for _ in range(n_knots):
        others = [s for s in (-1.0, 0.0, 1.0) if s != slopes[-1]]
        slopes.append(others[int(rng.integers(2))])
    return _from_slopes(knots, np.array(slopes))


def cosine(x: np.ndarray) -> np.ndarray:
    """f3 = cos(7 pi x) / (7 pi); its mean over [-1, 1] is already 0."""
    return np.cos(7.0 * math.pi * np.asarray(x, dtype=np.float64)) / (7.0 * math.pi)


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    make: Callable[[int], Callable[[np.ndarray], np.ndarray]]


TARGETS: tuple[Target, ...] = (
    Target("f1", "f1: slopes ±1, 9 random knots", alternating_slopes),
    Target("f2", "f2: slopes in {−1, 0, 1}, 9 random knots", three_slopes),
    Target("f3", "f3: cos(7πx)/(7π)", lambda _seed: cosine),
)
