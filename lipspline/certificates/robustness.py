"""What follows from a Lipschitz bound L of the outputs.

* classifier with several logits: the prediction cannot change within l2
  radius ``(z_top - z_second) / (sqrt(2) L)`` (Tsuzuku et al. 2018: the
  difference of two logits is sqrt(2) L-Lipschitz, since ||e_i - e_j|| = sqrt(2));
* single logit (binary): ``|z| / L``;
* regression: ``||f(x + d) - f(x)|| <= L ||d||``.

A radius from a *local* bound holds only inside the ball where that bound was
proven, so it is capped by the ball's radius. Radii are rounded down and
deviations up, so rounding never overstates safety.

``certified_radius``/``local_radius``/``output_deviation_bound`` are the
real-arithmetic statements about F. What the endpoint returns is F computed in
floating point; ``served_radius`` and ``served_output_bound`` fold in the
proven rounding bounds of ``served_map.py`` (E at the input, and its growth
over the ball), so they hold for the returned outputs themselves.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lipspline.certificates.local_bounds import local_bounds
from lipspline.certificates.served_map import ServedOutputs


def _array(z: torch.Tensor | np.ndarray) -> np.ndarray:
    a = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else z
    a = np.asarray(a, dtype=np.float64)  # read only here: no copy when it is float64 already
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


def served_radius(served: ServedOutputs, L: float | np.ndarray, cap: float | None = None) -> np.ndarray:
    """Certified l2 radius of each returned label, rounding included (see ``served_map``).

    One logit z: ``(|z| - 2E) / (L + S)``; several: ``(margin - 2 sqrt(2) E) / (sqrt(2) (L + S))``,
    with E the row's rounding bound and S the model's ball slope; 0 when the margin does not
    exceed the rounding. ``cap``: a local bound holds only inside its ball, so the radius is capped.
    """
    z = _array(served.outputs)
    # one L for every row (the global certificate): the denominator is one number, computed with the
    # same float64 operations as the per-row array below
    lip = float(L) if np.ndim(L) == 0 else np.broadcast_to(np.asarray(L, dtype=np.float64), (z.shape[0],))
    error = np.asarray(served.rounding, dtype=np.float64)
    if z.shape[1] == 1:
        margin = np.abs(z[:, 0]) - 2.0 * error
        denom = lip + served.ball_slope
    else:
        top = np.sort(z, axis=1)
        margin = (top[:, -1] - top[:, -2]) - 2.0 * math.sqrt(2.0) * (1 + 2.0**-50) * error
        denom = math.sqrt(2.0) * (lip + served.ball_slope)
    margin = np.nextafter(np.nextafter(margin, -np.inf), -np.inf)  # at most two roundings above
    denom = np.nextafter(np.nextafter(denom, np.inf), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        radius = np.where(margin > 0, np.where(denom > 0, margin / denom, np.inf), 0.0)
    # fmax, not clip and nan_to_num: one ufunc that also maps a NaN (from a NaN bound) to 0, on predict's path
    radius = np.fmax(np.nextafter(radius, 0.0), 0.0)
    if cap is not None:
        radius = np.minimum(radius, float(cap))
    return radius


def served_output_bound(served: ServedOutputs, L: float, eps: float) -> np.ndarray:
    """Per row: how far the returned outputs can move when the input moves by at most ``eps`` (l2).

    ``L eps + 2E + eps S``: the exact map moves by at most L eps, the returned value at x is within
    E of it, and at any y of the ball within E + eps S.
    """
    eps = float(eps)
    terms = float(L) * eps + 2.0 * np.asarray(served.rounding, dtype=np.float64) + eps * served.ball_slope
    return np.nextafter(terms * (1.0 + 8 * 2.0**-53), np.inf)


def local_served_radius(
    network: torch.nn.Module, x: np.ndarray, served: ServedOutputs, lipschitz: float, ball: float
) -> np.ndarray:
    """Per row of ``x``, the radius its local bound over B(x, ball) proves for the returned label.

    The local bound is capped by ``lipschitz`` (a global certificate holds in every ball and may
    be tighter than the one ``local_bounds`` caps with, e.g. a verified LipSDP value), and the
    radius by ``ball``, where the local bound holds; rounding as in :func:`served_radius`.
    """
    bounds = np.array([min(c.bound, lipschitz) for c in local_bounds(network, x, ball)])
    return served_radius(served, bounds, cap=ball)

