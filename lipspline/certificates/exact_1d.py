"""Exact Lipschitz constant of a network with one input: the test oracle.

f: R -> R^m is continuous and piecewise linear, and its l2 Lipschitz constant
is the largest ||df/dx||_2 over its linear pieces. The pieces are found by
propagating breakpoints: at layer k every pre-activation is linear between
consecutive breakpoints found so far (and on the two outer rays), so the
points where it crosses a kink of its activation (a spline knot, 0 for the
ReLU family, equality of a GroupSort pair) are solved in closed form and
added. The slope of each final piece is then read as the Jacobian at the
piece's midpoint (and beyond both ends), on a float64 copy: no finite
differences over tiny pieces. This is independent of the bounds' code path.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from lipspline.activations import GroupSort
from lipspline.splines import LinearSpline


def _kinks(module: nn.Module) -> np.ndarray | None:
    if isinstance(module, LinearSpline):
        return module.grid().numpy()
    if isinstance(module, GroupSort):
        return None
    return np.zeros(1)


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


def _pre_activations(net: nn.Module, x: torch.Tensor, depth: int) -> np.ndarray:
    h = net.standardize(x)
    for index in range(depth + 1):
        h = net.layers[index](h)
        if index < depth:
            h = net.activations[index](h)
    return h.numpy()


def exact_lipschitz_1d(network: nn.Module) -> float:
    """Exact l2 Lipschitz constant of ``network.forward`` for an MLP with a single input feature."""
    if int(network.n_features) != 1 or int(getattr(network, "n_conv", 0)):
        raise ValueError("the exact oracle needs an MLP with one input feature")
    net = copy.deepcopy(network).cpu().double().eval()
    xs = np.array([-1.0, 1.0])
    with torch.no_grad():
        for depth, module in enumerate(net.activations):
            # two extra points per side so that both rays have a defined slope
            probe = np.concatenate([[xs[0] - 2.0, xs[0] - 1.0], xs, [xs[-1] + 1.0, xs[-1] + 2.0]])
            z = _pre_activations(net, torch.from_numpy(probe[:, None]), depth)
            kinks = _kinks(module)
            found = [xs]
            for unit in range(z.shape[1]):
                if kinks is None:
                    if unit % 2 == 0:
                        found.append(_level_crossings(probe, z[:, unit] - z[:, unit + 1], np.zeros(1)))
                else:
                    found.append(_level_crossings(probe, z[:, unit], kinks))
            xs = np.unique(np.concatenate(found))
            if xs.size == 1:
                xs = np.array([xs[0] - 1.0, xs[0] + 1.0])
        mids = np.concatenate([[xs[0] - 1.0], 0.5 * (xs[:-1] + xs[1:]), [xs[-1] + 1.0]])
    x = torch.from_numpy(mids[:, None]).requires_grad_(True)
    out = net(x).reshape(len(mids), -1)
    grads = []
    for o in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, o].sum(), x, retain_graph=o + 1 < out.shape[1])
        grads.append(g[:, 0])
    slopes = torch.stack(grads, dim=1).detach().numpy()
    return float(np.linalg.norm(slopes, axis=1).max())
