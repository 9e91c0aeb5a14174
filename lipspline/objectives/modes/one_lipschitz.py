"""``one_lipschitz``: a network that is 1-Lipschitz by construction, regularised by TV2.

From Ducotterd, Goujon, Bohra, Perdios, Neumayer, Unser, *Improving Lipschitz-Constrained
Neural Networks by Learning Activation Functions*. The constraint is structural, not a
penalty: every affine layer rescales its weight so ||W_l||_2 <= 1, every learnable activation
keeps its slopes in [-1, 1], and the data are scaled isotropically so the map a client is
served stays as Lipschitz as the network inside it. The only penalty is ``tv2`` = lambda *
the TV2 of all splines, which favours activations with few linear pieces.

How a dense layer keeps its norm while it trains is ``objective.one_lipschitz_layer``
(``lipspline.nn.layers``: spectral rescaling as in the paper, Björck orthonormalisation by
default, or AOL); a convolution's is ``objective.one_lipschitz_conv`` (AOL by default, or the
tap-sum rescaling); every kind is served with a proven norm <= 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from torch import Tensor

from lipspline.nn.layers import OneLipschitzConv2d, OneLipschitzLinear
from lipspline.nn.splines import weighted_norm_sum
from lipspline.objectives.strategy import LayerClasses, ObjectiveStrategy, register_objective

if TYPE_CHECKING:
    from lipspline.objectives.strategy import SplineNetwork


@register_objective
class OneLipschitzObjective(ObjectiveStrategy):
    """1-Lipschitz layers, slope-bounded activations, isotropic scaling and a TV2 penalty."""

    name = "one_lipschitz"
    term_names = ("tv2",)
    activation_slope_bound = 1.0
    isotropic_scaling = True
    lipschitz_by_construction = 1.0

    def layer_classes(self) -> LayerClasses:
        dense, conv = self.config.resolved_one_lipschitz_layer(), self.config.resolved_one_lipschitz_conv()
        return LayerClasses(linear=partial(OneLipschitzLinear, parametrization=dense),
                            conv=partial(OneLipschitzConv2d, parametrization=conv))

    def penalties(self, network: SplineNetwork, lambdas: Sequence[float]) -> dict[str, Tensor]:
        splines = network.splines()
        if not splines:
            return {}
        return {"tv2": weighted_norm_sum(splines, [self.config.lambda_] * len(splines), "tv2")}
