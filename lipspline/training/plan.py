"""How long a run may train and when it counts as converged: the step-budget rule.

A fixed epoch count is the wrong unit for a default. What a network needs to converge is a
number of optimizer *steps*, and the steps in one epoch grow with the data: 100 epochs are
1,300 steps on 800 rows at batch 64 (far too few for the circle task) but millions on a
large table. So when ``training.epochs`` is left unset the plan starts from a step budget
and converts it into epochs for this dataset:

    steps_per_epoch = ceil(n_train / batch_size)
    epochs          = clamp(ceil(STEP_BUDGET / steps_per_epoch), MIN_EPOCHS, MAX_EPOCHS)

Small datasets thus get about ``STEP_BUDGET`` steps, large ones at least ``MIN_EPOCHS``
passes and never more than the budget's worth of epochs. The budget is a ceiling, not a
target: with a validation split, early stopping ends most runs far earlier (the defaults
benchmark's runs used a fraction of it), and the budget only bounds runs that keep improving.

Patience is counted in epochs but chosen in steps for the same reason: ``PATIENCE_STEPS``
steps without a better validation loss, clamped to ``[MIN_PATIENCE, MAX_PATIENCE]`` epochs, so
a tiny dataset (a few steps per epoch) is not stopped by the noise of a handful of steps and a
large one does not wait hundreds of thousands of steps.

The constants were chosen on the validation splits of the defaults benchmark
(``bench/bench_defaults.py``; evidence in docs/design.md#training-defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from api_schemas.training_config import TrainingLoopConfig

#: optimizer steps a small dataset gets at most, when ``epochs`` is unset
STEP_BUDGET = 10_000
#: passes over the data a large dataset gets at least (and at most ``MAX_EPOCHS``)
MIN_EPOCHS = 10
MAX_EPOCHS = 2_000
#: steps without improvement before early stopping, converted to epochs and clamped
PATIENCE_STEPS = 1_000
MIN_PATIENCE = 10
MAX_PATIENCE = 50
#: the plateau schedule halves the lr after this fraction of the patience without improvement
PLATEAU_FRACTION = 0.25


@dataclass(frozen=True)
class TrainingPlan:
    """The resolved limits of one run (what the config asked for, with the automatic parts filled in)."""

    epochs: int  # the most epochs the run may take
    steps_per_epoch: int
    early_stopping: bool
    patience: int  # epochs without improvement before early stopping
    plateau_patience: int  # epochs without improvement before the plateau schedule lowers the lr
    monitor: str  # "validation" (data loss on the validation split) or "training" (epoch mean objective)
    restore_best: bool  # serve the best monitored epoch's weights (only with a validation split)
    epochs_automatic: bool

    @property
    def step_budget(self) -> int:
        return self.epochs * self.steps_per_epoch


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return max(1, math.ceil(n_train / batch_size))


def automatic_epochs(n_train: int, batch_size: int) -> int:
    """The step-budget rule: enough steps for small data, a bounded number of passes for large data."""
    per_epoch = steps_per_epoch(n_train, batch_size)
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(STEP_BUDGET / per_epoch)))


def automatic_patience(n_train: int, batch_size: int) -> int:
    per_epoch = steps_per_epoch(n_train, batch_size)
    return min(MAX_PATIENCE, max(MIN_PATIENCE, math.ceil(PATIENCE_STEPS / per_epoch)))


def plan_training(
    loop: TrainingLoopConfig, n_train: int, n_validation: int, epoch_cap: int | None = None
) -> TrainingPlan:
    """Resolve the loop config for a dataset split into ``n_train`` and ``n_validation`` rows.

    ``epoch_cap`` (a deployment's most epochs per job) caps an automatic epoch limit; an
    explicit ``epochs`` is the caller's to check (the service refuses one above its limit).
    """
    has_validation = n_validation > 0
    patience = loop.patience or automatic_patience(n_train, loop.batch_size)
    epochs = loop.epochs
    if epochs is None:
        epochs = automatic_epochs(n_train, loop.batch_size)
        epochs = min(epochs, epoch_cap) if epoch_cap is not None else epochs
    return TrainingPlan(
        epochs=epochs,
        steps_per_epoch=steps_per_epoch(n_train, loop.batch_size),
        early_stopping=has_validation if loop.early_stopping is None else loop.early_stopping,
        patience=patience,
        plateau_patience=max(1, round(patience * PLATEAU_FRACTION)),
        monitor="validation" if has_validation else "training",
        restore_best=loop.restore_best and has_validation,
        epochs_automatic=loop.epochs is None,
    )
