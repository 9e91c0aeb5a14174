"""A float64 view of a network as the map clients see: raw input -> output.

Certificates need the affine layers as matrices and each activation layer as
per-unit slope intervals. Here the input standardisation is folded into the
first layer (W_1 diag(1/scale), bias shifted by the mean) and the target
scaling into the last (target_scale * W_L), so every bound below is a bound on
exactly the function the API serves. Convolutions are turned into their dense
matrices (applying the convolution to the identity basis is exact: each output
entry is a single weight times 1), which is what lets every bound apply to the
CNN variant; a size limit keeps that honest for small images only.

What is certified is the function defined by the stored parameters in exact
real arithmetic; folding and slopes are computed in float64 and their rounding
is covered by ``_fp.vector_up`` / ``fold_error`` margins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lipspline.certificates._fp import U
from lipspline.networks import SplineNetwork
from lipspline.splines import LinearSpline

#: dense matrices of convolutions above this many entries are refused
MAX_DENSE_ENTRIES = 64 * 1024 * 1024


class CertificateError(ValueError):
    """A network this module cannot certify (e.g. a convolution too large to expand)."""


@dataclass
class ActivationView:
    """One activation layer, unit by unit (conv channels expanded over positions)."""

    module: nn.Module
    elementwise: bool
    slope_low: np.ndarray
    slope_high: np.ndarray
    channel_of_unit: np.ndarray
    bv2: np.ndarray | None  # per-unit BV2 norm of the activation (None: not an elementwise function)

    @property
    def lipschitz(self) -> np.ndarray:
        return np.maximum(np.abs(self.slope_low), np.abs(self.slope_high))


@dataclass
class NetworkView:
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activations: list[ActivationView]
    #: relative error bound of each folded weight matrix's entries
    fold_error: list[float]

    @property
    def n_hidden_units(self) -> int:
        return sum(w.shape[0] for w in self.weights[:-1])


def _dense_conv(layer: nn.Conv2d, weight: torch.Tensor, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    channels, height, width = shape
    n_in = channels * height * width
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, channels, height, width)
    with torch.no_grad():
        out = nn.functional.conv2d(basis, weight.double(), None, layer.stride, layer.padding)
    n_out = out[0].numel()
    if n_in * n_out > MAX_DENSE_ENTRIES:
        raise CertificateError(f"convolution too large to certify exactly ({n_out}x{n_in} matrix)")
    bias = layer.bias.detach().double().repeat_interleave(out.shape[2] * out.shape[3]).numpy()
    return out.reshape(n_in, n_out).T.numpy().copy(), bias


def _baseline_bv2(module: nn.Module, low: np.ndarray, high: np.ndarray) -> np.ndarray | None:
    """BV2 norms of the fixed activations: TV2 (= total slope jump) + |s(0)| + |s(1)|."""
    name = type(module).__name__
    if name in ("ReLU", "LeakyReLU", "PReLU"):
        # slopes {a, 1} with one kink at 0: TV2 = |1 - a| = high - low, s(0) = 0, s(1) = 1
        return (high - low) + 1.0
    if name == "AbsoluteValue":
        return np.full_like(low, 3.0)
    return None


def _activation_view(module: nn.Module, units_per_channel: int) -> ActivationView:
    low, high = (t.detach().double().cpu().numpy() for t in module.slope_interval())
    bv2 = module.bv2_norm().numpy() if isinstance(module, LinearSpline) else _baseline_bv2(module, low, high)
    # slopes of splines are (c_{k+1} - c_k) / Delta in float64: widen by a few ulps
    low = np.nextafter(low - 4 * U * np.abs(low), -np.inf)
    high = np.nextafter(high + 4 * U * np.abs(high), np.inf)
    if bv2 is not None:
        bv2 = np.nextafter(bv2 * (1 + 64 * U), np.inf)
    channel = np.repeat(np.arange(low.shape[0]), units_per_channel)
    expand = (lambda a: np.repeat(a, units_per_channel)) if units_per_channel > 1 else (lambda a: a)
    return ActivationView(
        module=module,
        elementwise=bool(getattr(module, "elementwise", False)),
        slope_low=expand(low),
        slope_high=expand(high),
        channel_of_unit=channel,
        bv2=None if bv2 is None else expand(bv2),
    )


def network_view(network: SplineNetwork) -> NetworkView:
    """Matrices, biases and activation views of the user-visible map."""
    network = network.cpu()
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    activations: list[ActivationView] = []
    shape = network.input_shape
    effective = [w.detach() for w in network.weights()]
    for index, layer in enumerate(network.layers):
        if index < network.n_conv:
            assert shape is not None
            matrix, bias = _dense_conv(layer, effective[index], shape)
            out_channels = layer.out_channels
            spatial = matrix.shape[0] // out_channels
            side_h = (shape[1] + 2 * layer.padding[0] - layer.kernel_size[0]) // layer.stride[0] + 1
            shape = (out_channels, side_h, spatial // side_h)
            units_per_channel = spatial
        else:
            matrix = effective[index].double().numpy().copy()
            bias = layer.bias.detach().double().numpy().copy()
            units_per_channel = 1
        weights.append(matrix)
        biases.append(bias)
        if index < len(network.activations):
            activations.append(_activation_view(network.activations[index], units_per_channel))
    fold_error = [0.0] * len(weights)
    mean = network.input_mean.detach().double().numpy()
    scale = network.input_scale.detach().double().numpy()
    biases[0] = biases[0] - weights[0] @ (mean / scale)
    weights[0] = weights[0] / scale[None, :]
    fold_error[0] = 2 * U
    target_scale = float(network.target_scale)
    if target_scale != 1.0:
        weights[-1] = weights[-1] * target_scale
        fold_error[-1] += 2 * U
    biases[-1] = biases[-1] * target_scale + float(network.target_mean)
    return NetworkView(weights=weights, biases=biases, activations=activations, fold_error=fold_error)
