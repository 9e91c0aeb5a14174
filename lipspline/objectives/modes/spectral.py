"""Penalties on the spectral norms of the weights: ``lipschitz_coupled`` and ``layerwise_spectral``.

Both read the l2 operator norm of each affine layer's applied weight (exact for dense layers,
an upper bound for convolutions), so they penalise the same quantity the certificates bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lipspline.nn.layers import operator_norm_upper
from lipspline.objectives.strategy import ObjectiveStrategy, register_objective

if TYPE_CHECKING:
    from lipspline.objectives.strategy import SplineNetwork


@register_objective
class LipschitzCoupledObjective(ObjectiveStrategy):
    """``lipschitz_product`` = lambda * prod_l ||W_l||_2, the product bound on the Lipschitz constant.

    From Couellan, *The coupling effect of Lipschitz regularization in neural networks* (paper 002
    in docs/design.md#paper-numbers). The paper minimises (1/lambda) loss + prod; multiplying by
    lambda gives loss + lambda * prod, with the same minimisers and the data term on the same
    scale as in every other mode. Gradients flow through every factor, which is the coupling:
    shrinking one layer relaxes the pressure on the others.
    """

    name = "lipschitz_coupled"
    term_names = ("lipschitz_product",)

    def penalties(self, network: SplineNetwork, lambdas: Sequence[float]) -> dict[str, Tensor]:
        product = torch.ones((), device=network.layers[0].weight.device)
        for w in network.weights():
            product = product * operator_norm_upper(w)
        return {"lipschitz_product": self.config.lambda_ * product}


@register_objective
class LayerwiseSpectralObjective(ObjectiveStrategy):
    """``spectral_sum`` = lambda * sum_l ||W_l||_2: each layer penalised on its own, without coupling."""

    name = "layerwise_spectral"
    term_names = ("spectral_sum",)

    def penalties(self, network: SplineNetwork, lambdas: Sequence[float]) -> dict[str, Tensor]:
        return {"spectral_sum": self.config.lambda_ * sum(operator_norm_upper(w) for w in network.weights())}
