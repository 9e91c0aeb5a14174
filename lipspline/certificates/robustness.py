"""What follows from a Lipschitz bound L of the logits / outputs.

- multi-logit classifier: the predicted class cannot change within l2 radius
  (z_top - z_second) / (sqrt(2) L) (Tsuzuku et al. 2018: the margin between two
  logits changes by at most sqrt(2) L ||delta||);
- single logit (binary): the sign cannot change within |z| / L;
- regression: ||f(x + delta) - f(x)|| <= L ||delta||.

Radii are rounded down, deviations up, so rounding never overstates safety.
"""

from __future__ import annotations

import math

import numpy as np


def certified_radius(outputs: np.ndarray, lipschitz: float | np.ndarray) -> np.ndarray:
    z = np.asarray(outputs, dtype=np.float64)
    lip = np.asarray(lipschitz, dtype=np.float64)
    if z.ndim == 1:
        z = z[:, None]
    if z.shape[1] == 1:
        margin = np.abs(z[:, 0])
        factor = 1.0
    else:
        top2 = np.sort(z, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
        factor = math.sqrt(2.0)
    with np.errstate(divide="ignore"):
        radius = np.where(lip > 0, margin / (factor * lip), np.inf)
    return np.nextafter(np.nextafter(radius, 0.0), 0.0)


def local_radius(outputs: np.ndarray, local_lipschitz: np.ndarray, epsilon: float) -> np.ndarray:
    """A radius from a local bound is claimed only inside the ball where that bound holds."""
    return np.minimum(certified_radius(outputs, local_lipschitz), epsilon)


def output_deviation_bound(lipschitz: float, epsilon: float) -> float:
    return math.nextafter(math.nextafter(lipschitz * epsilon, math.inf), math.inf)
