"""The worker's two calls into a sweep, for jobs that are sweep trials (``lipspline_platform/sweeps.py``).

* after each recorded epoch that is a halving rung (read once, when the job starts), ask whether the trial continues; if
  not, raise the runner's stop flag so fit() stops right after this epoch (cooperative stop);
* after the job ends (any outcome), advance the sweep: launch the next trials, or close it.
  The reconciler does the same every period, so a crash between the two only delays it.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from lipspline.sweeps.halving import rung_score
from lipspline.training.loop import EpochReport
from lipspline_platform import sweeps
from lipspline_platform.settings import Settings

log = logging.getLogger(__name__)


def rung_check(
    settings: Settings, job_id: str, task: str, stop: Callable[[], None]
) -> Callable[[EpochReport], None] | None:
    """The per-epoch hook of a halving trial: calls ``stop`` when halving stops it at a rung; None for any
    other job (nothing to do after its epochs). The sweep is consulted only at the rung epochs."""
    rungs = set(sweeps.halving_rungs_of_job(settings, job_id))
    if not rungs:
        return None

    def check(report: EpochReport) -> None:
        if report.epoch not in rungs:
            return
        score = rung_score(report.validation_metrics, report.train_metrics, task)
        if not sweeps.rung_reached(settings, job_id, report.epoch, score):
            log.info("job %s: stopped by successive halving at epoch %d (score %s)", job_id, report.epoch, score)
            stop()

    return check


def after_job(settings: Settings, job_id: str) -> None:
    """Advance the job's sweep, if it belongs to one; never raises (the reconciler retries)."""
    try:
        sweep_id = sweeps.sweep_of_job(settings, job_id)
        if sweep_id is not None:
            sweeps.advance_and_dispatch(settings, sweep_id)
    except Exception:
        log.warning("job %s: advancing its sweep failed (the reconciler will):\n%s", job_id, traceback.format_exc())
