"""Which trials a sweep runs, and which to launch next.

The whole list of trials is fixed when the sweep is created (``planned_trials``): the
grid, or ``max_trials`` points drawn with the sweep's seed. Stored with the sweep, it
makes the sweep deterministic and restartable: whoever advances it only launches the
next unlaunched index, so the same trial can never be launched twice for two reasons
(the platform also makes (sweep, index) unique). Successive halving runs the same kind
of list; its savings come from stopping trials at rungs (``halving``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api_schemas import TrainingConfig
from lipspline.sweeps import halving
from lipspline.sweeps.selection import (
    Selection,
    TrialOutcome,
    lipschitz_front,
    nothing_certified_note,
    robust_front,
    select,
    selection_note,
)
from lipspline.sweeps.space import Dimension, SpaceError, apply, grid, grid_size, sample

STRATEGIES = ("grid", "random", "halving")


@dataclass(frozen=True)
class SweepSpec:
    """A sweep as the engine sees it (the API's SweepCreate, validated)."""

    base: TrainingConfig
    dimensions: list[Dimension]
    strategy: str
    max_trials: int
    max_concurrent: int = 1
    seed: int = 0
    eta: int = 3
    min_epochs: int = 1
    selection: Selection = field(default_factory=lambda: Selection("max_accuracy"))
    front_radius: float | None = None

    def trial_config(self, params: dict[str, Any]) -> TrainingConfig:
        """The config a trial trains with: the base with ``params`` set, and the radii this sweep reads
        its trials' curves at (the select and front radii) added to ``robustness.extra_radii``, so the
        reading is exact rather than taken at the next larger radius of a trial's default curve."""
        config = apply(self.base, params)
        have = config.robustness.extra_radii or []
        radii = sorted({*have, *(float(r) for r in (self.selection.radius, self.front_radius) if r is not None)})
        return config if radii == sorted(have) else apply(self.base, {**params, "robustness.extra_radii": radii})

    def rungs(self) -> list[int]:
        if self.strategy != "halving":
            return []
        return halving.rungs(self.min_epochs, self.eta, self.base.training.epochs)


def planned_trials(spec: SweepSpec) -> list[dict[str, Any]]:
    """The parameters of every trial, in launch order; SpaceError naming what makes the sweep impossible."""
    if spec.strategy not in STRATEGIES:
        raise SpaceError("strategy", f"must be one of {', '.join(STRATEGIES)}")
    size = grid_size(spec.dimensions)
    if spec.strategy == "grid":
        if size is None:
            raise SpaceError("space", "a range without a count makes the grid unbounded: give it a count, "
                             "or use the random strategy")
        if size > spec.max_trials:
            raise SpaceError("budget.max_trials", f"the grid has {size} points, above budget.max_trials "
                             f"({spec.max_trials})")
        points = grid(spec.dimensions)
    elif spec.strategy == "halving":
        if any(d.path == "training.epochs" for d in spec.dimensions):
            raise SpaceError("space.training.epochs", "successive halving decides the epochs itself")
        if not spec.rungs():
            raise SpaceError("halving.min_epochs", f"no rung below training.epochs ({spec.base.training.epochs}): "
                             "lower min_epochs or raise the epochs")
        points = grid(spec.dimensions) if size is not None and size <= spec.max_trials else None
        if points is None:
            points = sample(spec.dimensions, spec.max_trials, spec.seed)
    else:
        points = sample(spec.dimensions, spec.max_trials, spec.seed)
    for point in points:
        spec.trial_config(point)  # every trial's config is valid (range ends were checked; a combination may not be)
    return points


def next_to_launch(planned: int, launched: int, active: int, max_concurrent: int) -> range:
    """Indices to launch now: the next unlaunched ones, up to the concurrency limit."""
    free = max(0, max_concurrent - active)
    return range(launched, min(planned, launched + free))


@dataclass(frozen=True)
class SweepSummary:
    """The fronts (trial indices) and the selected trial of a set of finished trials."""

    lipschitz_front: list[int]
    robust_front: list[int]
    radius: float | None
    selected: int | None
    #: why nothing was selected (``selection_note``), None when a trial was
    note: str | None = None
    #: set when every trial certifies 0 % at ``radius``: the robust front then ranks by score alone
    robust_front_note: str | None = None

    def to_json(self) -> dict:
        return {
            "lipschitz_front": self.lipschitz_front,
            "robust_front": self.robust_front,
            "radius": self.radius,
            "selected": self.selected,
            "note": self.note,
            "robust_front_note": self.robust_front_note,
        }


def front_radius(spec: SweepSpec, outcomes: list[TrialOutcome]) -> float | None:
    """The radius of the robust-accuracy front: the selection's, the sweep's, or the middle one of the first curve."""
    if spec.selection.radius is not None:
        return spec.selection.radius
    if spec.front_radius is not None:
        return spec.front_radius
    curves = [o.radii for o in sorted(outcomes, key=lambda o: o.index) if o.radii]
    return curves[0][len(curves[0]) // 2] if curves else None


def summarize(spec: SweepSpec, outcomes: list[TrialOutcome]) -> SweepSummary:
    radius = front_radius(spec, outcomes)
    selected = select(outcomes, spec.selection)
    return SweepSummary(
        lipschitz_front=lipschitz_front(outcomes),
        robust_front=robust_front(outcomes, radius) if radius is not None else [],
        radius=radius,
        selected=selected,
        note=selection_note(outcomes, spec.selection, selected),
        robust_front_note=None if radius is None else nothing_certified_note(outcomes, radius),
    )
