"""What ``GET /v1/models/{id}/activations`` returns: each activation sampled per unit, its knots, and
the range its inputs took during training.

A learned spline is judged by its shape, where its active knots sit, and whether the data ever
reached the part of the curve that is drawn: a kink outside the pre-activation range of the
training data is one the model never used. So, per layer:

* ``x`` and ``y``: the curve of every unit sampled on one grid per layer (1.25 x that layer's spline range);
* ``knots`` (learnable splines only): the interior knot positions, each unit's value there, and
  which of them are *active* (derivative jump above the threshold the sparsity count uses);
* ``preactivation_range``: per unit, the smallest and largest input the activation received on
  the model's training rows (the job's own train/validation split of its dataset), or ``None``
  when the dataset has been deleted since.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lipspline.data import Dataset
from lipspline.data.splits import train_validation_split
from lipspline.nn.model import TrainedModel
from lipspline.nn.networks import UNRESOLVED_RANGE
from lipspline.nn.splines import LinearSpline

#: points per activation curve
CURVE_POINTS = 201
#: training rows the pre-activation ranges are measured on (the first ones of the training split):
#: enough to show where the data sits, cheap enough for a page view
RANGE_ROWS = 4096


def activation_curves(model: TrainedModel, dataset: Dataset | None) -> list[dict[str, Any]]:
    """One entry per activation layer of ``model`` (see the module docstring)."""
    network = model.network
    ranges = preactivation_ranges(model, dataset) if dataset is not None else None
    layers = []
    for index, activation in enumerate(network.activations):
        learnable = any(True for _ in activation.parameters())
        # fixed activations are the same for every unit: one curve says it all
        units = int(network.layers[index].weight.shape[0]) if learnable else 1
        entry: dict[str, Any] = {"layer": index, "kind": type(activation).__name__, "units": units,
                                 "learnable": learnable}
        # a quarter past each spline's own grid shows where it turns linear; fixed activations: [-2.5, 2.5]
        span = getattr(activation, "grid_range", UNRESOLVED_RANGE) * 1.25
        grid = torch.linspace(-span, span, CURVE_POINTS, dtype=torch.float32)
        if getattr(activation, "elementwise", True):
            with torch.no_grad():
                values = activation(grid[:, None].expand(CURVE_POINTS, units).contiguous())
            entry["x"] = grid.tolist()
            entry["y"] = values.T.tolist()
        else:
            entry["note"] = "not element-wise (sorts pairs of units); no per-unit curve"
        if isinstance(activation, LinearSpline):
            entry["knots"] = _knots(activation)
        entry["preactivation_range"] = _per_unit(ranges[index], units) if ranges is not None else None
        layers.append(entry)
    return layers


def _per_unit(measured: dict[str, list[float]] | None, units: int) -> dict[str, list[float]] | None:
    """The measured range, merged over all units when one curve stands for all of them (fixed activations)."""
    if measured is None or len(measured["min"]) == units:
        return measured
    return {"min": [min(measured["min"])], "max": [max(measured["max"])]}


def _knots(spline: LinearSpline) -> dict[str, Any]:
    positions = spline.relu_form().knots
    return {
        "x": positions.tolist(),
        "y": spline.values_at(positions).tolist(),  # (units, K-2): each unit's value at each knot
        "active": spline.active_knots().tolist(),
    }


def preactivation_ranges(model: TrainedModel, dataset: Dataset) -> list[dict[str, list[float]] | None]:
    """Per activation layer: ``{"min": [...], "max": [...]}`` per unit (channel) over the training rows.

    The rows are the job's training split (same seed and fraction as ``lipspline.training.loop``),
    standardised as the network does; the inputs of each activation are caught with forward hooks,
    so MLPs and CNNs (per channel) are handled alike. ``None`` for a layer if the dataset no
    longer matches the model (another width).
    """
    network = model.network
    if dataset.n_features != network.n_features:
        return [None] * len(network.activations)
    loop = model.config.training
    train_rows, _ = train_validation_split(dataset.n_samples, loop.validation_split, loop.seed)
    x = torch.from_numpy(np.ascontiguousarray(dataset.X[train_rows[:RANGE_ROWS]]))
    seen: dict[int, dict[str, list[float]]] = {}

    def recorder(index: int):
        def hook(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            values = inputs[0].detach().to(torch.float64)
            per_unit = values.transpose(0, 1).reshape(values.shape[1], -1)  # units (channels) first
            seen[index] = {"min": per_unit.min(dim=1).values.tolist(), "max": per_unit.max(dim=1).values.tolist()}

        return hook

    handles = [a.register_forward_pre_hook(recorder(i)) for i, a in enumerate(network.activations)]
    try:
        with torch.no_grad():
            network.forward_standardized(network.standardize(x))
    finally:
        for handle in handles:
            handle.remove()
    return [seen.get(i) for i in range(len(network.activations))]
