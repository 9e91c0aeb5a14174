"""A sweep's space costs little to check and refuses what it refused before (issue 26, item 5).

* Each value is checked against the section of the config that holds its field
  (``space.value_check``), not the whole config: the same values are refused, with the same
  message, at a small fraction of the cost (a 300,000-value list cost 21.6 s of API CPU).
* The request schema refuses a space past its hard ceilings before validating any value,
  so the refusal of a huge space costs a few ``len()`` calls, however large it is.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from api_schemas import TrainingConfig
from api_schemas.sweeps import (
    MAX_SPACE_PATHS,
    MAX_SPACE_VALUE_ITEMS,
    MAX_SPACE_VALUES,
    MAX_SPACE_VALUES_PER_PATH,
    SweepCreate,
)
from lipspline.sweeps.space import SpaceError, apply, parse_space, value_check

BASE = TrainingConfig.model_validate({"training": {"epochs": 9}})
GROUPSORT = TrainingConfig.model_validate({"architecture": {"activation": "groupsort", "hidden": [4]}})

#: (base, path, value): values of every kind, accepted and refused, by field constraints and section rules
CASES: list[tuple[TrainingConfig, str, Any]] = [
    (BASE, "objective.lambda", 1e-3), (BASE, "objective.lambda", -1.0), (BASE, "objective.lambda", "x"),
    (BASE, "objective.lambda_", 0.5), (BASE, "spline.knots", 2), (BASE, "spline.knots", 21),
    (BASE, "spline.knots", 1.5), (BASE, "architecture.hidden", [8, 8]), (BASE, "architecture.hidden", [0]),
    (BASE, "architecture.hidden", [1] * 33), (BASE, "architecture.activation", "tanh"),
    (BASE, "architecture.activation", "relu"), (GROUPSORT, "architecture.hidden", [3]),
    (GROUPSORT, "architecture.hidden", [6]), (BASE, "robustness.radii", [0.1, -1.0]),
    (BASE, "robustness.radii", [0.1, 0.2]), (BASE, "robustness.target_radius", 0.25), (BASE, "device", "tpu"),
    (BASE, "device", "cpu"), (BASE, "training.epochs", None), (BASE, "training.validation_split", 1.0),
    (BASE, "objective.margin", float("inf")), (BASE, "objective.mode", "bv2"), (BASE, "spline.range", None),
]


def _old_check(base: TrainingConfig, path: str, value: Any) -> str | None:
    """What the engine did before: validate the whole config with the value set."""
    try:
        apply(base, {path: value})
    except SpaceError as error:
        return f"{error.field}: {error.message}"
    return None


def _new_check(base: TrainingConfig, path: str, value: Any) -> str | None:
    try:
        value_check(base, path)(value)
    except SpaceError as error:
        return f"{error.field}: {error.message}"
    return None


@pytest.mark.parametrize(("base", "path", "value"), CASES)
def test_the_section_check_refuses_what_the_whole_config_refuses(base: TrainingConfig, path: str, value: Any) -> None:
    old, new = _old_check(base, path, value), _new_check(base, path, value)
    assert (old is None) == (new is None), (old, new)
    if old is not None:  # the same field and reason (the new message quotes a long value briefly)
        assert new.split(" (value ")[0] == old.split(" (value ")[0]


def test_a_refused_value_is_quoted_briefly() -> None:
    with pytest.raises(SpaceError) as caught:
        value_check(BASE, "objective.mode")("x" * 10_000)
    assert caught.value.field == "space.objective.mode" and len(caught.value.message) < 400


def test_checking_the_largest_space_the_defaults_allow_is_cheap_and_linear() -> None:
    def space(per_path: int) -> dict[str, list[float]]:
        paths = ("objective.lambda", "objective.mu", "training.lr", "training.momentum")
        return {path: [1e-4 + i * 1e-7 for i in range(per_path)] for path in paths}

    def cost(raw: dict) -> float:
        started = time.process_time()
        parse_space(raw, BASE)
        return time.process_time() - started

    cost(space(10))  # warm
    small, large = min(cost(space(250)) for _ in range(3)), min(cost(space(1000)) for _ in range(3))
    # 4,000 values (the default limit is 4,096): ~3 us each; it was ~30-70 us each (a whole config per value)
    assert large < 0.25, large
    assert large < 8 * small + 0.02, (small, large)  # 4x the values, not much more than 4x the time


def _create(space: dict) -> SweepCreate:
    return SweepCreate.model_validate({"dataset_id": "x", "space": space, "budget": {"max_trials": 1}})


def _refusal(space: dict) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as caught:
        _create(space)
    error = caught.value.errors()[0]
    return error["loc"], error["msg"]


def test_the_schema_refuses_a_space_past_its_ceilings_and_names_the_path() -> None:
    loc, message = _refusal({"objective.lambda": [0.1] * (MAX_SPACE_VALUES_PER_PATH + 1)})
    assert loc == ("space", "objective.lambda") and str(MAX_SPACE_VALUES_PER_PATH) in message
    loc, message = _refusal({"objective.lambda": {"values": [0.1] * (MAX_SPACE_VALUES_PER_PATH + 1)}})
    assert loc == ("space", "objective.lambda")
    loc, message = _refusal({f"p{i}": [1] for i in range(MAX_SPACE_PATHS + 1)})
    assert loc == ("space",) and str(MAX_SPACE_PATHS) in message
    per_path = MAX_SPACE_VALUES_PER_PATH
    loc, message = _refusal({f"p{i}": [1] * per_path for i in range(MAX_SPACE_VALUES // per_path + 1)})
    assert loc == ("space",) and str(MAX_SPACE_VALUES) in message
    loc, message = _refusal({"architecture.hidden": [[4] * (MAX_SPACE_VALUE_ITEMS + 1)]})
    assert loc == ("space", "architecture.hidden") and str(MAX_SPACE_VALUE_ITEMS) in message
    assert _create({"objective.lambda": [0.1] * MAX_SPACE_VALUES_PER_PATH}).space["objective.lambda"]


def test_the_refusal_of_a_huge_space_costs_nothing_in_proportion_to_it() -> None:
    huge = {"objective.lambda": [0.1] * 5_000_000}
    started = time.process_time()
    _refusal(huge)
    assert time.process_time() - started < 0.05  # a max_length constraint would validate all 5M values first
