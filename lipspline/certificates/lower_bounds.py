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

Both run on a float64 copy of the network, on the user-visible map (raw inputs).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


def _as_array(inputs: torch.Tensor | np.ndarray) -> np.ndarray:
    x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    x = x.astype(np.float64)
    return x.reshape(x.shape[0], -1) if x.ndim > 1 else x[:, None]


def _double(network: nn.Module) -> nn.Module:
    return copy.deepcopy(network).cpu().double().eval()


def empirical_lower_bound(
    network: nn.Module, inputs: torch.Tensor | np.ndarray, max_pairs: int = 4096, seed: int = 0
) -> float:
    """Largest difference quotient over (a subsample of) the pairs of ``inputs``."""
    x = _as_array(inputs)
    n = x.shape[0]
    if n < 2:
        return 0.0
    net = _double(network)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy().reshape(n, -1)
    if n * (n - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, max_pairs)
        j = rng.integers(0, n, max_pairs)
        keep = i != j
        i, j = i[keep], j[keep]
    dx = np.linalg.norm(x[i] - x[j], axis=1)
    dy = np.linalg.norm(y[i] - y[j], axis=1)
    # pairs closer than 1e-9 of the data scale are dominated by rounding: skip them
    scale = max(float(np.abs(x).max()), 1e-300)
    ok = dx > 1e-9 * scale
    return float((dy[ok] / dx[ok]).max()) if ok.any() else 0.0


def jacobians(network: nn.Module, points: torch.Tensor) -> torch.Tensor:
    """Jacobians (B, outputs, inputs) of the map at each point, one backward pass per output."""
    x = points.detach().clone().requires_grad_(True)
    out = network(x).reshape(x.shape[0], -1)
    rows = []
    for o in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, o].sum(), x, retain_graph=o + 1 < out.shape[1])
        rows.append(g.reshape(x.shape[0], -1))
    return torch.stack(rows, dim=1)


def jacobian_lower_bound(
    network: nn.Module, inputs: torch.Tensor | np.ndarray, ascent_steps: int = 20, seed: int = 0
) -> float:
    """Largest Jacobian spectral norm found at (jittered) data points and by a hill climb from them."""
    x = torch.from_numpy(_as_array(inputs))
    if x.shape[0] == 0:
        return 0.0
    net = _double(network)
    gen = torch.Generator().manual_seed(seed)
    spread = x.std(dim=0, keepdim=True) if x.shape[0] > 1 else torch.ones_like(x)
    spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    x = x + 1e-9 * spread * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    jac = jacobians(net, x)
    best = torch.linalg.matrix_norm(jac, ord=2)
    best_x = x
    for step in range(ascent_steps):
        size = 0.3 * (0.75**step)
        _, _, vh = torch.linalg.svd(jacobians(net, best_x), full_matrices=False)
        direction = vh[:, 0, :]
        sign = 1.0 if step % 2 == 0 else -1.0
        noise = torch.randn(best_x.shape, generator=gen, dtype=torch.float64)
        noise = noise / noise.norm(dim=1, keepdim=True).clamp(min=1e-300)
        scale = spread.norm() / max(spread.shape[1], 1) ** 0.5
        for move in (sign * direction, noise):
            trial = best_x + size * scale * move
            value = torch.linalg.matrix_norm(jacobians(net, trial), ord=2)
            better = value > best
            best = torch.where(better, value, best)
            best_x = torch.where(better[:, None], trial, best_x)
    return float(best.max())
