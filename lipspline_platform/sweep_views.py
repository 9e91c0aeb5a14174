"""What ``GET /v1/sweeps`` and ``GET /v1/sweeps/{id}`` answer: a sweep's progress, trials, fronts and selection.

Built for a whole page at once with a bounded number of queries, whatever the number of sweeps
on it: their trials with their jobs (one query), the finished trials' models (one), the epochs
each job has recorded (one). ``tests/routes/test_sweeps_routes.py`` counts them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api_schemas.sweeps import FrontPoint, Fronts, Selected, SweepOut, SweepProgress, TrialOut
from lipspline_platform import sweeps
from lipspline_platform.db.tables import JobRow, SweepRow, SweepTrialRow


def sweep_out(session: Session, row: SweepRow) -> SweepOut:
    """One sweep's answer (three queries)."""
    return sweeps_out(session, [row])[0]


def sweeps_out(session: Session, rows: list[SweepRow]) -> list[SweepOut]:
    """The answers for ``rows``, in order: three queries for all of them (none for an empty page)."""
    pairs_by_sweep = sweeps.trials_and_jobs_of(session, [row.id for row in rows])
    found_by_sweep = sweeps.results_of(session, pairs_by_sweep)
    epochs = sweeps.epochs_run(session, [job.id for pairs in pairs_by_sweep.values() for _, job in pairs])
    return [_out(row, pairs_by_sweep[row.id], found_by_sweep[row.id], epochs) for row in rows]


def _trial_status(stopped_at: int | None, job_status: str) -> str:
    return "stopped" if stopped_at is not None and job_status == "cancelled" else job_status


def _out(row: SweepRow, pairs: list[tuple[SweepTrialRow, JobRow]], found: dict[int, sweeps.TrialResult],
         epochs: dict[str, int]) -> SweepOut:
    request = row.request
    summary = row.summary
    if summary is None and found:
        # running: the fronts of the trials finished so far (the selection waits for the end)
        summary = {**sweeps.summary_of(sweeps.spec_from_request(request), found).to_json(), "selected": None}
    trials = [_trial_out(trial, job, found.get(trial.trial), epochs) for trial, job in pairs]
    front, selected = _fronts(row, summary, trials, found)
    return SweepOut(
        id=row.id,
        status=row.status,
        dataset_id=row.dataset_id,
        strategy=request["strategy"],
        budget=request["budget"],
        space=request["space"],
        select=request.get("select") or {},
        progress=_progress(row, trials),
        trials=trials,
        front=front,
        selected=selected,
        note=row.note,
        register_as=row.register_as,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        name=row.name,
        tags=row.tags or [],
        description=row.description,
    )


def _trial_out(trial: SweepTrialRow, job: JobRow, result: sweeps.TrialResult | None,
               epochs: dict[str, int]) -> TrialOut:
    return TrialOut(
        trial=trial.trial,
        job_id=job.id,
        params=trial.params,
        status=_trial_status(trial.stopped_at_epoch, job.status),
        job_status=job.status,
        worker_host=job.worker_host,
        attempts=job.attempts,
        epochs=epochs.get(job.id, 0),
        stopped_at_epoch=trial.stopped_at_epoch,
        rung_scores=trial.rung_scores or {},
        model_id=result.model_id if result else None,
        score=result.score if result else None,
        certified_lipschitz=result.lipschitz if result else None,
        certified_accuracy=result.certified_accuracy if result else None,
    )


def _progress(row: SweepRow, trials: list[TrialOut]) -> SweepProgress:
    statuses = [t.status for t in trials]
    return SweepProgress(
        planned=len(row.plan),
        launched=row.launched,
        active=sum(s in ("queued", "running") for s in statuses),
        succeeded=statuses.count("succeeded"),
        stopped=statuses.count("stopped"),
        failed=statuses.count("failed"),
        cancelled=statuses.count("cancelled"),
        epochs=sum(t.epochs for t in trials),
    )


def _fronts(row: SweepRow, summary: dict[str, Any] | None, trials: list[TrialOut],
            found: dict[int, sweeps.TrialResult]) -> tuple[Fronts | None, Selected | None]:
    """The Pareto fronts and the selection of ``summary`` (the stored one, or the running fronts): none without."""
    if summary is None:
        return None, None
    radius = summary.get("radius")
    by_trial = {t.trial: t for t in trials}

    def point(index: int) -> FrontPoint:
        t = by_trial[index]
        at = found[index].outcome(index).certified_at(radius) if radius is not None else None
        return FrontPoint(trial=index, model_id=t.model_id, score=t.score,
                          certified_lipschitz=t.certified_lipschitz, certified_accuracy=at)

    front = Fronts(
        lipschitz=[point(i) for i in summary["lipschitz_front"]],
        certified_accuracy=[point(i) for i in summary["robust_front"]],
        radius=radius,
        note=summary.get("robust_front_note"),
    )
    chosen = summary.get("selected")
    selected = None
    if chosen is not None:
        selected = Selected(trial=chosen, model_id=row.selected_model_id, rule=row.request.get("select") or {},
                            registered_as=summary.get("registered_as"))
    return front, selected
