"""Baseline activations, each able to report what certificates need.

Certificates treat an activation layer as a diagonal Jacobian whose entries
stay in a per-unit slope interval ``[a_n, b_n]`` (``elementwise = True``), or,
for GroupSort, as a 1-Lipschitz map that is not diagonal (``elementwise =
False``): its Jacobian is a permutation, so only norm-based bounds apply.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lipspline.nn.splines import LEAKY_SLOPE

__all__ = ["LEAKY_SLOPE", "AbsoluteValue", "GroupSort", "LeakyReLU", "PReLU", "ReLU", "is_elementwise"]


class _Elementwise(nn.Module):
    elementwise = True

    def __init__(self, num_units: int) -> None:
        super().__init__()
        self.num_units = num_units

    def _constant_interval(self, low: float, high: float) -> tuple[Tensor, Tensor]:
        shape = (self.num_units,)
        return torch.full(shape, low, dtype=torch.float64), torch.full(shape, high, dtype=torch.float64)

    def lipschitz(self) -> Tensor:
        low, high = self.slope_interval()
        return torch.maximum(low.abs(), high.abs())

    def slope_interval(self) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class ReLU(_Elementwise):
    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x)

    def slope_interval(self) -> tuple[Tensor, Tensor]:
        return self._constant_interval(0.0, 1.0)


class LeakyReLU(_Elementwise):
    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.leaky_relu(x, LEAKY_SLOPE)

    def slope_interval(self) -> tuple[Tensor, Tensor]:
        return self._constant_interval(LEAKY_SLOPE, 1.0)


class AbsoluteValue(_Elementwise):
    def forward(self, x: Tensor) -> Tensor:
        return x.abs()

    def slope_interval(self) -> tuple[Tensor, Tensor]:
        return self._constant_interval(-1.0, 1.0)


class PReLU(_Elementwise):
    """PReLU with one learnable negative slope per unit (per channel for conv).

    ``slope_bound`` clips the learned slope inside the forward pass (the
    1-Lipschitz mode), so the function used is always within the bound.
    """

    def __init__(self, num_units: int, init: float = 0.25, slope_bound: float | None = None) -> None:
        super().__init__(num_units)
        self.negative_slope = nn.Parameter(torch.full((num_units,), init))
        self.slope_bound = slope_bound

    def effective_slope(self) -> Tensor:
        a = self.negative_slope
        return a if self.slope_bound is None else a.clamp(-self.slope_bound, self.slope_bound)

    def forward(self, x: Tensor) -> Tensor:
        shape = [1] * x.dim()
        shape[1] = self.num_units
        a = self.effective_slope().view(shape).to(x.dtype)
        return torch.where(x >= 0, x, a * x)

    def slope_interval(self) -> tuple[Tensor, Tensor]:
        a = self.effective_slope().detach().to(torch.float64).cpu()
        one = torch.ones_like(a)
        return torch.minimum(a, one), torch.maximum(a, one)


class GroupSort(nn.Module):
    """GroupSort with groups of 2 (MaxMin) along axis 1: 1-Lipschitz, gradient-norm preserving."""

    elementwise = False

    def __init__(self, num_units: int) -> None:
        super().__init__()
        if num_units % 2:
            raise ValueError("GroupSort(2) needs an even number of units")
        self.num_units = num_units

    def forward(self, x: Tensor) -> Tensor:
        # Elementwise maximum/minimum of the pair's two members: the reductions
        # ``max(dim)``/``min(dim)`` also compute indices and were about 30x slower on
        # the small tensors of 1-Lipschitz nets (100 us against 3 us per call).
        pairs = x.unflatten(1, (self.num_units // 2, 2))
        first, second = pairs[:, :, 0], pairs[:, :, 1]
        return torch.stack([torch.maximum(first, second), torch.minimum(first, second)], dim=2).flatten(1, 2)

    def lipschitz(self) -> Tensor:
        """The layer's l2 Lipschitz constant (exactly 1), per unit for uniformity."""
        return torch.ones(self.num_units, dtype=torch.float64)

    def slope_interval(self) -> tuple[Tensor, Tensor]:
        """Each output's partial derivatives lie in [0, 1]; not a diagonal Jacobian (see module doc)."""
        shape = (self.num_units,)
        return torch.zeros(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)


def is_elementwise(activation: nn.Module) -> bool:
    return bool(getattr(activation, "elementwise", False))
