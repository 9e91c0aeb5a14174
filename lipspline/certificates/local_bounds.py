"""Local Lipschitz upper bounds in a ball B(x0, eps) (l2 or l-inf).

Inside the ball each pre-activation stays in an interval; a unit can then only
use the pieces of its activation that meet that interval, so its slope
interval shrinks (an inactive ReLU has slope exactly 0, a spline only the
slopes of the cells it can reach). The per-neuron and LipLT bounds of
global_bounds.py are recomputed with these narrower intervals. The ball is
convex, so for x, y in it the segment between them stays inside, and the
supremum of ||J_f|| over the ball bounds |f(x) - f(y)| / ||x - y||: the local
bound holds for every pair of points in the ball (l2 distances in both
spaces, whatever the ball's own norm).

Interval propagation is plain interval arithmetic in center/radius form
(c' = W m + b, r' = |W| rad), with the activation's exact range over each
interval (its values at the interval ends and at every kink inside). Each
interval is widened by a margin of 1e-9 (relative) + 1e-12 (absolute), far
above the float64 error of these few operations, so no reachable piece is
missed. The result is capped by the global certificate, so it never exceeds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from lipspline.activations import AbsoluteValue, GroupSort, LeakyReLU, PReLU, ReLU
from lipspline.certificates._fp import U
from lipspline.certificates.global_bounds import certify_global, folded_weights, liplt, per_neuron_scaled
from lipspline.certificates.structure import ActivationView, NetworkView, network_view
from lipspline.networks import SplineNetwork
from lipspline.splines import LinearSpline

RELATIVE_MARGIN = 1e-9
ABSOLUTE_MARGIN = 1e-12


@dataclass
class LocalCertificate:
    epsilon: float
    norm: str
    per_neuron_scaled: float
    liplt: float
    bound: float  # min of the local bounds and the global certificate

    def to_json(self) -> dict:
        return {
            "epsilon": self.epsilon,
            "ball_norm": self.norm,
            "bounds": {"per_neuron_scaled": self.per_neuron_scaled, "liplt": self.liplt},
            "lipschitz_bound": self.bound,
        }


def _kink_slopes(module) -> tuple[np.ndarray, np.ndarray]:
    """(left slope, right slope) around the single kink at 0 of a baseline activation."""
    if isinstance(module, ReLU):
        left = np.zeros(module.num_units)
    elif isinstance(module, LeakyReLU):
        left = np.full(module.num_units, 0.01)
    elif isinstance(module, PReLU):
        left = module.effective_slope().detach().double().numpy()
    elif isinstance(module, AbsoluteValue):
        left = -np.ones(module.num_units)
    else:  # pragma: no cover - every elementwise baseline is listed above
        raise TypeError(type(module).__name__)
    return left, np.ones_like(left)


def _spline_tables(spline: LinearSpline) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Knot positions, knot values (N, K) and cell slopes (N, K-1), float64."""
    grid = spline.grid().numpy()
    values = spline.effective_coefficients().detach().double().numpy()
    return grid, values, np.diff(values, axis=1) / spline.delta


