"""Exact Lipschitz constant of a network with a 1-D input: the test oracle.

f: R -> R^m is piecewise linear; its l2 Lipschitz constant is the largest
||slope||_2 over its linear pieces. The pieces are found exactly: going layer
by layer, every pre-activation is linear between consecutive breakpoints
found so far, so the points where it crosses a kink of its activation (a
spline knot, 0 for ReLU-like units, equality of a GroupSort pair) are solved
for in closed form and added. After the last layer, f is linear between
consecutive breakpoints and its slope there is a finite difference.

Breakpoints are searched in [-SPAN, SPAN] (raw input units); the networks the
tests build have all their kinks far inside. Arithmetic is float64 on a
float64 copy, so the oracle is exact up to ~1e-12 relative.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from lipspline.activations import GroupSort
from lipspline.networks import SplineNetwork
from lipspline.splines import LinearSpline

SPAN = 1e4


def _kinks(module) -> np.ndarray | None:
    if isinstance(module, LinearSpline):
        return module.grid().numpy()
    if isinstance(module, GroupSort):
        return None
    return np.zeros(1)


def _crossings(xs: np.ndarray, z: np.ndarray, levels: np.ndarray) -> list[float]:
    """x where the piecewise-linear z (given at sorted xs) crosses any level."""
    found = []
    za, zb = z[:-1], z[1:]
    xa, xb = xs[:-1], xs[1:]
    for level in levels:
        hit = (np.minimum(za, zb) < level) & (np.maximum(za, zb) > level)
        t = (level - za[hit]) / (zb[hit] - za[hit])
        found.extend((xa[hit] + t * (xb[hit] - xa[hit])).tolist())
    return found


def exact_lipschitz_1d(network: SplineNetwork) -> float:
    if network.n_features != 1 or network.n_conv:
        raise ValueError("the exact oracle needs an MLP with a single input")
    net = copy.deepcopy(network).cpu().double().eval()
    xs = np.array([-SPAN, SPAN])
    with torch.no_grad():
        for depth in range(len(net.activations)):
            h = net.standardize(torch.as_tensor(xs[:, None]))
            for index in range(depth + 1):
                h = net.layers[index](h)
                if index < depth:
                    h = net.activations[index](h)
            z = h.numpy()  # pre-activations of layer `depth` at the breakpoints
            module = net.activations[depth]
            kinks = _kinks(module)
            new: list[float] = []
            for unit in range(z.shape[1]):
                if kinks is None:
                    if unit % 2 == 0:
                        new += _crossings(xs, z[:, unit] - z[:, unit + 1], np.zeros(1))
                else:
                    new += _crossings(xs, z[:, unit], kinks)
            xs = np.unique(np.concatenate([xs, np.array(new)]))
        out = net(torch.as_tensor(xs[:, None])).numpy()
    slopes = np.diff(out, axis=0) / np.diff(xs)[:, None]
    return float(np.linalg.norm(slopes, axis=1).max())
