"""Successive halving, ASHA-style (Li et al., "A System for Massively Parallel Hyperparameter Tuning").

Every trial is launched for the full number of epochs R. Rungs are epoch milestones
``min_epochs * eta**k`` below R. When a trial finishes the epoch of a rung, its
validation score (accuracy, ties broken by the validation loss) is recorded at that
rung and compared with the scores every other trial recorded there *so far*: it
continues only if it ranks within the top
``ceil(n / eta)`` of those n scores (ties continue), otherwise it is stopped through
the ordinary cooperative stop. Nothing waits for a rung to fill (asynchronous, so a
worker is never idle), at the price that the first trials to reach a rung always
continue. A stopped trial spends ``rung`` epochs instead of R; with eta = 3 roughly a
third of the trials pass each rung.

The decision is a pure function of the recorded scores, so a trial resumed after its
worker died, re-reaching a rung it already passed, is not judged twice (the caller
keeps the highest rung passed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def rungs(min_epochs: int, eta: int, max_epochs: int) -> list[int]:
    """The epoch milestones at which trials are judged: min_epochs * eta**k < max_epochs."""
    if min_epochs < 1 or eta < 2:
        raise ValueError("min_epochs must be at least 1 and eta at least 2")
    milestones = []
    epoch = min_epochs
    while epoch < max_epochs:
        milestones.append(epoch)
        epoch *= eta
    return milestones


RungScore = float | Sequence[float]


def _key(score: RungScore) -> tuple[float, ...]:
    return tuple(score) if isinstance(score, Sequence) else (score,)


def keeps(score: RungScore, scores_at_rung: Sequence[RungScore], eta: int) -> bool:
    """Whether a trial with ``score`` continues, given every score recorded at the rung (its own included).

    Scores compare lexicographically (``rung_score``: accuracy, then minus the loss), so the
    few distinct accuracies of a small validation set do not make most trials tie and pass.
    """
    keep = max(1, math.ceil(len(scores_at_rung) / eta))
    mine = _key(score)
    better = sum(1 for other in scores_at_rung if _key(other) > mine)
    return better < keep


def rung_score(validation_metrics: dict, train_metrics: dict, task: str) -> list[float] | None:
    """What a trial is ranked by at a rung: ``[score, -loss]`` (the loss breaks ties of the score)."""
    score = score_of(validation_metrics, train_metrics, task)
    if score is None:
        return None
    loss = (validation_metrics or train_metrics or {}).get("loss")
    return [score, -loss if loss is not None and math.isfinite(loss) else 0.0]


def score_of(validation_metrics: dict, train_metrics: dict, task: str) -> float | None:
    """The quantity halving and selection maximise: accuracy, or minus the RMSE for regression.

    The validation split's when there is one, the training data's otherwise.
    """
    metrics = validation_metrics or train_metrics or {}
    if task == "classification" or "accuracy" in metrics:
        return metrics.get("accuracy")
    mse = metrics.get("mse")
    return None if mse is None else -math.sqrt(mse)