def _spline_at(grid: np.ndarray, values: np.ndarray, slopes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Evaluate spline n at x[:, n] (vectorised, float64, linear continuation)."""
    delta = grid[1] - grid[0]
    cell = np.clip(np.floor((x - grid[0]) / delta), 0, grid.size - 2).astype(np.int64)
    units = np.arange(values.shape[0])[None, :]
    return values[units, cell] + slopes[units, cell] * (x - grid[cell])


def propagate(view: NetworkView, activation_modules, centers: np.ndarray, radii: np.ndarray):
    """Yield (layer index, lo, hi) of every activation layer's pre-activations (batched)."""
    lo_hi = []
    c, r = centers, radii
    for index, act in enumerate(view.activations):
        margin = RELATIVE_MARGIN * (np.abs(c) + r) + ABSOLUTE_MARGIN
        lo, hi = c - r - margin, c + r + margin
        lo_hi.append((lo, hi))
        out_lo, out_hi = _activation_range(act, activation_modules[index], lo, hi)
        mid, rad = (out_lo + out_hi) / 2, (out_hi - out_lo) / 2
        weight = view.weights[index + 1]
        c = mid @ weight.T + view.biases[index + 1]
        r = rad @ np.abs(weight).T
    return lo_hi


def _activation_range(act: ActivationView, module, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact range of each unit's activation over [lo, hi] (batched over rows)."""
    if isinstance(module, GroupSort):
        a_lo, b_lo = lo[:, 0::2], lo[:, 1::2]
        a_hi, b_hi = hi[:, 0::2], hi[:, 1::2]
        out_lo, out_hi = np.empty_like(lo), np.empty_like(hi)
        out_lo[:, 0::2], out_hi[:, 0::2] = np.maximum(a_lo, b_lo), np.maximum(a_hi, b_hi)
        out_lo[:, 1::2], out_hi[:, 1::2] = np.minimum(a_lo, b_lo), np.minimum(a_hi, b_hi)
        return out_lo, out_hi
    channel = act.channel_of_unit
    if isinstance(module, LinearSpline):
        grid, values, slopes = _spline_tables(module)
        values, slopes = values[channel], slopes[channel]
        candidates = [_spline_at(grid, values, slopes, lo), _spline_at(grid, values, slopes, hi)]
        knot_values = values[None, :, :]  # (1, N, K)
        inside = (grid[None, None, :] >= lo[:, :, None]) & (grid[None, None, :] <= hi[:, :, None])
        big = np.where(inside, knot_values, -np.inf).max(axis=2)
        small = np.where(inside, knot_values, np.inf).min(axis=2)
        out_lo = np.minimum(np.minimum(*candidates), small)
        out_hi = np.maximum(np.maximum(*candidates), big)
        return out_lo, out_hi
    left, right = (s[channel] for s in _kink_slopes(module))

    def value(x: np.ndarray) -> np.ndarray:
        return np.where(x >= 0, right * x, left * x)

    ends_lo, ends_hi = value(lo), value(hi)
    out_lo = np.minimum(ends_lo, ends_hi)
    out_hi = np.maximum(ends_lo, ends_hi)
    straddle = (lo < 0) & (hi > 0)
    out_lo = np.where(straddle, np.minimum(out_lo, 0.0), out_lo)
    out_hi = np.where(straddle, np.maximum(out_hi, 0.0), out_hi)
    return out_lo, out_hi


def _local_slopes(act: ActivationView, module, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope interval of each unit restricted to the pieces [lo, hi] meets (one input)."""
    if not act.elementwise:
        return act.slope_low, act.slope_high
    channel = act.channel_of_unit
    if isinstance(module, LinearSpline):
        grid, _, slopes = _spline_tables(module)
        slopes = slopes[channel]
        delta = grid[1] - grid[0]
        first = np.clip(np.floor((lo - grid[0]) / delta), 0, grid.size - 2)
        last = np.clip(np.floor((hi - grid[0]) / delta), 0, grid.size - 2)
        cells = np.arange(grid.size - 1)[None, :]
        reach = (cells >= first[:, None]) & (cells <= last[:, None])
        low = np.where(reach, slopes, np.inf).min(axis=1)
        high = np.where(reach, slopes, -np.inf).max(axis=1)
    else:
        left, right = (s[channel] for s in _kink_slopes(module))
        low = np.where(hi <= 0, left, np.where(lo >= 0, right, np.minimum(left, right)))
        high = np.where(hi <= 0, left, np.where(lo >= 0, right, np.maximum(left, right)))
    low = np.nextafter(low - 4 * U * np.abs(low), -np.inf)
    high = np.nextafter(high + 4 * U * np.abs(high), np.inf)
    return low, high


def local_bounds(
    network: SplineNetwork,
    inputs: np.ndarray | torch.Tensor,
    epsilon: float,
    norm: str = "l2",
    *,
    global_bound: float | None = None,
) -> list[LocalCertificate]:
    """One LocalCertificate per input row (raw input units, like the API)."""
    if norm not in ("l2", "linf"):
        raise ValueError("norm must be 'l2' or 'linf'")
    if not (epsilon >= 0 and math.isfinite(epsilon)):
        raise ValueError("epsilon must be a finite non-negative number")
    x = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
    view = network_view(network)
    if global_bound is None:
        global_bound = certify_global(network).certified
    first = view.weights[0]
    row_norms = np.linalg.norm(first, axis=1) if norm == "l2" else np.abs(first).sum(axis=1)
    centers = x @ first.T + view.biases[0]
    radii = np.broadcast_to(epsilon * row_norms * (1 + 1e-12), centers.shape)
    intervals = propagate(view, list(network.activations), centers, radii)
    weight_norms = [t.norm() for t in folded_weights(view)]
    certificates = []
    for row in range(x.shape[0]):
        local_acts = []
        for index, act in enumerate(view.activations):
            lo, hi = intervals[index][0][row], intervals[index][1][row]
            low, high = _local_slopes(act, network.activations[index], lo, hi)
            local_acts.append(replace(act, slope_low=low, slope_high=high))
        local_view = replace(view, activations=local_acts)
        scaled = per_neuron_scaled(local_view, weight_norms)
        loop = liplt(local_view, weight_norms)
        certificates.append(LocalCertificate(epsilon, norm, scaled, loop, min(scaled, loop, global_bound)))
    return certificates
