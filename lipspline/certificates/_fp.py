"""Directed-rounding helpers for the certificate arithmetic (float64, IEEE 754).

Every scalar that ends in a certified number is combined with these helpers:
an operation done in round-to-nearest is off by at most half an ulp, so
stepping the result one ulp towards +inf (``math.nextafter``) gives an upper
bound of the exact real result. This is cheaper and more portable than
switching the FPU rounding mode, and it is what makes "the product of the
proven norms" itself proven.
"""

from __future__ import annotations

import math

import numpy as np

#: unit roundoff of float64 (round to nearest)
U = 2.0**-53
#: smallest positive subnormal float64: the absolute error of one underflowing op is below it
ETA = 2.0**-1074
INF = math.inf


def up(x: float) -> float:
    """The next float above ``x``: an upper bound of any real that rounds to ``x``."""
    return math.nextafter(float(x), INF)


def down(x: float) -> float:
    return math.nextafter(float(x), -INF)


def add_up(*xs: float) -> float:
    """Upper bound of the exact sum of the (already upper-bounded) terms."""
    total = 0.0
    for x in xs:
        total = up(total + float(x))
    return total


def mul_up(*xs: float) -> float:
    """Upper bound of the exact product of non-negative factors (inf stays inf, 0 wins)."""
    total = 1.0
    for x in xs:
        x = float(x)
        if x == 0.0:
            return 0.0
        total = up(total * x)
    return total




def sqrt_up(x: float) -> float:
    """sqrt is correctly rounded in IEEE 754, so one ulp up bounds the exact root."""
    return up(math.sqrt(max(float(x), 0.0)))


def gamma(n: int) -> float:
    """Higham's gamma_n = n u / (1 - n u), rounded up; inf when n u >= 1."""
    nu = n * U
    if nu >= 0.5:
        return INF
    return up(up(nu) / down(1.0 - nu))


def inflate(x: float, ops: int) -> float:
    """Bound the exact value of a non-negative quantity computed with ``ops`` roundings."""
    return mul_up(abs(float(x)), 1.0 + up(2.0 * ops * U)) + 0.0


def frobenius_upper(a: np.ndarray) -> float:
    """Upper bound of ||A||_F: a sum of squares of N terms is off by at most gamma_{N+1}."""
    if a.size == 0:
        return 0.0
    value = float(np.linalg.norm(a))
    if not math.isfinite(value):
        return INF
    return add_up(inflate(value, a.size + 4), math.sqrt(a.size) * 2.0**-510)
