"""Lower bounds on the Lipschitz constant (paper 004), reported beside every certificate.

- empirical: max over pairs of points of ||f(x) - f(y)|| / ||x - y||; any pair gives
  a true lower bound, so the maximum over sampled pairs is one too.
- Jacobian: max over points of sigma_max(J_f(x)). f is piecewise linear, so at a
  point where it is differentiable (almost every point) the Jacobian norm is
  approached by pairs arbitrarily close to x: a lower bound as well.
  Plain gradient ascent on ||J_f(x)|| does nothing for a piecewise-linear net
  (the Jacobian is constant on each piece, its gradient is zero), so the
  "ascent" here is a hill climb: random perturbations of the best points at
  shrinking scales, kept when they raise the Jacobian norm.

Both run on a float64 copy of the network, in raw input units.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from lipspline.networks import SplineNetwork


def _float64(network: SplineNetwork) -> SplineNetwork:
    return copy.deepcopy(network).cpu().double().eval()


def empirical_lower_bound(network: SplineNetwork, inputs, max_pairs: int = 4096, seed: int = 0) -> float:
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float64))
    if x.shape[0] < 2:
        return 0.0
    net = _float64(network)
    with torch.no_grad():
        out = net(x)
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    if n * (n - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        i = rng.integers(0, n, max_pairs)
        j = rng.integers(0, n, max_pairs)
        keep = i != j
        i, j = i[keep], j[keep]
    dx = torch.linalg.vector_norm(x[i] - x[j], dim=1)
    dy = torch.linalg.vector_norm(out[i] - out[j], dim=1)
    valid = dx > 0
    return float((dy[valid] / dx[valid]).max()) if bool(valid.any()) else 0.0


def jacobian_norms(network: SplineNetwork, points: torch.Tensor) -> torch.Tensor:
    """sigma_max of the Jacobian of the user-visible map at each point (float64 network)."""
    x = points.clone().requires_grad_(True)
    out = network(x)
    rows = []
    for o in range(out.shape[1]):
        (grad,) = torch.autograd.grad(out[:, o].sum(), x, retain_graph=o + 1 < out.shape[1])
        rows.append(grad)
    jac = torch.stack(rows, dim=1)  # (B, outputs, inputs)
    return torch.linalg.matrix_norm(jac, ord=2)


def jacobian_lower_bound(network: SplineNetwork, inputs, climb_steps: int = 20, seed: int = 0) -> float:
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float64))
    if x.shape[0] == 0:
        return 0.0
    net = _float64(network)
    generator = torch.Generator().manual_seed(seed)
    scale = x.std(dim=0, keepdim=True).clamp(min=1e-6) if x.shape[0] > 1 else torch.ones_like(x[:1])
    best_x = x.clone()
    best = jacobian_norms(net, best_x).detach()
    for step in range(climb_steps):
        spread = 0.5 * (0.7**step)
        trial = best_x + spread * scale * torch.randn(best_x.shape, generator=generator, dtype=torch.float64)
        value = jacobian_norms(net, trial).detach()
        better = value > best
        best = torch.where(better, value, best)
        best_x = torch.where(better[:, None], trial, best_x)
    return float(best.max())
