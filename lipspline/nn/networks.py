"""Networks built from a TrainingConfig: f = A_L o sigma_{L-1} o ... o sigma_1 o A_1.

The network owns its input standardisation and (for regression) its target
scaling as buffers, so ``forward`` is the map a client sees (raw input ->
returned output) and certificates bound exactly that map. Training uses
``forward_standardized`` on standardised data.

The last layer is affine with no learnable activation: a sigmoid or softmax
belongs to the loss, and the certified map ends at the logits.

What the objective demands of the architecture (1-Lipschitz layer classes, a
bound on activation slopes) is asked of the objective's strategy, so this
module never needs to know which modes exist.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from api_schemas import TrainingConfig
from lipspline.nn.activations import AbsoluteValue, GroupSort, LeakyReLU, PReLU, ReLU
from lipspline.nn.layers import effective_weight, operator_norm_upper
from lipspline.nn.splines import LinearSpline
from lipspline.objectives import objective_for

#: the grid a spline layer gets while ``spline.range`` is still automatic (unresolved). Training
#: resolves it from the data before it builds the network it trains (``lipspline.nn.spline_range``);
#: a network built unresolved (to count parameters, or to measure the pre-activations that choose
#: the range) computes the same function, because every initial shape continues linearly past
#: the grid with its edge slopes.
UNRESOLVED_RANGE = 2.0


def spline_range(config: TrainingConfig, layer: int) -> float:
    """The grid half-width of activation layer ``layer``: ``layer_ranges``, else ``range``, else unresolved."""
    spline = config.spline
    if spline.layer_ranges is not None:
        if layer >= len(spline.layer_ranges):
            raise ValueError(
                f"spline.layer_ranges has {len(spline.layer_ranges)} entries; the network has more activation layers"
            )
        return spline.layer_ranges[layer]
    return spline.range if spline.range is not None else UNRESOLVED_RANGE


def make_activation(config: TrainingConfig, num_units: int, layer: int = 0) -> nn.Module:
    """The activation layer named by the config, for ``num_units`` neurons or channels of layer ``layer``."""
    bound = objective_for(config.objective).activation_slope_bound
    name = config.architecture.activation
    if name == "deepspline":
        spline = config.spline
        return LinearSpline(num_units, spline.knots, spline_range(config, layer), spline.init, slope_bound=bound)
    if name == "relu":
        return ReLU(num_units)
    if name == "leaky_relu":
        return LeakyReLU(num_units)
    if name == "prelu":
        return PReLU(num_units, slope_bound=bound)
    if name == "abs":
        return AbsoluteValue(num_units)
    if name == "groupsort":
        return GroupSort(num_units)
    raise ValueError(f"unknown activation {name!r}")


class SplineNetwork(nn.Module):
    """An MLP or small CNN with learnable (or baseline) activations and built-in scaling."""

    def __init__(
        self,
        config: TrainingConfig,
        n_features: int,
        n_outputs: int,
        input_mean: Tensor | None = None,
        input_scale: Tensor | None = None,
        target_mean: float = 0.0,
        target_scale: float = 1.0,
    ) -> None:
        super().__init__()
        arch = config.architecture
        linear_cls, conv_cls = objective_for(config.objective).layer_classes()
        self.n_features = n_features
        self.n_outputs = n_outputs
        self.kind = arch.kind
        self.input_shape: tuple[int, int, int] | None = tuple(arch.input_shape) if arch.input_shape else None
        self.layers = nn.ModuleList()
        self.activations = nn.ModuleList()

        width = n_features
        if arch.kind == "cnn":
            channels, height, width_px = self.input_shape  # type: ignore[misc]
            if channels * height * width_px != n_features:
                raise ValueError(
                    f"architecture.input_shape {self.input_shape} holds {channels * height * width_px} values "
                    f"but the data has {n_features} features"
                )
            pad = arch.kernel_size // 2
            for out_channels in arch.conv_channels:
                self.layers.append(conv_cls(channels, out_channels, arch.kernel_size, arch.conv_stride, pad))
                self.activations.append(make_activation(config, out_channels, len(self.activations)))
                height = (height + 2 * pad - arch.kernel_size) // arch.conv_stride + 1
                width_px = (width_px + 2 * pad - arch.kernel_size) // arch.conv_stride + 1
                if height < 1 or width_px < 1:
                    raise ValueError("architecture: the convolutions shrink the image to nothing")
                channels = out_channels
            width = channels * height * width_px
        self.n_conv = len(self.layers)
        for hidden in arch.hidden:
            self.layers.append(linear_cls(width, hidden))
            self.activations.append(make_activation(config, hidden, len(self.activations)))
            width = hidden
        self.layers.append(linear_cls(width, n_outputs))
        layer_ranges = config.spline.layer_ranges
        if arch.activation == "deepspline" and layer_ranges is not None and len(layer_ranges) != len(self.activations):
            raise ValueError(
                f"spline.layer_ranges has {len(layer_ranges)} entries for {len(self.activations)} activation layers"
            )

        # The scaling is float64 and stays so (``_apply`` below): a raw feature like 1e6 + 1e-3 noise
        # must be standardised before anything is rounded to float32.
        f64 = torch.float64
        mean = torch.zeros(n_features, dtype=f64) if input_mean is None else torch.as_tensor(input_mean, dtype=f64)
        scale = torch.ones(n_features, dtype=f64) if input_scale is None else torch.as_tensor(input_scale, dtype=f64)
        self.register_buffer("input_mean", mean.clone())
        self.register_buffer("input_scale", scale.clone())
        self.register_buffer("target_mean", torch.tensor(float(target_mean), dtype=f64))
        self.register_buffer("target_scale", torch.tensor(float(target_scale), dtype=f64))

    _SCALING = ("input_mean", "input_scale", "target_mean", "target_scale")

    def _apply(self, fn, recurse=True):
        """``.float()``/``.half()`` convert parameters but never round the float64 scaling buffers."""
        kept = {name: getattr(self, name) for name in self._SCALING}
        super()._apply(fn, recurse)
        for name, before in kept.items():
            after = getattr(self, name)
            if after.dtype != torch.float64:
                self._buffers[name] = before.to(after.device)  # the float64 value from before the cast
        return self

    # ---- evaluation ---------------------------------------------------------------
    def standardize(self, x: Tensor) -> Tensor:
        """Raw inputs -> standardised inputs, computed in float64, returned in the parameters' dtype."""
        z = (x.to(torch.float64) - self.input_mean) / self.input_scale
        return z.to(self.layers[0].weight.dtype)

    def unscale_output(self, out: Tensor) -> Tensor:
        """Standardised outputs -> target units, in float64."""
        return out.to(torch.float64) * self.target_scale + self.target_mean

    def forward_standardized(self, z: Tensor) -> Tensor:
        """The trainable core: standardised inputs -> standardised outputs / logits."""
        h = z
        if self.n_conv:
            h = h.reshape(h.shape[0], *self.input_shape)  # type: ignore[misc]
        for index, layer in enumerate(self.layers):
            if index == self.n_conv and self.n_conv:
                h = h.flatten(1)
            h = layer(h)
            if index < len(self.activations):
                h = self.activations[index](h)
        return h

    def pre_activations(self, z: Tensor) -> list[Tensor]:
        """The input of every activation layer for standardised inputs ``z`` (no gradients kept)."""
        inputs = []
        h = z
        if self.n_conv:
            h = h.reshape(h.shape[0], *self.input_shape)  # type: ignore[misc]
        with torch.no_grad():
            for index, activation in enumerate(self.activations):
                if index == self.n_conv and self.n_conv:
                    h = h.flatten(1)
                h = self.layers[index](h)
                inputs.append(h)
                h = activation(h)
        return inputs

    def forward(self, x: Tensor) -> Tensor:
        """The map clients see: raw inputs -> outputs in target units (logits for classifiers)."""
        return self.unscale_output(self.forward_standardized(self.standardize(x)))

    # ---- structure views used by objectives and certificates ---------------------
    def weights(self) -> list[Tensor]:
        """The weight each affine layer really applies, in order (differentiable)."""
        return [effective_weight(layer) for layer in self.layers]

    def lipschitz_estimate(self) -> Tensor:
        """Differentiable upper bound of the standardised network's l2 Lipschitz constant.

        The product over layers of each affine map's operator norm (exact for dense weights,
        the tap-sum bound for convolutions) and each activation layer's largest slope. It is
        what the Lipschitz-margin loss scales its margin by at every step: the cheapest bound
        of the certificate family (the certificate itself is usually tighter, never looser,
        so a margin met under this bound is met under the certificate).
        """
        bound = torch.ones((), dtype=self.layers[0].weight.dtype, device=self.layers[0].weight.device)
        for index, weight in enumerate(self.weights()):
            bound = bound * operator_norm_upper(weight)
            if index < len(self.activations):
                bound = bound * activation_lipschitz(self.activations[index]).to(bound)
        return bound

    def splines(self) -> list[LinearSpline]:
        return [a for a in self.activations if isinstance(a, LinearSpline)]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def spline_parameters(self) -> list[nn.Parameter]:
        return [p for a in self.activations for p in a.parameters()]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]


def activation_lipschitz(activation: nn.Module) -> Tensor:
    """Largest slope of an activation layer; differentiable for learnable splines."""
    if isinstance(activation, LinearSpline):
        return (activation.effective_coefficients().diff(dim=1).abs().max() / activation.delta).clamp(min=0.0)
    return activation.lipschitz().max().to(torch.float32)


def output_width(task: str, n_classes: int | None) -> int:
    """One logit for binary classification and regression, one per class otherwise."""
    if task == "classification":
        if n_classes is None or n_classes < 2:
            raise ValueError("classification needs at least two classes")
        return 1 if n_classes == 2 else n_classes
    return 1
