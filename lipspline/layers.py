"""Affine layers and the operator norms the objectives and certificates share.

``operator_norm_upper`` is differentiable and used by the training penalties
(coupled / layer-wise spectral) and by the 1-Lipschitz layers. For a dense
layer it is the exact spectral norm (the largest singular value, through
``torch.linalg.matrix_norm``); for a convolution it is the sum over kernel taps
of each tap's spectral norm, a cheap bound that is always >= the true operator
norm (the convolution is a sum of shifted copies of each tap's matrix, and a
shift with zero padding has norm <= 1).

The exact SVD costs O(mn min(m, n)) per step; for the small networks the
Lipschitz-regularised objectives are meant for (paper 002's 3 x 20) this is
microseconds and, unlike a power iteration, it is stateless, deterministic and
exact, so penalties can be checked against a direct computation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: The 1-Lipschitz layers divide by (1 + margin) * ||V||: a float32 SVD can
#: underestimate the norm by a few ulps, and the margin absorbs that so the
#: stored weight has norm <= 1 in exact arithmetic (tests allow 1e-5).
ONE_LIPSCHITZ_MARGIN = 1e-6


def operator_norm_upper(weight: Tensor) -> Tensor:
    """Differentiable l2 operator norm (dense, exact) or upper bound (conv kernel)."""
    if weight.dim() == 2:
        return torch.linalg.matrix_norm(weight, ord=2)
    taps = weight.flatten(2).permute(2, 0, 1)  # (kh*kw, out, in)
    return torch.linalg.matrix_norm(taps, ord=2).sum()


def rescaled_to_unit_norm(weight: Tensor) -> Tensor:
    """V / max(1, (1 + margin) * ||V||): the weight a 1-Lipschitz layer applies."""
    norm = operator_norm_upper(weight) * (1 + ONE_LIPSCHITZ_MARGIN)
    return weight / torch.clamp(norm, min=1.0)


class OneLipschitzLinear(nn.Linear):
    """Dense layer whose weight is V / max(1, ||V||_2): its spectral norm never exceeds 1."""

    def effective_weight(self) -> Tensor:
        return rescaled_to_unit_norm(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.effective_weight(), self.bias)


class OneLipschitzConv2d(nn.Conv2d):
    """Convolution rescaled so the tap-sum bound of its operator norm is <= 1."""

    def effective_weight(self) -> Tensor:
        return rescaled_to_unit_norm(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


def effective_weight(layer: nn.Module) -> Tensor:
    """The weight a layer really applies (after any 1-Lipschitz rescaling)."""
    if hasattr(layer, "effective_weight"):
        return layer.effective_weight()
    return layer.weight
