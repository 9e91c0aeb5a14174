"""HTTP contracts of ``/v1/sweeps``: many training jobs over a search space, the fronts and the winner.

The space's paths and values are checked against TrainingConfig by the engine
(``lipspline/sweeps/space.py``), which names the path at fault; these models only fix
the shape of the request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from api_schemas.http import NAME_PATTERN, NEXT_CURSOR, JobStatus, RequestBody
from api_schemas.labels import InDescription, InName, InTags, OutDescription, OutName, OutTags
from api_schemas.robustness import CertifiedAccuracyOut
from api_schemas.timestamps import as_utc
from api_schemas.training_config import TrainingConfig

Timestamp = Annotated[datetime, AfterValidator(as_utc)]
#: a sweep runs until every trial has ended (or it is cancelled)
SweepStatus = Literal["running", "succeeded", "failed", "cancelled"]


#: unknown keys are errors and no string may hold a NUL byte, as in every /v1 request body
_Request = RequestBody


class RangeSpec(_Request):
    """Numbers from low to high, uniform in the value (linear) or its logarithm (log); ``count`` points in a grid."""

    low: float = Field(validation_alias=AliasChoices("low", "min"))
    high: float = Field(validation_alias=AliasChoices("high", "max"))
    scale: Literal["linear", "log"] = "linear"
    count: int | None = Field(None, ge=1, le=1000, description="grid points (required with the grid strategy)")


class Budget(_Request):
    max_trials: int = Field(..., ge=1, description="most trials (a grid must fit; random and halving draw this many)")
    max_concurrent: int = Field(2, ge=1, le=1000, description="most trials queued or running at once",
                                validation_alias=AliasChoices("max_concurrent", "max_concurrent_trials"))


class HalvingSpec(_Request):
    eta: int = Field(3, ge=2, le=10, description="keep the top 1/eta of the trials at each rung")
    min_epochs: int = Field(1, ge=1, description="the first rung; rungs are min_epochs * eta**k below the epochs")


class SelectMaxAccuracy(_Request):
    rule: Literal["max_accuracy"]
    max_lipschitz: float | None = Field(
        None, gt=0, description="only models with certified_lipschitz <= this",
        validation_alias=AliasChoices("max_lipschitz", "max_certified_lipschitz", "certified_lipschitz"),
    )


class SelectMaxCertifiedAccuracy(_Request):
    rule: Literal["max_certified_accuracy"]
    radius: float = Field(..., gt=0, description="the l2 radius (raw input units) the certified accuracy is read at")


class SelectKnee(_Request):
    rule: Literal["knee"]


#: rule names as users (and the feature's request) also write them
RULE_ALIASES = {"max_certified_accuracy_at_radius": "max_certified_accuracy"}


def _select_shorthand(value: Any) -> Any:
    """Shorthands of a selection rule, normalised to the ``{"rule": ...}`` object before validation.

    ``"knee"`` is ``{"rule": "knee"}``; ``{"max_certified_accuracy_at_radius": 0.1}`` is
    ``{"rule": "max_certified_accuracy", "radius": 0.1}``; a rule may be written by an alias
    (``RULE_ALIASES``). Anything else is validated as given, so its errors name its fields.
    """
    if isinstance(value, str):
        value = {"rule": value}
    if isinstance(value, dict) and "rule" not in value and len(value) == 1:
        ((name, argument),) = value.items()
        if RULE_ALIASES.get(name, name) == "max_certified_accuracy" and not isinstance(argument, dict):
            value = {"rule": name, "radius": argument}
    if isinstance(value, dict) and value.get("rule") in RULE_ALIASES:
        value = {**value, "rule": RULE_ALIASES[value["rule"]]}
    return value


Select = Annotated[
    SelectMaxAccuracy | SelectMaxCertifiedAccuracy | SelectKnee,
    Field(discriminator="rule"),
    BeforeValidator(_select_shorthand),
]
#: strategy names as users also write them
STRATEGY_ALIASES = {"successive_halving": "halving", "successive-halving": "halving", "asha": "halving"}


def _strategy_alias(value: Any) -> Any:
    return STRATEGY_ALIASES.get(value, value) if isinstance(value, str) else value


#: Hard ceilings of a space, whatever the deployment's settings (``max_sweep_paths``,
#: ``max_sweep_values_per_path``, ``max_sweep_space_values``, checked by the route, are lower).
#: They are measured here, before pydantic validates a single value, so the cost of refusing a
#: huge space is a few ``len()`` calls (a ``max_length`` constraint on the list would be checked
#: only after every item is validated, and costs more than the validation itself).
MAX_SPACE_PATHS = 256
MAX_SPACE_VALUES_PER_PATH = 10_000
MAX_SPACE_VALUES = 65_536
#: a value that is itself a list (``architecture.hidden``): no config field takes a longer one
MAX_SPACE_VALUE_ITEMS = 64


def _too_large(message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError("too_long", message, context)


def _space_values(space: Any) -> Any:
    """``{"values": [...]}`` is the list itself (the form some sweep tools use); sizes within the ceilings."""
    if not isinstance(space, dict):
        return space
    if len(space) > MAX_SPACE_PATHS:
        raise _too_large("{count} paths, above the limit of {limit}", count=len(space), limit=MAX_SPACE_PATHS)
    space = {path: (v["values"] if isinstance(v, dict) and set(v) == {"values"} else v) for path, v in space.items()}
    lengths = [len(v) for v in space.values() if isinstance(v, list)]
    if max(lengths, default=0) > MAX_SPACE_VALUES_PER_PATH:
        return space  # refused by that path's own check (``_path_values``), which names the path
    total = sum(lengths)
    if total > MAX_SPACE_VALUES:
        raise _too_large("{count} values in all, above the limit of {limit}", count=total, limit=MAX_SPACE_VALUES)
    return space


def _path_values(values: Any) -> Any:
    """One path's list, refused by its length before its values are validated (the error names the path)."""
    if not isinstance(values, list):
        return values
    if len(values) > MAX_SPACE_VALUES_PER_PATH:
        raise _too_large("{count} values, above the limit of {limit} per path", count=len(values),
                         limit=MAX_SPACE_VALUES_PER_PATH)
    for value in values:
        if isinstance(value, list | dict) and len(value) > MAX_SPACE_VALUE_ITEMS:
            raise _too_large("a value of {count} items, above the limit of {limit}", count=len(value),
                             limit=MAX_SPACE_VALUE_ITEMS)
    return values


