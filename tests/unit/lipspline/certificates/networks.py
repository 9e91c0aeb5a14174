"""The random networks the certificate tests attack, built in one place.

Every certificate test file (and the ONNX export tests) needs networks drawn at random from a
seed: a ``SplineNetwork`` built from a ``TrainingConfig``, with random input standardisation and
target scaling, and weights, biases and spline coefficients moved away from their initial values
(non-monotone splines, slopes of both signs) so that the bounds have something to be wrong about.
Each file used to carry its own copy of that factory and of the activation list; they live here
now, and ``random_network`` is the one factory.

What differs between the files is *how* a network is drawn, and that is data: a ``Draw`` (which
parameters are redrawn or perturbed, by how much, from which random stream) and a ``Scaling``
(how the standardisation and target scaling are drawn). Everything random comes from the seed,
in a fixed order, so a seed always gives the same network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from api_schemas import TrainingConfig
from lipspline.nn.activations import PReLU
from lipspline.nn.networks import SplineNetwork

#: every activation kind a network can have
ACTIVATIONS: tuple[str, ...] = ("deepspline", "relu", "leaky_relu", "prelu", "abs", "groupsort")
#: the element-wise ones (GroupSort mixes pairs of units; the partition bounds take element-wise activations)
ELEMENTWISE_ACTIVATIONS: tuple[str, ...] = tuple(a for a in ACTIVATIONS if a != "groupsort")

#: relative slack when an upper bound is compared with a value evaluated in float64 (a lower bound,
#: the exact 1-D constant): both sides carry float64 rounding, far below 1e-9 of their size, while a
#: wrong bound misses by much more
REL = 1e-9


@dataclass(frozen=True)
class Uniform:
    """``low + width * U(0, 1)``, drawn from the factory's stream."""

    low: float
    width: float

    def draw(self, shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype) -> Tensor:
        return torch.rand(shape, generator=generator, dtype=dtype) * self.width + self.low


@dataclass(frozen=True)
class Scaling:
    """How ``random_network`` draws the input standardisation and target scaling (before it builds the net).

    A tensor or a number is used as given; ``input_mean=True`` draws N(0, 1) per feature, a
    ``Uniform`` draws from it (per feature for the input scale, once for the target scale).
    """

    input_mean: bool | Tensor = False
    input_scale: Uniform | Tensor | None = None
    target_mean: float = 0.0
    target_scale: float | Uniform = 1.0
    #: of the drawn input mean and scale (float64 gives scales that float32 cannot hold)
    dtype: torch.dtype = torch.float32
    #: draw the input mean before the input scale: it changes which network a seed gives, not the distribution
    mean_first: bool = False

    def draw(self, n_in: int, generator: torch.Generator) -> tuple[Tensor | None, Tensor | None, float, float]:
        """``(input_mean, input_scale, target_mean, target_scale)``, in the order the fields say."""
        mean: Tensor | None = None
        scale: Tensor | None = None
        if self.mean_first:
            mean = self._mean(n_in, generator)
        if isinstance(self.input_scale, Uniform):
            scale = self.input_scale.draw((n_in,), generator, self.dtype)
        elif self.input_scale is not None:
            scale = self.input_scale
        if not self.mean_first:
            mean = self._mean(n_in, generator)
        target_scale = self.target_scale
        if isinstance(target_scale, Uniform):
            target_scale = float(target_scale.draw((1,), generator, torch.float32))
        return mean, scale, self.target_mean, target_scale

    def _mean(self, n_in: int, generator: torch.Generator) -> Tensor | None:
        if isinstance(self.input_mean, Tensor):
            return self.input_mean
        return torch.randn(n_in, generator=generator, dtype=self.dtype) if self.input_mean else None


#: the identity scaling (raw inputs are the standardised inputs)
NO_SCALING = Scaling()
#: random standardisation and target scale: mean N(0, 1), scale U(0.3, 2.3) per feature, target scale U(0.2, 3.2)
RANDOM_SCALING = Scaling(input_mean=True, input_scale=Uniform(0.3, 2.0), target_scale=Uniform(0.2, 3.0))


