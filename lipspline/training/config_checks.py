"""Checks of a training config against the task of the data it will train on.

The config schema (``api_schemas.training_config``) checks what a config says on its own; some
choices only make sense for one task, and the task is known only once the dataset is. They are
checked here, before anything is queued (the API answers 422 naming the field) and again at the
start of ``fit`` for callers of the library, so a regression job never silently trains a margin
loss it cannot use.
"""

from __future__ import annotations

from dataclasses import dataclass

from api_schemas import TrainingConfig
from api_schemas.training_config import MARGIN_LOSSES
from lipspline.objectives import objective_for

#: plain losses that need class targets (the margin losses are api_schemas' MARGIN_LOSSES)
CLASSIFICATION_LOSSES = ("cross_entropy", "bce")
#: losses that need real-valued targets
REGRESSION_LOSSES = ("mse", "mae")


@dataclass(frozen=True)
class ConfigProblem:
    """One refused choice: the config field at fault (dotted public path) and why."""

    field: str
    message: str


def config_problems(config: TrainingConfig, task: str) -> list[ConfigProblem]:
    """Every choice in ``config`` that cannot train on a ``task`` dataset; empty when it can."""
    problems = []
    objective, robust = config.objective, config.robustness
    if task == "regression":
        if robust.target_radius is not None:
            problems.append(ConfigProblem(
                "robustness.target_radius",
                "a target radius is a classification goal (a certified label); for regression use "
                "robustness.radii to measure the certified output tolerance",
            ))
        if objective.loss in (*MARGIN_LOSSES, *CLASSIFICATION_LOSSES):
            problems.append(ConfigProblem(
                "objective.loss", f"{objective.loss!r} is a classification loss; regression takes mse or mae"
            ))
        if config.training.monitor == "certified_accuracy":
            problems.append(ConfigProblem("training.monitor", "certified accuracy is measured on classifiers only"))
    if task == "classification" and objective.loss in REGRESSION_LOSSES:
        problems.append(ConfigProblem(
            "objective.loss",
            f"{objective.loss!r} is a regression loss; classification takes auto, cross_entropy, bce or a margin loss",
        ))
    if objective.loss == "hkr" and objective_for(objective).lipschitz_by_construction is None:
        problems.append(ConfigProblem(
            "objective.loss",
            "hkr needs a network that is 1-Lipschitz by construction (objective.mode one_lipschitz): "
            "its Kantorovich-Rubinstein term is unbounded below otherwise",
        ))
    if config.training.monitor == "certified_accuracy" and robust.target_radius is None:
        problems.append(ConfigProblem(
            "training.monitor", "monitoring certified accuracy needs robustness.target_radius (its radius)"
        ))
    return problems


def check_config(config: TrainingConfig, task: str) -> None:
    """Raise ``ValueError`` naming the first field at fault (library callers; the API checks first)."""
    problems = config_problems(config, task)
    if problems:
        raise ValueError(f"config.{problems[0].field}: {problems[0].message}")
