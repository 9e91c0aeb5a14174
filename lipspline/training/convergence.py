"""When a run has converged, which epoch was best, and what the plateau schedule does about a stall.

One small state object, :class:`ConvergenceMonitor`, watches the monitored loss after every
epoch (the validation data loss when there is a validation split, otherwise the epoch's mean
training objective). It answers three questions the training loop asks:

- is this epoch's loss the lowest so far (then its weights become the ones to serve)?
- has the loss failed to *progress* for ``patience`` epochs (early stopping: ``converged``)?
- has it failed to progress for ``plateau_patience`` epochs (the plateau schedule halves the lr)?

Progress means a decrease by at least ``min_improvement`` (relative) below the loss at the
last progress. A loss that keeps creeping down by tiny amounts (a classifier sharpening
logits it already has right) has converged for every practical purpose; counting each
creep as progress kept such runs going for hundreds of epochs without changing a single
prediction. The served weights are still those of the lowest loss, progress or not.

Its whole state is a handful of numbers that go into a checkpoint's JSON, so a resumed run
makes exactly the decisions the uninterrupted run would have made.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, get_args

StopReason = Literal["converged", "max_epochs", "cancelled", "time_limit"]
STOP_REASONS: tuple[str, ...] = get_args(StopReason)

#: the plateau schedule multiplies the lr by this on a stall ...
PLATEAU_FACTOR = 0.5
#: ... but never below this fraction of the configured lr
MIN_LR_SCALE = 1.0 / 64


@dataclass
class ConvergenceMonitor:
    """Best monitored loss so far, and how long the loss has not improved on it."""

    patience: int
    plateau_patience: int
    min_improvement: float = 0.0  # relative decrease that counts as progress
    best_loss: float = math.inf
    best_epoch: int = 0
    progress_loss: float = math.inf  # the loss at the last progress
    epochs_without_improvement: int = 0  # epochs since the last progress
    epochs_since_lr_change: int = 0
    lr_scale: float = 1.0

    def record(self, epoch: int, loss: float, *, plateau: bool, ties_win: bool = False) -> bool:
        """Account for ``epoch``'s monitored loss; True if it is the lowest so far.

        ``ties_win``: an epoch that equals the best loss is the new best (the later weights are
        served). For a coarse monitored value (the share of validation rows certified at the
        target radius moves in steps of one row) ties are the rule, and the earliest epoch to
        reach a level is the least trained one: on the selection splits serving the latest
        epoch of the best level certified as many or more rows at every radius, on all five
        tasks (bench/select_target_radius.py). Progress (early stopping, plateau) still needs a
        strict decrease, so ties never prolong a run.
        A non-finite loss is never the best nor progress. With ``plateau``, ``plateau_patience``
        epochs without progress halve :attr:`lr_scale` (down to ``MIN_LR_SCALE``).
        """
        finite = math.isfinite(loss)
        best = finite and (loss < self.best_loss or (ties_win and loss == self.best_loss))
        if best:
            self.best_loss, self.best_epoch = float(loss), epoch
        progressed = finite and (
            not math.isfinite(self.progress_loss)
            or loss < self.progress_loss - self.min_improvement * abs(self.progress_loss)
        )
        if progressed:
            self.progress_loss = float(loss)
            self.epochs_without_improvement = 0
            self.epochs_since_lr_change = 0
        else:
            self.epochs_without_improvement += 1
            self.epochs_since_lr_change += 1
            if plateau and self.epochs_since_lr_change >= self.plateau_patience and self.lr_scale > MIN_LR_SCALE:
                self.lr_scale = max(MIN_LR_SCALE, self.lr_scale * PLATEAU_FACTOR)
                self.epochs_since_lr_change = 0
        return best

    @property
    def converged(self) -> bool:
        """No improvement for ``patience`` epochs in a row."""
        return self.epochs_without_improvement >= self.patience

    def to_json(self) -> dict:
        state = asdict(self)
        for key in ("best_loss", "progress_loss"):  # JSON has no infinity
            state[key] = None if not math.isfinite(state[key]) else state[key]
        return state

    @classmethod
    def from_json(cls, state: dict) -> ConvergenceMonitor:
        values = dict(state)
        for key in ("best_loss", "progress_loss"):
            values[key] = math.inf if values.get(key) is None else float(values[key])
        return cls(**values)
