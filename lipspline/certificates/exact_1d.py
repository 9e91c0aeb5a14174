"""Exact Lipschitz constant of a network with one input: the test oracle.

f: R -> R^m is continuous and piecewise linear, and its l2 Lipschitz constant
is the largest ||df/dx||_2 over its linear pieces. The pieces are found by
propagating breakpoints: at layer k every pre-activation is linear between
consecutive breakpoints found so far (and on the two outer rays), so the
points where it crosses a kink of its activation (a spline knot, 0 for the
ReLU family, equality of a GroupSort pair) are solved in closed form and
added. The slope of each final piece is then read as the Jacobian at the
piece's midpoint (and beyond both ends): no finite differences over tiny
pieces. It reads the served map (``served_map.py``), the function the endpoint
computes, and shares none of the bounds' norm or interval code.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from lipspline.certificates.served_map import ServedMap
from lipspline.certificates.view import GroupSortView


def _level_crossings(xs: np.ndarray, z: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Inputs where the piecewise-linear z (known at sorted xs, linear beyond) equals a level."""
    out = []
    za, zb, xa, xb = z[:-1], z[1:], xs[:-1], xs[1:]
    left_slope = (z[1] - z[0]) / (xs[1] - xs[0])
    right_slope = (z[-1] - z[-2]) / (xs[-1] - xs[-2])
    for level in levels:
        hit = (np.minimum(za, zb) < level) & (np.maximum(za, zb) > level)
        frac = (level - za[hit]) / (zb[hit] - za[hit])
        out.append(xa[hit] + frac * (xb[hit] - xa[hit]))
        if left_slope != 0:  # the ray left of xs[0]
            t = xs[0] + (level - z[0]) / left_slope
            if t < xs[0]:
                out.append(np.array([t]))
        if right_slope != 0:
            t = xs[-1] + (level - z[-1]) / right_slope
            if t > xs[-1]:
                out.append(np.array([t]))
        out.append(xs[z == level])
    return np.concatenate(out) if out else np.zeros(0)


def exact_lipschitz_1d(network: nn.Module | ServedMap) -> float:
    """Exact l2 Lipschitz constant of the served map of an MLP with a single input feature."""
    served = network if isinstance(network, ServedMap) else None
    if served is None:
        if int(network.n_features) != 1 or int(getattr(network, "n_conv", 0)):
            raise ValueError("the exact oracle needs an MLP with one input feature")
        served = ServedMap(network)
    if served.n_features != 1 or served.prefix_fold is not None:
        raise ValueError("the exact oracle needs an MLP with one input feature")
    centre = float(served.input_mean[0])
    xs = np.array([centre - 1.0, centre + 1.0])
    for depth, act in enumerate(served.activations):
        # two extra points per side so that both rays have a defined slope
        probe = np.concatenate([[xs[0] - 2.0, xs[0] - 1.0], xs, [xs[-1] + 1.0, xs[-1] + 2.0]])
        z = served.preactivations(probe[:, None])[depth]
        found = [xs]
        if isinstance(act.view, GroupSortView):
            first, second = act.view.pairs()
            for a, b in zip(first, second, strict=True):
                found.append(_level_crossings(probe, z[:, a] - z[:, b], np.zeros(1)))
        else:
            for unit in range(z.shape[1]):
                found.append(_level_crossings(probe, z[:, unit], act.view.t))
        xs = np.unique(np.concatenate(found))
        if xs.size == 1:
            xs = np.array([xs[0] - 1.0, xs[0] + 1.0])
    mids = np.concatenate([[xs[0] - 1.0], 0.5 * (xs[:-1] + xs[1:]), [xs[-1] + 1.0]])
    slopes = served.jacobians(mids[:, None])[:, :, 0]
    return float(np.linalg.norm(slopes, axis=1).max())
