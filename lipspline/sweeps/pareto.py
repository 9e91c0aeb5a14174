"""The Pareto front of a set of points, each to be maximised on every axis.

A point is on the front when no other point is at least as good on every axis and
strictly better on one. Equal points do not dominate each other, so duplicates
are all kept (two trials with the same accuracy and bound are equally good answers).
Minimised quantities (a Lipschitz bound) are passed negated. O(n^2): sweeps have at
most a few hundred trials.
"""

from __future__ import annotations

from collections.abc import Sequence


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is at least as good as ``b`` everywhere and strictly better somewhere (all axes maximised)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points, in input order."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]
