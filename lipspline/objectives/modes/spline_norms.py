"""``bv2`` and ``tv2``: weight decay plus a sparsity-promoting norm on every learnable spline.

From Aziznejad, Gupta, Campos, Unser, *Deep Neural Networks With Trainable Activations and
Controlled Lipschitz Constant* (paper 000 in docs/design.md#paper-numbers). Both add
``weight_decay`` = mu * sum_l ||W_l||_F^2 and a spline term
sum_l lambda_l * outer_n ||sigma_{n,l}||, where ``outer`` is the sum over the neurons of
layer l (``l1``, the paper's eq. 20) or their Euclidean norm (``l2``). ``bv2`` uses the BV2
norm TV2 + |sigma(0)| + |sigma(1)|; ``tv2`` the TV2 seminorm alone. Weight decay belongs to
this pair only: the other modes carry just their own regulariser, as in their papers.

``auto_lambda`` applies the paper's Theorem 4 (at a local minimum lambda_l ||sigma_l||_{BV2,1}
= 2 mu_{l+1} ||W_{l+1}||_F^2): at the start of every epoch, from the current parameters, each
spline layer l gets lambda_l = 2 mu ||W_{l+1}||_F^2 / ||sigma_l|| (the mode's own norm), where
W_{l+1} is the affine layer reading layer l's output. The value is then held fixed for the
whole epoch, so each epoch optimises one well-defined objective; it is left unchanged when the
spline norm is ~0 (nothing to balance). Before the first epoch it equals ``objective.lambda``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from lipspline.nn.splines import LinearSpline, SplineNorm, weighted_norm_sum
from lipspline.objectives.strategy import ObjectiveStrategy, register_objective

if TYPE_CHECKING:
    from lipspline.objectives.strategy import SplineNetwork


class _SquaredNormSum(torch.autograd.Function):
    """sum_l ||W_l||_F^2 over several tensors as one autograd node (the weight decay).

    Composed as ``(w**2).sum()`` per layer, autograd writes a squared copy of every weight in the
    forward pass and a scaled copy in the backward pass: on the 784-256-256-10 net of
    ``bench/bench_splines.py`` that was about 0.5 ms of a 5 ms training step, timed alone. Here the
    forward is one dot product per weight (nothing written) and the backward one product per
    weight, ``2 g W``: about 0.28 ms for the same net. The value is the same sum of squares.
    """

    @staticmethod
    def forward(ctx, *weights: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(*weights)
        total = weights[0].new_zeros(())
        for w in weights:
            flat = w.reshape(-1)
            total = total + torch.dot(flat, flat)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        scale = 2.0 * grad
        wanted = zip(ctx.saved_tensors, ctx.needs_input_grad, strict=True)
        return tuple(w * scale if want else None for w, want in wanted)


def squared_norm_sum(weights: Sequence[Tensor]) -> Tensor:
    """sum_l ||weights[l]||_F^2, differentiable (the weight-decay term of ``bv2``/``tv2``)."""
    return _SquaredNormSum.apply(*weights)


def _outer(norms: Tensor, outer_norm: str) -> Tensor:
    return norms.sum() if outer_norm == "l1" else torch.sqrt((norms**2).sum() + 1e-30)


class _SplineNormObjective(ObjectiveStrategy):
    """The shared body of ``bv2``/``tv2``: they differ only in the per-spline norm."""

    norm: SplineNorm

    def spline_norms(self, spline: LinearSpline) -> Tensor:
        """The mode's norm of each of ``spline``'s neurons (differentiable)."""
        return spline.bv2_norm(differentiable=True) if self.norm == "bv2" else spline.tv2(differentiable=True)

    def penalties(self, network: SplineNetwork, lambdas: Sequence[float]) -> dict[str, Tensor]:
        cfg = self.config
        terms: dict[str, Tensor] = {"weight_decay": cfg.mu * squared_norm_sum(network.weights())}
        layers = [(lambdas[i], a) for i, a in enumerate(network.activations) if isinstance(a, LinearSpline)]
        if not layers:
            return terms
        if cfg.outer_norm == "l1":  # the paper's sum over neurons: one fused node for every layer
            weights, splines = zip(*layers, strict=True)
            terms[self.name] = weighted_norm_sum(list(splines), list(weights), self.norm)
        else:
            terms[self.name] = sum(weight * _outer(self.spline_norms(a), cfg.outer_norm) for weight, a in layers)
        return terms

    def on_epoch_start(self, network: SplineNetwork, lambdas: list[float]) -> None:
        if not self.config.auto_lambda:
            return
        weights = network.weights()
        for i, activation in enumerate(network.activations):
            if not isinstance(activation, LinearSpline):
                continue
            spline_norm = float(self.spline_norms(activation).sum())
            if spline_norm > 1e-12 and math.isfinite(spline_norm):
                next_weight = float((weights[i + 1] ** 2).sum())
                lambdas[i] = 2.0 * self.config.mu * next_weight / spline_norm


@register_objective
class BV2Objective(_SplineNormObjective):
    """Weight decay plus lambda-weighted BV2 norms of the splines."""

    name = "bv2"
    norm = "bv2"
    term_names = ("weight_decay", "bv2")


@register_objective
class TV2Objective(_SplineNormObjective):
    """Weight decay plus lambda-weighted TV2 seminorms of the splines."""

    name = "tv2"
    norm = "tv2"
    term_names = ("weight_decay", "tv2")
