"""When a run has converged, which epoch was best, and what the plateau schedule does about a stall.

One small state object, :class:`ConvergenceMonitor`, watches the monitored loss after every
epoch (the validation data loss when there is a validation split, otherwise the epoch's mean
training objective). It answers three questions the training loop asks:

- did this epoch improve on the best so far (then its weights become the ones to serve)?
- has the loss failed to improve for ``patience`` epochs (early stopping: ``converged``)?
- has it stalled for ``plateau_patience`` epochs (the plateau schedule halves the lr)?

Its whole state is a handful of numbers that go into a checkpoint's JSON, so a resumed run
makes exactly the decisions the uninterrupted run would have made.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, get_args

StopReason = Literal["converged", "max_epochs", "cancelled", "time_limit"]
STOP_REASONS: tuple[str, ...] = get_args(StopReason)

#: an epoch improves only if it lowers the best loss by this fraction (as torch's ReduceLROnPlateau)
RELATIVE_IMPROVEMENT = 1e-4
#: the plateau schedule multiplies the lr by this on a stall ...
PLATEAU_FACTOR = 0.5
#: ... but never below this fraction of the configured lr
MIN_LR_SCALE = 1.0 / 64


@dataclass
class ConvergenceMonitor:
    """Best monitored loss so far, and how long the loss has not improved on it."""

    patience: int
    plateau_patience: int
    best_loss: float = math.inf
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    epochs_since_lr_change: int = 0
    lr_scale: float = 1.0

    def record(self, epoch: int, loss: float, *, plateau: bool) -> bool:
        """Account for ``epoch``'s monitored loss; True if it is the new best.

        A non-finite loss never improves. With ``plateau``, a stall of ``plateau_patience``
        epochs halves :attr:`lr_scale` (down to ``MIN_LR_SCALE``).
        """
        if not math.isfinite(loss):
            improved = False
        elif not math.isfinite(self.best_loss):
            improved = True
        else:
            improved = loss < self.best_loss - RELATIVE_IMPROVEMENT * abs(self.best_loss)
        if improved:
            self.best_loss, self.best_epoch = float(loss), epoch
            self.epochs_without_improvement = 0
            self.epochs_since_lr_change = 0
        else:
            self.epochs_without_improvement += 1
            self.epochs_since_lr_change += 1
            if plateau and self.epochs_since_lr_change >= self.plateau_patience and self.lr_scale > MIN_LR_SCALE:
                self.lr_scale = max(MIN_LR_SCALE, self.lr_scale * PLATEAU_FACTOR)
                self.epochs_since_lr_change = 0
        return improved

    @property
    def converged(self) -> bool:
        """No improvement for ``patience`` epochs in a row."""
        return self.epochs_without_improvement >= self.patience

    def to_json(self) -> dict:
        state = asdict(self)
        state["best_loss"] = None if not math.isfinite(self.best_loss) else self.best_loss
        return state

    @classmethod
    def from_json(cls, state: dict) -> ConvergenceMonitor:
        values = dict(state)
        values["best_loss"] = math.inf if values.get("best_loss") is None else float(values["best_loss"])
        return cls(**values)
