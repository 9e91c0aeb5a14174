"""``maxnorm``: no penalty; a hard cap on each unit's incoming weights, restored after every step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from lipspline.objectives.strategy import ObjectiveStrategy, register_objective

if TYPE_CHECKING:
    from lipspline.objectives.strategy import SplineNetwork


@register_objective
class MaxNormObjective(ObjectiveStrategy):
    """Project each unit's incoming weight vector onto the ball ||w_n||_2 <= ``max_norm``.

    A projection rather than a penalty: the constraint holds exactly after every optimizer
    step instead of being traded against the data loss.
    """

    name = "maxnorm"

    @torch.no_grad()
    def after_step(self, network: SplineNetwork) -> None:
        limit = self.config.max_norm
        for layer in network.layers:
            rows = layer.weight.flatten(1)
            norms = rows.norm(dim=1, keepdim=True)
            factor = torch.clamp(limit / norms.clamp(min=1e-30), max=1.0)
            layer.weight.mul_(factor.view(-1, *([1] * (layer.weight.dim() - 1))))
