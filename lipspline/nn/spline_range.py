"""Where each spline layer's grid goes: the covering-range rule and the out-of-grid report.

A linear spline is learnable only on its grid ``[-R, R]``; past it, it continues with its
edge slopes. A grid that misses where the pre-activations are wastes knots on nothing, and a
grid far too wide leaves few knots where the data are. The old default (R = 2 for every layer,
whatever the data) does either depending on the dataset, the width and the depth.

The rule (``covering_ranges``): run the standardised training inputs through the freshly
initialised network and give activation layer l

    R_l = max(MIN_RANGE, MARGIN * quantile_Q(|pre-activations of layer l|))

over all its units and rows. Every initial spline shape (ReLU, leaky ReLU, identity, abs)
continues exactly past any grid, so the network computes the same function whatever grid it
was built with, and the measured pre-activations of layer l do not depend on the ranges
chosen for the layers before it. ``MARGIN`` leaves room for the pre-activations to grow
during training; ``MIN_RANGE`` keeps a near-silent layer from getting a grid too narrow to
be of use once its weights grow. ``spline.range`` or ``spline.layer_ranges`` override it.

After training, ``out_of_grid_fractions`` reports per layer the share of training
pre-activations outside the grid; above ``OUT_OF_GRID_WARNING`` the job result carries a
warning, since the spline is then a fixed linear function for that share of the data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lipspline.nn.networks import SplineNetwork
from lipspline.nn.splines import LinearSpline

#: the quantile of |pre-activation| the grid must cover, ...
COVERING_QUANTILE = 0.995
#: ... times this margin for growth during training, ...
MARGIN = 1.5
#: ... but at least this, and at most the schema's largest range
MIN_RANGE = 1.0
MAX_RANGE = 1e4
#: a layer with more than this share of its training pre-activations off the grid is reported
OUT_OF_GRID_WARNING = 0.10
#: rows used to measure (a uniform subsample beyond it; quantiles need no more)
MAX_ROWS = 20_000


def _rows(z: Tensor, seed: int = 0) -> Tensor:
    if z.shape[0] <= MAX_ROWS:
        return z
    pick = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(seed))[:MAX_ROWS]
    return z[pick.to(z.device)]


def _magnitude_quantile(values: Tensor, q: float) -> float:
    flat = values.detach().abs().flatten().double()
    if flat.numel() == 0:
        return 0.0
    if flat.numel() > 1_000_000:  # torch.quantile refuses very large inputs
        flat = flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
    return float(torch.quantile(flat.cpu(), q))


def covering_ranges(network: SplineNetwork, z: Tensor) -> list[float]:
    """One grid half-width per activation layer, covering the pre-activations of ``network`` on ``z``.

    ``z`` are standardised training inputs; ``network`` is freshly initialised.
    """
    ranges = []
    for values in network.pre_activations(_rows(z)):
        covered = MARGIN * _magnitude_quantile(values, COVERING_QUANTILE)
        ranges.append(float(min(MAX_RANGE, max(MIN_RANGE, covered))))
    return ranges


def out_of_grid_fractions(network: SplineNetwork, z: Tensor) -> list[float]:
    """Per spline layer, the share of pre-activations on ``z`` outside the layer's grid ``[-R, R]``."""
    fractions = []
    for activation, values in zip(network.activations, network.pre_activations(_rows(z)), strict=True):
        if isinstance(activation, LinearSpline) and values.numel():
            fractions.append(float((values.abs() > activation.grid_range).double().mean()))
    return fractions


def out_of_grid_warnings(fractions: list[float]) -> list[str]:
    """A sentence for every spline layer whose out-of-grid share exceeds ``OUT_OF_GRID_WARNING``."""
    return [
        f"spline layer {layer}: {100 * share:.1f} % of the training pre-activations fall outside the spline grid "
        f"(above {100 * OUT_OF_GRID_WARNING:.0f} %); the activation is a fixed linear function there. "
        "A larger spline.range (or leaving it unset, so it is chosen from the data) would cover them."
        for layer, share in enumerate(fractions)
        if share > OUT_OF_GRID_WARNING
    ]
