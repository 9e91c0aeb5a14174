"""``none``: the data loss alone, the unregularised baseline every other mode is compared with."""

from __future__ import annotations

from lipspline.objectives.strategy import ObjectiveStrategy, register_objective


@register_objective
class UnregularizedObjective(ObjectiveStrategy):
    """No penalty, no constraint: everything is the base class's default."""

    name = "none"
