"""The sweep engine run in this process: the paper recipes and the bench use it without a service.

The same planner, halving rule, fronts and selection as the distributed sweep
(``lipspline_platform/sweeps.py``); trials run one after another (concurrency 1),
each through ``train`` (``fit`` by default). Halving stops a trial through fit's
cooperative stop, exactly as a worker does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api_schemas import TrainingConfig
from lipspline.certificates import certify_global
from lipspline.data import Dataset
from lipspline.nn.model import TrainedModel
from lipspline.sweeps import halving
from lipspline.sweeps.plan import SweepSpec, SweepSummary, planned_trials, summarize
from lipspline.sweeps.selection import TrialOutcome
from lipspline.training.loop import EpochReport, fit
from lipspline.training.robust_accuracy import certified_accuracy, curve_radii, robustness_metrics

#: train(dataset, config, on_epoch) -> (model, epochs run); on_epoch returns True to stop the run
TrainFn = Callable[[Dataset, TrainingConfig, Callable[[EpochReport], bool] | None], tuple[TrainedModel, int]]


def fit_trial(dataset: Dataset, config: TrainingConfig, on_epoch: Callable[[EpochReport], bool] | None) -> tuple:
    stop = {"now": False}

    def callback(report: EpochReport) -> None:
        if on_epoch is not None and on_epoch(report):
            stop["now"] = True

    result = fit(dataset, config, callback=callback, should_stop=lambda: stop["now"])
    return result.model, len(result.history)


def _certified_accuracy(model: TrainedModel, data: Dataset, lipschitz: float, held_out: Dataset | None) -> dict | None:
    """The trial's certified-accuracy curve: on ``held_out`` if given, else as the worker takes it (the run's
    validation split). Regressors have none (the robust front is of classifiers), so nothing is computed."""
    if data.task != "classification":
        return None
    if held_out is None:
        return robustness_metrics(model, data, lipschitz).get("certified_accuracy")
    labels = held_out.encoded_targets()
    radii, rule = curve_radii(model.config.robustness, held_out.X, labels, held_out.task)
    result = certified_accuracy(model, held_out.X, labels, lipschitz, radii, split="evaluation set",
                                radius_rule=rule, local=False)
    return result.to_json()


@dataclass
class LocalTrial:
    index: int
    params: dict[str, Any]
    status: str  # succeeded | stopped
    epochs: int
    score: float | None = None
    lipschitz: float | None = None
    certified_accuracy: dict | None = None
    model: TrainedModel | None = field(default=None, repr=False)

    def outcome(self) -> TrialOutcome | None:
        if self.status != "succeeded" or self.score is None:
            return None
        curve = self.certified_accuracy or {}
        return TrialOutcome(self.index, self.score, self.lipschitz, tuple(curve.get("radii", ())),
                            tuple(curve.get("global", ())))


@dataclass
class LocalSweep:
    trials: list[LocalTrial]
    summary: SweepSummary
    seconds: float

    @property
    def total_epochs(self) -> int:
        return sum(t.epochs for t in self.trials)

    def trial(self, index: int | None) -> LocalTrial | None:
        return None if index is None else self.trials[index]


def run_sweep(
    dataset: Dataset,
    spec: SweepSpec,
    train: TrainFn = fit_trial,
    *,
    score: Callable[[TrainedModel], float] | None = None,
    evaluation: Dataset | None = None,
) -> LocalSweep:
    """Run every planned trial here; ``score`` replaces the validation metric (e.g. accuracy on a test set),
    ``evaluation`` the rows certified robust accuracy is measured on (default: the run's validation split)."""
    began = time.perf_counter()
    rungs = spec.rungs()
    scores_at: dict[int, list[list[float]]] = {rung: [] for rung in rungs}
    trials: list[LocalTrial] = []
    for index, params in enumerate(planned_trials(spec)):
        config = spec.trial_config(params)
        halted: list[int] = []  # the rung this trial was stopped at (a run may also end early by itself)

        def on_epoch(report: EpochReport, halted: list[int] = halted) -> bool:
            if report.epoch not in scores_at:
                return False
            score = halving.rung_score(report.validation_metrics, report.train_metrics, dataset.task)
            if score is None:
                return False
            scores_at[report.epoch].append(score)
            if halving.keeps(score, scores_at[report.epoch], spec.eta):
                return False
            halted.append(report.epoch)
            return True

        model, epochs = train(dataset, config, on_epoch if rungs else None)
        stopped = bool(halted)
        trial = LocalTrial(index, params, "stopped" if stopped else "succeeded", epochs)
        if not stopped:
            metrics = model.metrics
            if score is not None:
                trial.score = score(model)
            else:
                trial.score = halving.score_of(metrics.get("validation", {}), metrics.get("train", {}), dataset.task)
            trial.lipschitz = certify_global(model.network).certified
            trial.certified_accuracy = _certified_accuracy(model, evaluation or dataset, trial.lipschitz, evaluation)
            trial.model = model
        trials.append(trial)
    outcomes = [o for o in (t.outcome() for t in trials) if o is not None]
    return LocalSweep(trials, summarize(spec, outcomes), time.perf_counter() - began)
