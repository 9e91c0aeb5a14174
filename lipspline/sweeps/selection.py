"""The accuracy-robustness fronts of a sweep and the rule that picks its winner.

Two fronts (``lipspline.sweeps.pareto``): validation score against the certified Lipschitz
bound (smaller is more robust), and validation score against certified robust
accuracy at one radius. The selection rules:

* ``max_accuracy`` subject to ``certified_lipschitz <= max_lipschitz``;
* ``max_certified_accuracy`` at ``radius``; when every trial certifies 0 % there, nothing is
  selected (a model that certifies no point is not "the most robust", and choosing one by its
  clean score would hide that): :func:`selection_note` says why;
* ``knee``: on the score-vs-log(bound) front, the point farthest above the chord between
  the front's two ends (both axes scaled to [0, 1]); the "kneedle" idea of Satopää et al.,
  "Finding a 'Kneedle' in a Haystack". When no point lies above the chord there is no knee
  and the most accurate front point is chosen.

Ties are broken towards the more robust model (smaller bound), then the lower trial index,
so a selection is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lipspline.sweeps.pareto import pareto_front


@dataclass(frozen=True)
class TrialOutcome:
    """What a finished trial contributes: its score, its certified bound and its certified-accuracy curve."""

    index: int
    score: float
    lipschitz: float | None
    radii: tuple[float, ...] = ()
    certified: tuple[float, ...] = ()

    def certified_at(self, radius: float) -> float | None:
        """Certified accuracy at ``radius``, read conservatively: the value at the smallest listed radius >= it
        (the curve only decreases), None when every listed radius is smaller."""
        for r, value in zip(self.radii, self.certified, strict=True):
            if r >= radius:
                return value
        return None


@dataclass(frozen=True)
class Selection:
    rule: str
    max_lipschitz: float | None = None
    radius: float | None = None


def _bounded(outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
    return [o for o in outcomes if o.lipschitz is not None and math.isfinite(o.lipschitz)]


def lipschitz_front(outcomes: list[TrialOutcome]) -> list[int]:
    """Trial indices on the front of score (max) against certified bound (min)."""
    usable = _bounded(outcomes)
    return [usable[i].index for i in pareto_front([(o.score, -o.lipschitz) for o in usable])]


def robust_front(outcomes: list[TrialOutcome], radius: float) -> list[int]:
    """Trial indices on the front of score (max) against certified accuracy at ``radius`` (max)."""
    usable = [o for o in outcomes if o.certified_at(radius) is not None]
    return [usable[i].index for i in pareto_front([(o.score, o.certified_at(radius)) for o in usable])]


def _best(candidates: list[TrialOutcome], key) -> int | None:
    if not candidates:
        return None
    return min(candidates, key=lambda o: (*key(o), o.lipschitz if o.lipschitz is not None else math.inf, o.index)).index


def select(outcomes: list[TrialOutcome], selection: Selection) -> int | None:
    """The winning trial's index under ``selection``; None when no trial satisfies its constraint."""
    if selection.rule == "max_accuracy":
        limit = math.inf if selection.max_lipschitz is None else selection.max_lipschitz
        return _best([o for o in _bounded(outcomes) if o.lipschitz <= limit], lambda o: (-o.score,))
    if selection.rule == "max_certified_accuracy":
        assert selection.radius is not None
        usable = [o for o in outcomes if o.certified_at(selection.radius) is not None]
        usable = [o for o in usable if o.certified_at(selection.radius) > 0]
        return _best(usable, lambda o: (-o.certified_at(selection.radius), -o.score))
    if selection.rule == "knee":
        return knee(outcomes)
    raise ValueError(f"unknown selection rule {selection.rule!r}")


def selection_note(outcomes: list[TrialOutcome], selection: Selection, selected: int | None) -> str | None:
    """Why ``select`` chose nothing (``selected`` is its answer) among finished trials, in words a user
    can act on; None when it chose a trial or there is none yet."""
    if not outcomes or selected is not None:
        return None
    return f"no trial satisfies the selection rule: {_why_none(outcomes, selection)}"


def nothing_certified_note(outcomes: list[TrialOutcome], radius: float) -> str | None:
    """Set when every trial whose curve reaches ``radius`` certifies 0 % there (the robust front then
    ranks by score alone)."""
    values = [v for v in (o.certified_at(radius) for o in outcomes) if v is not None]
    if values and max(values) == 0.0:
        return f"every trial certifies 0 % of its validation points at radius {radius:g}"
    return None


def _why_none(outcomes: list[TrialOutcome], selection: Selection) -> str:
    if selection.rule == "max_certified_accuracy":
        read = [o for o in outcomes if o.certified_at(selection.radius) is not None]
        if not read:
            return f"no trial's certified-accuracy curve reaches radius {selection.radius:g}"
        return (
            f"no trial certifies a single validation point at radius {selection.radius:g} (all {len(read)} at 0 %): "
            f"nothing is selected; search robustness.target_radius = {selection.radius:g}, objective.mode "
            "one_lipschitz or objective.loss lipschitz_margin to train for that radius"
        )
    if selection.rule == "max_accuracy" and selection.max_lipschitz is not None:
        return f"no trial has a certified Lipschitz bound <= {selection.max_lipschitz:g}"
    return "no trial has a finite certified Lipschitz bound"


def knee(outcomes: list[TrialOutcome]) -> int | None:
    """The knee of the score-vs-log(bound) front (module docstring); the best score if the front has < 3 points."""
    by_index = {o.index: o for o in outcomes}
    front = [by_index[i] for i in lipschitz_front(outcomes)]
    front = [o for o in front if o.lipschitz > 0]
    if len(front) < 3:
        return _best(front, lambda o: (-o.score,))
    xs = [math.log(o.lipschitz) for o in front]
    ys = [o.score for o in front]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x1 == x0 or y1 == y0:
        return _best(front, lambda o: (-o.score,))
    points = [((x - x0) / (x1 - x0), (y - y0) / (y1 - y0)) for x, y in zip(xs, ys, strict=True)]
    # the front runs from (0, low score) to (1, high score): the knee sits farthest above that chord
    start = min(points, key=lambda p: p[0])
    end = max(points, key=lambda p: p[0])
    dx, dy = end[0] - start[0], end[1] - start[1]
    norm = math.hypot(dx, dy)
    distance = [((p[1] - start[1]) * dx - (p[0] - start[0]) * dy) / norm for p in points]
    best = max(range(len(front)), key=lambda i: (distance[i], -front[i].lipschitz, -front[i].index))
    if distance[best] <= 1e-12:
        # no point above the chord: the front has no knee (accuracy only jumps at its robust end),
        # and the two ends tie; the most accurate model is then the useful answer
        return _best(front, lambda o: (-o.score,))
    return front[best].index