#: one path's values: a list, or a range; its size is checked first
SpaceEntry = Annotated[list[Any] | RangeSpec, BeforeValidator(_path_values)]


class SweepCreate(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dataset_id": "5f0c6b2e9a4d4c1f8e7b6a5d4c3b2a19",
                    "base_config": {"architecture": {"hidden": [4]}, "training": {"epochs": 30}},
                    "space": {
                        "objective.lambda": {"low": 1e-6, "high": 1e-2, "scale": "log"},
                        "spline.knots": [5, 11, 21],
                    },
                    "strategy": "random",
                    "budget": {"max_trials": 12, "max_concurrent": 3},
                    "select": {"rule": "max_accuracy", "max_lipschitz": 20.0},
                }
            ]
        },
    )

    dataset_id: str = Field(..., min_length=1, max_length=64)
    base_config: TrainingConfig = Field(default_factory=TrainingConfig)
    space: Annotated[dict[str, SpaceEntry], BeforeValidator(_space_values)] = Field(
        ..., description="per config path (objective.lambda, spline.knots, ...): a list of values (also "
        "`{\"values\": [...]}`) or a range (`low`/`high`, also `min`/`max`); at most "
        f"{MAX_SPACE_PATHS} paths and {MAX_SPACE_VALUES_PER_PATH} values per path (the deployment's limits, "
        "32 and 1000 by default, are lower)"
    )
    strategy: Annotated[Literal["grid", "random", "halving"], BeforeValidator(_strategy_alias)] = Field(
        "grid", description="grid, random, or halving (also successive_halving, asha)"
    )
    budget: Budget
    seed: int = Field(0, ge=0, le=2**31 - 1, description="the random strategy's draws (and halving's, off-grid)")
    halving: HalvingSpec = Field(default_factory=HalvingSpec)
    select: Select = Field(default_factory=lambda: SelectMaxAccuracy(rule="max_accuracy"))
    front_radius: float | None = Field(
        None, gt=0, description="radius of the accuracy vs certified-accuracy front (default: the selection's, "
        "or the middle radius of the trials' certified-accuracy curve)"
    )
    register_as: str | None = Field(
        None, pattern=NAME_PATTERN, description="a registered model's name: the selected model becomes its next version"
    )
    name: InName = None
    tags: InTags = []
    description: InDescription = None

    def space_json(self) -> dict[str, Any]:
        return {k: (v.model_dump(exclude_none=True) if isinstance(v, RangeSpec) else v) for k, v in self.space.items()}


