"""Lower bounds of the Lipschitz constant (paper 004), reported beside every certificate.

* empirical: ``max ||f(x) - f(y)|| / ||x - y||`` over pairs of data points; any
  pair is a witness, so the maximum over a subsample of pairs is a lower bound.
* Jacobian: ``max sigma_max(J_f(x))`` over points. f is piecewise linear, so at
  a point inside a linear piece the Jacobian is the slope of that piece and
  pairs inside the piece realise its norm. Points are jittered by a tiny
  random amount first so that none sits exactly on a kink (where autograd
  would mix one-sided derivatives of different units).
  Gradient ascent on ||J(x)|| itself is useless for a piecewise-linear map (its
  gradient is zero almost everywhere), so the "ascent" is a hill climb: each
  step moves every point along its top right singular vector and along a
  random direction at a shrinking scale, keeping the moves that raise the norm.

Both evaluate the served map (``served_map.py``), the very function the
endpoint computes and the certificates bound, never a re-built copy of the
network (a ``.double()`` copy would re-run the 1-Lipschitz normalisation and
the scaling in another dtype and measure a slightly different function).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lipspline.certificates.served_map import ServedMap


def _as_array(inputs: torch.Tensor | np.ndarray) -> np.ndarray:
    x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    x = x.astype(np.float64)
    return x.reshape(x.shape[0], -1) if x.ndim > 1 else x[:, None]


def served_map_of(network: nn.Module | ServedMap) -> ServedMap:
    return network if isinstance(network, ServedMap) else ServedMap(network)


def empirical_lower_bound(
    network: nn.Module | ServedMap, inputs: torch.Tensor | np.ndarray, max_pairs: int = 4096, seed: int = 0
) -> float:
    """Largest difference quotient of F over (a subsample of) the pairs of ``inputs``.

    The served outputs are F plus rounding of at most E per row, so each quotient is
    ``(||g(x) - g(y)|| - E(x) - E(y)) / ||x - y||``: a proven lower bound of F's constant,
    never one inflated by the evaluation's own rounding.
    """
    x = _as_array(inputs)
    n = x.shape[0]
    if n < 2:
        return 0.0
    served = served_map_of(network).evaluate(x)
    y, rounding = served.outputs.reshape(n, -1), served.rounding
    if n * (n - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, max_pairs)
        j = rng.integers(0, n, max_pairs)
        keep = i != j
        i, j = i[keep], j[keep]
    dx = np.linalg.norm(x[i] - x[j], axis=1)
    dy = np.linalg.norm(y[i] - y[j], axis=1) * (1 - 2.0**-50) - rounding[i] - rounding[j]
    # pairs closer than 1e-9 of the data scale are dominated by rounding: skip them
    scale = max(float(np.abs(x).max()), 1e-300)
    ok = dx > 1e-9 * scale
    return max(float((dy[ok] / dx[ok]).max()), 0.0) if ok.any() else 0.0


def jacobian_lower_bound(
    network: nn.Module | ServedMap, inputs: torch.Tensor | np.ndarray, ascent_steps: int = 20, seed: int = 0
) -> float:
    """Largest Jacobian spectral norm found at (jittered) data points and by a hill climb from them."""
    x = _as_array(inputs)
    if x.shape[0] == 0:
        return 0.0
    served = served_map_of(network)
    rng = np.random.default_rng(seed)
    spread = x.std(axis=0, keepdims=True) if x.shape[0] > 1 else np.ones_like(x[:1])
    spread = np.where(spread > 0, spread, np.maximum(np.abs(x).max(axis=0, keepdims=True), 1.0))
    x = x + 1e-9 * spread * rng.standard_normal(x.shape)
    best = _norms(served.jacobians(x))
    best_x = x
    scale = float(np.linalg.norm(spread)) / max(spread.shape[1], 1) ** 0.5
    for step in range(ascent_steps):
        size = 0.3 * (0.75**step)
        _, _, vh = np.linalg.svd(served.jacobians(best_x), full_matrices=False)
        direction = vh[:, 0, :]
        sign = 1.0 if step % 2 == 0 else -1.0
        noise = rng.standard_normal(best_x.shape)
        noise = noise / np.maximum(np.linalg.norm(noise, axis=1, keepdims=True), 1e-300)
        for move in (sign * direction, noise):
            trial = best_x + size * scale * move
            value = _norms(served.jacobians(trial))
            better = value > best
            best = np.where(better, value, best)
            best_x = np.where(better[:, None], trial, best_x)
    return float(best.max())


def _norms(jac: np.ndarray) -> np.ndarray:
    return np.linalg.norm(jac, ord=2, axis=(1, 2))