@dataclass(frozen=True)
class Draw:
    """How ``random_network`` moves a freshly built network's parameters; each step runs when its field is set.

    In this order: ``weight_std`` redraws every parameter of the affine layers (weights and
    biases) as N(0, weight_std^2 / n), n the size of its last axis (the fan-in of a dense
    weight); per affine layer, ``weight_stretch`` multiplies the weight by
    1 + weight_stretch U(0, 1) and ``bias_std`` redraws the bias as N(0, bias_std^2); per
    activation parameter, ``slope_std`` redraws PReLU slopes as N(0, slope_std^2) and
    ``activation_noise`` adds N(0, activation_noise^2) to the others (spline coefficients, and
    PReLU slopes when ``slope_std`` is unset); last, ``parameter_noise`` adds
    N(0, parameter_noise^2) to every parameter.

    The stream: with ``one_stream`` the seed seeds torch's global generator (as
    ``torch.manual_seed``, which it leaves seeded) and the scaling, the initialisation and
    every draw come from it in turn; otherwise the draws come from a private generator
    seeded with the seed, and the initialisation from the global generator seeded with the
    seed inside a fork (its state is restored afterwards).
    """

    one_stream: bool = False
    weight_std: float | None = None
    weight_stretch: float | None = None
    bias_std: float | None = None
    slope_std: float | None = None
    activation_noise: float | None = None
    parameter_noise: float | None = None


#: the default: fresh affine parameters at the fan-in scale, non-monotone splines, PReLU slopes of both signs
REDRAW = Draw(weight_std=1.0, slope_std=1.0, activation_noise=0.5)
#: the initialisation with every parameter perturbed by N(0, 0.7^2)
JITTER = Draw(parameter_noise=0.7)


def stretched(strength: float, bias_std: float | None = None) -> Draw:
    """The initialised weights stretched by up to ``1 + strength``, activation parameters shifted by ``strength``.

    On one stream (the seed seeds torch's global generator).
    """
    return Draw(one_stream=True, weight_stretch=strength, bias_std=bias_std, activation_noise=strength)


def network_config(
    activation: str,
    hidden: Sequence[int],
    *,
    mode: str | None = None,
    knots: int = 9,
    spline_range: float | None = 2.0,
    architecture: Mapping[str, object] | None = None,
) -> TrainingConfig:
    """The config ``random_network`` builds: ``mode`` None keeps the default objective, ``spline_range`` None the
    automatic range, ``architecture`` adds keys (a CNN's); GroupSort's odd widths are rounded up (it pairs units)."""
    if activation == "groupsort":
        hidden = [w + (w % 2) for w in hidden]
    document: dict[str, object] = {
        "architecture": {"hidden": list(hidden), "activation": activation, **(architecture or {})},
        "spline": {"knots": knots} if spline_range is None else {"knots": knots, "range": spline_range},
    }
    if mode is not None:
        document["objective"] = {"mode": mode}
    return TrainingConfig.model_validate(document)


def random_network(
    activation: str,
    hidden: Sequence[int],
    *,
    n_in: int,
    n_out: int = 1,
    seed: int = 0,
    mode: str | None = None,
    knots: int = 9,
    spline_range: float | None = 2.0,
    architecture: Mapping[str, object] | None = None,
    scaling: Scaling = NO_SCALING,
    draw: Draw = REDRAW,
) -> SplineNetwork:
    """A random ``n_in -> hidden -> n_out`` network: built from ``network_config``, scaled by ``scaling``,
    its parameters moved by ``draw``, every random number from ``seed`` (see ``Draw`` for the streams)."""
    config = network_config(
        activation, hidden, mode=mode, knots=knots, spline_range=spline_range, architecture=architecture
    )
    if draw.one_stream:
        torch.manual_seed(seed)
        gen = torch.default_generator
    else:
        gen = torch.Generator().manual_seed(seed)
    mean, scale, target_mean, target_scale = scaling.draw(n_in, gen)

    def build() -> SplineNetwork:
        return SplineNetwork(
            config,
            n_in,
            n_out,
            input_mean=mean,
            input_scale=scale,
            target_mean=target_mean,
            target_scale=target_scale,
        )

    if draw.one_stream:
        net = build()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            net = build()

    def normal(shape: torch.Size) -> Tensor:
        return torch.randn(shape, generator=gen)

    with torch.no_grad():
        if draw.weight_std is not None:
            for p in net.weight_parameters():
                p.copy_(normal(p.shape) * draw.weight_std / max(p.shape[-1], 1) ** 0.5)
        if draw.weight_stretch is not None or draw.bias_std is not None:
            for layer in net.layers:
                if draw.weight_stretch is not None:
                    layer.weight.mul_(1 + draw.weight_stretch * torch.rand((), generator=gen))
                if draw.bias_std is not None and layer.bias is not None:
                    layer.bias.copy_(draw.bias_std * normal(layer.bias.shape))
        for activation_layer in net.activations:
            for p in activation_layer.parameters():
                if isinstance(activation_layer, PReLU) and draw.slope_std is not None:
                    p.copy_(draw.slope_std * normal(p.shape))
                elif draw.activation_noise is not None:
                    p.add_(draw.activation_noise * normal(p.shape))
        if draw.parameter_noise is not None:
            for p in net.parameters():
                p.add_(draw.parameter_noise * normal(p.shape))
    return net
