"""The learning rate of each epoch: warm-up, then the configured schedule.

- ``plateau`` (the default): the configured lr, multiplied by the convergence monitor's
  ``lr_scale``, which halves whenever the monitored loss stalls (``lipspline.training.convergence``).
  It needs no knowledge of how long the run will be, which suits runs that stop early.
- ``cosine``: decays from the lr to 0 over the planned epochs (after warm-up).
- ``none``: the configured lr throughout (what every run did before schedules existed).

Warm-up raises the lr linearly from a tenth of its value over ``warmup_epochs`` epochs.
The lr is set once per epoch, so it is a pure function of the epoch and the checkpointed
monitor state, and a resumed run uses the same rates.
"""

from __future__ import annotations

import math

WARMUP_START = 0.1


def lr_factor(schedule: str, epoch: int, epochs: int, warmup_epochs: int, plateau_scale: float) -> float:
    """Multiplier of the configured lr for 0-based ``epoch`` of a run of at most ``epochs``."""
    if epoch < warmup_epochs:
        return WARMUP_START + (1.0 - WARMUP_START) * epoch / warmup_epochs
    if schedule == "plateau":
        return plateau_scale
    if schedule == "cosine":
        span = max(1, epochs - warmup_epochs)
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / span))
    if schedule == "none":
        return 1.0
    raise ValueError(f"unknown lr schedule {schedule!r}")
