"""What follows from a Lipschitz bound L of the outputs (DESIGN 1.3).

* classifier with several logits: the prediction cannot change within l2
  radius ``(z_top - z_second) / (sqrt(2) L)`` (Tsuzuku et al. 2018: the
  difference of two logits is sqrt(2) L-Lipschitz, since ||e_i - e_j|| = sqrt(2));
* single logit (binary): ``|z| / L``;
* regression: ``||f(x + d) - f(x)|| <= L ||d||``.

A radius from a *local* bound holds only inside the ball where that bound was
proven, so it is capped by the ball's radius. Radii are rounded down and
deviations up, so rounding never overstates safety.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _array(z: torch.Tensor | np.ndarray) -> np.ndarray:
    a = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
    a = a.astype(np.float64)
    return a[:, None] if a.ndim == 1 else a


def certified_radius(logits: torch.Tensor | np.ndarray, L: float | np.ndarray) -> np.ndarray:
    """Certified l2 radius per row of ``logits`` (one logit: binary; several: multi-class)."""
    z = _array(logits)
    lip = np.broadcast_to(np.asarray(L, dtype=np.float64), (z.shape[0],))
    if z.shape[1] == 1:
        margin = np.abs(z[:, 0])
        denom = lip
    else:
        top = np.sort(z, axis=1)
        margin = top[:, -1] - top[:, -2]
        denom = np.nextafter(lip * math.sqrt(2.0), np.inf)
    margin = np.nextafter(margin, 0.0)  # the subtraction may have rounded up
    with np.errstate(divide="ignore", invalid="ignore"):
        radius = np.where(denom > 0, margin / denom, np.inf)
    return np.nextafter(np.maximum(radius, 0.0), 0.0).clip(min=0.0)


def local_radius(logits: torch.Tensor | np.ndarray, L_local: float | np.ndarray, eps: float) -> np.ndarray:
    """``min(margin / (sqrt2 L_local(eps)), eps)``: claimed only inside the proven ball."""
    return np.minimum(certified_radius(logits, L_local), float(eps))


def output_deviation_bound(L: float, eps: float) -> float:
    """Regression: the outputs move by at most ``L * eps`` (rounded up)."""
    return math.nextafter(float(L) * float(eps), math.inf)