class SweepAccepted(BaseModel):
    id: str
    status: str
    trials: int = Field(description="trials the sweep will run (at most)")


#: one value a sweep gives a config path: a number, a name, a flag, or a list (``architecture.hidden``)
ParamValue = int | float | str | bool | list[int]


class TrialOut(BaseModel):
    trial: int
    job_id: str
    params: dict[str, ParamValue] = Field(description="config path -> the value this trial uses")
    status: str = Field(description="the job's status, or 'stopped' when successive halving stopped it")
    job_status: JobStatus
    worker_host: str | None = None
    attempts: int = 0
    epochs: int = Field(0, description="epochs the trial ran")
    stopped_at_epoch: int | None = None
    rung_scores: dict[str, list[float] | float] = Field(
        default_factory=dict, description="per halving rung (epoch): [score, -validation loss] recorded there"
    )
    model_id: str | None = None
    score: float | None = Field(None, description="validation accuracy (classification) or -RMSE (regression)")
    certified_lipschitz: float | None = None
    certified_accuracy: CertifiedAccuracyOut | None = Field(None, description="the model's certified-accuracy curve")


class SweepProgress(BaseModel):
    planned: int
    launched: int
    active: int
    succeeded: int
    stopped: int
    failed: int
    cancelled: int
    epochs: int = Field(description="epochs run by all trials together (the sweep's cost)")


class FrontPoint(BaseModel):
    trial: int
    model_id: str | None
    score: float
    certified_lipschitz: float | None = None
    certified_accuracy: float | None = None


class Fronts(BaseModel):
    lipschitz: list[FrontPoint] = Field(description="non-dominated: higher score, smaller certified Lipschitz bound")
    certified_accuracy: list[FrontPoint] = Field(description="non-dominated: higher score, higher certified accuracy")
    radius: float | None = Field(None, description="the radius the certified-accuracy front is read at")
    note: str | None = Field(None, description="set when every trial certifies 0 % at that radius")


class RegisteredVersion(BaseModel):
    name: str
    version: int | None = Field(None, description="null if the name was deleted before the sweep ended")


class Selected(BaseModel):
    trial: int
    model_id: str | None
    rule: Select
    registered_as: RegisteredVersion | None = None


class SweepOut(BaseModel):
    id: str
    status: SweepStatus
    dataset_id: str | None
    strategy: str
    budget: Budget
    space: dict[str, list[ParamValue] | RangeSpec]
    select: Select
    progress: SweepProgress
    trials: list[TrialOut]
    front: Fronts | None = Field(None, description="once the sweep has finished trials: while it runs, the front of "
                                 "the trials finished so far; after a cancel, of those that had finished")
    selected: Selected | None = Field(None, description="set when the sweep ends (or is cancelled with finished "
                                      "trials); null while it runs, or when no trial satisfies the rule")
    note: str | None = Field(None, description="why nothing was selected, or how the sweep ended")
    register_as: str | None = None
    created_at: Timestamp
    updated_at: Timestamp
    finished_at: Timestamp | None = None
    name: OutName = None
    tags: OutTags = []
    description: OutDescription = None


class SweepList(BaseModel):
    items: list[SweepOut]
    next_cursor: str | None = NEXT_CURSOR
