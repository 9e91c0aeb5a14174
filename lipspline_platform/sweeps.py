"""Sweeps on the cluster: trials are ordinary jobs; the ``sweeps`` row is the truth about the sweep.

How a sweep moves (docs/design.md#sweeps):

* **Create** (API): the engine plans every trial (``lipspline.sweeps.plan``); the sweep row,
  the plan and the first ``max_concurrent`` trials (a ``sweep_trials`` row + a queued job
  each) are written in one transaction, and the jobs' messages are sent after the commit.
* **Advance** (:func:`advance`): under a lock on the sweep row, count the trials whose job
  is still queued or running, launch the next indices of the plan up to the concurrency
  limit, and once every planned trial is launched and finished, compute the fronts and
  the selection (``lipspline.sweeps.selection``), register the winner under
  ``register_as`` and close the sweep. It is called by the worker right after a trial's
  job ends (the fast path) and by every reconciler pass (the safety net: a crash between
  a trial's success and that call, or a restart, only delays the sweep by one period).
* **Idempotency**: ``sweeps.launched`` is advanced in the transaction that inserts the
  trial rows and their jobs, (sweep, trial) is the trial's primary key and ``job_id`` is
  unique, so two advancers racing can never launch a trial twice (the loser's
  transaction fails or finds nothing to do). A message lost between commit and send is
  re-sent by the reconciler like any queued job's.
* **Halving** (:func:`rung_reached`): the worker, after recording an epoch that is a rung,
  records the trial's score there and asks the rule whether it continues; if not, the
  trial's job gets the ordinary cancel flag and the runner stops at once (cooperative
  stop). A trial re-reaching a rung after its worker died is not judged again.
* **Cancel** (:func:`cancel`): the sweep is closed and every active trial job is cancelled
  through the lifecycle; nothing more is launched. The fronts and the selection cover the
  trials that had finished (no registry alias is moved).
* **Webhooks**: closing a sweep (finished or cancelled) writes its ``sweep.finished`` or
  ``sweep.cancelled`` event to the outbox in the closing transaction
  (``api_schemas/webhook_events.py``).
* Failures: a trial whose job failed (after its retries) is a failed trial; the sweep
  still finishes with the others. A killed worker's trial is resumed by the reconciler
  (ordinary job lease), so it produces exactly one model.
* **Quotas** (``lipspline_platform.quotas.job_room``): trials are jobs, so they count against the tenant's quotas
  like any job (README "Shared rate limits and quotas"). The API refuses a sweep whose
  budget does not fit them when it is created (``service/quotas.py``); each later launch
  takes only as many trials as the quotas have room for *now* (the tenant's other jobs and
  models count). Held back by ``max_active_jobs`` (it clears as jobs finish), the sweep
  waits, says so in its ``note`` and launches at a later advance. Held back by
  ``max_models`` or ``max_stored_bytes`` (waiting does not clear them) once none of its
  own trials is active, it stops launching: the unlaunched trials are dropped, as when
  its dataset is deleted, the note says which quota, and the sweep finishes with the
  trials it ran.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api_schemas import ACTIVE_STATES, TrainingConfig
from api_schemas.timestamps import utcnow
from api_schemas.webhook_events import RegisteredVersionRef, SweepCancelledEvent, SweepFinishedEvent
from lipspline.sweeps import halving
from lipspline.sweeps.plan import SweepSpec, SweepSummary, next_to_launch, planned_trials, summarize
from lipspline.sweeps.selection import Selection, TrialOutcome
from lipspline.sweeps.space import parse_space
from lipspline_platform import labels, registry
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.ownership import find_owned
from lipspline_platform.db.pagination import Rows, Window, list_owned
from lipspline_platform.db.tables import (
    DatasetRow,
    JobEpochRow,
    JobRow,
    ModelRow,
    SweepRow,
    SweepTrialRow,
)
from lipspline_platform.jobs import lifecycle
from lipspline_platform.jobs.queue import queue_for_device, send_job
from lipspline_platform.quotas import CLEARS_BY_WAITING, job_room
from lipspline_platform.settings import Settings
from lipspline_platform.webhooks import outbox

log = logging.getLogger(__name__)

RUNNING = "running"


def spec_from_request(request: dict[str, Any]) -> SweepSpec:
    """The engine's spec from a stored SweepCreate document (``SpaceError`` if it is invalid)."""
    base = TrainingConfig.model_validate(request.get("base_config", {}))
    select_rule = request.get("select") or {"rule": "max_accuracy"}
    halving_spec = request.get("halving") or {}
    budget = request["budget"]
    return SweepSpec(
        base=base,
        dimensions=parse_space(request["space"], base),
        strategy=request.get("strategy", "grid"),
        max_trials=budget["max_trials"],
        max_concurrent=budget.get("max_concurrent", 2),
        seed=request.get("seed", 0),
        eta=halving_spec.get("eta", 3),
        min_epochs=halving_spec.get("min_epochs", 1),
        selection=Selection(select_rule["rule"], select_rule.get("max_lipschitz"), select_rule.get("radius")),
        front_radius=request.get("front_radius"),
    )


def plan(request: dict[str, Any]) -> tuple[SweepSpec, list[dict[str, Any]]]:
    """Validate the request against the engine and plan every trial (``SpaceError`` names the culprit)."""
    spec = spec_from_request(request)
    return spec, planned_trials(spec)


def trial_configs(spec: SweepSpec, planned: list[dict[str, Any]]) -> list[TrainingConfig]:
    return [spec.trial_config(params) for params in planned]


# ---- creating and advancing ----------------------------------------------------------------------
def create(
    session: Session,
    *,
    sweep_id: str,
    tenant_id: str,
    dataset_id: str,
    request: dict[str, Any],
    planned: list[dict[str, Any]],
    register_as: str | None,
    name: str | None = None,
    tags: list[str] | None = None,
    description: str | None = None,
) -> list[tuple[str, str]]:
    """The sweep row and its first trials, in the caller's transaction; (job id, queue) to send after commit."""
    now = utcnow()
    sweep = SweepRow(
        id=sweep_id,
        tenant_id=tenant_id,
        dataset_id=dataset_id,
        request=request,
        plan=planned,
        status=RUNNING,
        launched=0,
        register_as=register_as,
        created_at=now,
        updated_at=now,
    )
    labels.label(session, "sweep", sweep, name=name, tags=tags or [], description=description)
    session.add(sweep)
    session.flush()
    return _launch(session, sweep, spec_from_request(request), active=0)


def _launch(
    session: Session, sweep: SweepRow, spec: SweepSpec, active: int, settings: Settings | None = None
) -> list[tuple[str, str]]:
    """Launch the next planned trials up to the concurrency limit (the caller holds the sweep row) and,
    given ``settings``, within the tenant's quotas (at creation the API has checked the whole budget)."""
    to_send = []
    indices = next_to_launch(len(sweep.plan), sweep.launched, active, spec.max_concurrent)
    if settings is not None and indices:
        indices = _within_quotas(session, sweep, indices, active, settings)
    queue = queue_for_device(spec.base.device)
    for index in indices:
        job_id = new_id()
        params = sweep.plan[index]
        lifecycle.submit(session, job_id=job_id, tenant_id=sweep.tenant_id, dataset_id=sweep.dataset_id,
                         config=spec.trial_config(params), queue=queue)
        session.flush()  # the job row first: the trial row references it
        session.add(SweepTrialRow(sweep_id=sweep.id, trial=index, job_id=job_id, params=params, rung_scores={},
                                  updated_at=utcnow()))
        to_send.append((job_id, queue))
    if indices:
        sweep.launched = indices.stop
        sweep.updated_at = utcnow()
    session.flush()
    return to_send


def trials_and_jobs(session: Session, sweep_id: str) -> list[tuple[SweepTrialRow, JobRow]]:
    return trials_and_jobs_of(session, [sweep_id]).get(sweep_id, [])


def trials_and_jobs_of(session: Session, sweep_ids: list[str]) -> dict[str, list[tuple[SweepTrialRow, JobRow]]]:
    """sweep id -> its (trial, job) pairs in trial order: one query for every sweep named."""
    if not sweep_ids:
        return {}
    found: dict[str, list[tuple[SweepTrialRow, JobRow]]] = {sweep_id: [] for sweep_id in sweep_ids}
    rows = session.execute(
        select(SweepTrialRow, JobRow)
        .join(JobRow, JobRow.id == SweepTrialRow.job_id)
        .where(SweepTrialRow.sweep_id.in_(sweep_ids))
        .order_by(SweepTrialRow.sweep_id, SweepTrialRow.trial)
    ).all()
    for trial, job in rows:
        found[trial.sweep_id].append((trial, job))
    return found


def advance(settings: Settings, sweep_id: str) -> list[tuple[str, str]]:
    """Launch what the concurrency limit allows; close the sweep when every trial is done. Idempotent."""
    with session_scope(settings.resolved_database_url) as session:
        sweep = session.get(SweepRow, sweep_id, with_for_update=True)
        if sweep is None or sweep.status != RUNNING:
            return []
        spec = spec_from_request(sweep.request)
        pairs = trials_and_jobs(session, sweep_id)
        active = sum(1 for _, job in pairs if job.status in ACTIVE_STATES)
        if sweep.dataset_id is None and sweep.launched < len(sweep.plan):
            sweep.plan = sweep.plan[: sweep.launched]  # the dataset was deleted: nothing more can run
            sweep.note = "the dataset was deleted; trials not yet launched were dropped"
        to_send = _launch(session, sweep, spec, active, settings)
        if not to_send and active == 0 and sweep.launched >= len(sweep.plan):
            _finish(session, sweep, spec, pairs)
        return to_send


def dispatch(settings: Settings, to_send: list[tuple[str, str]]) -> None:
    """Send the launched trials' messages; a failure is left to the reconciler's re-send of queued jobs."""
    for job_id, queue in to_send:
        try:
            send_job(settings, job_id, queue)
        except Exception as exc:  # broker down: the job is queued in the database and will be re-sent
            log.warning("sweep trial job %s: send failed (%s); the reconciler re-sends it", job_id, exc)


def advance_and_dispatch(settings: Settings, sweep_id: str) -> list[str]:
    to_send = advance(settings, sweep_id)
    dispatch(settings, to_send)
    return [job_id for job_id, _ in to_send]


def running_sweeps(settings: Settings) -> list[str]:
    with session_scope(settings.resolved_database_url) as session:
        query = select(SweepRow.id).where(SweepRow.status == RUNNING).order_by(SweepRow.created_at)
        return list(session.scalars(query))


def sweep_of_job(settings: Settings, job_id: str) -> str | None:
    with session_scope(settings.resolved_database_url) as session:
        return session.scalar(select(SweepTrialRow.sweep_id).where(SweepTrialRow.job_id == job_id))


def halving_rungs_of_job(settings: Settings, job_id: str) -> list[int]:
    """The epochs at which successive halving judges this job: none unless it is a trial of a halving sweep.

    Read once when the job starts, so the worker consults the sweep only at those epochs."""
    with session_scope(settings.resolved_database_url) as session:
        request = session.scalar(
            select(SweepRow.request).join(SweepTrialRow, SweepTrialRow.sweep_id == SweepRow.id)
            .where(SweepTrialRow.job_id == job_id)
        )
    if request is None or request.get("strategy") != "halving":
        return []
    return spec_from_request(request).rungs()


# ---- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialResult:
    """A finished trial's numbers, read from its model row."""

    model_id: str
    score: float | None
    lipschitz: float | None
    certified_accuracy: dict | None

    def outcome(self, index: int) -> TrialOutcome | None:
        if self.score is None:
            return None
        curve = self.certified_accuracy or {}
        return TrialOutcome(index, self.score, self.lipschitz, tuple(curve.get("radii", ())),
                            tuple(curve.get("global", ())))


def result_of(model: ModelRow) -> TrialResult:
    metrics = model.metrics or {}
    score = halving.score_of(metrics.get("validation", {}), metrics.get("train", {}), model.task)
    return TrialResult(model.id, score, (model.certificate or {}).get("certified"), metrics.get("certified_accuracy"))


def results(session: Session, pairs: list[tuple[SweepTrialRow, JobRow]]) -> dict[int, TrialResult]:
    return results_of(session, {"": pairs})[""]


def results_of(
    session: Session, pairs_by_sweep: dict[str, list[tuple[SweepTrialRow, JobRow]]]
) -> dict[str, dict[int, TrialResult]]:
    """sweep id -> (trial -> result of its finished trials): one query for the models of every sweep named."""
    model_ids = [job.model_id for pairs in pairs_by_sweep.values() for _, job in pairs if job.model_id]
    models = {m.id: m for m in session.scalars(select(ModelRow).where(ModelRow.id.in_(model_ids)))} if model_ids else {}
    return {sweep_id: {trial.trial: result_of(models[job.model_id]) for trial, job in pairs if job.model_id in models}
            for sweep_id, pairs in pairs_by_sweep.items()}


def summary_of(spec: SweepSpec, found: dict[int, TrialResult]) -> SweepSummary:
    """The fronts and the selection over the trials that have finished (``found``: trial -> result)."""
    return summarize(spec, [o for o in (r.outcome(i) for i, r in found.items()) if o is not None])


def _select(sweep: SweepRow, spec: SweepSpec, found: dict[int, TrialResult]) -> SweepSummary:
    """Compute the fronts and the selection of a closing sweep and point it at the selected model;
    the caller stores ``summary.to_json()`` (with what it adds) as the sweep's summary."""
    summary = summary_of(spec, found)
    if summary.selected is not None:
        sweep.selected_model_id = found[summary.selected].model_id
    return summary


def _finish(session: Session, sweep: SweepRow, spec: SweepSpec, pairs: list[tuple[SweepTrialRow, JobRow]]) -> None:
    found = results(session, pairs)
    summary = _select(sweep, spec, found)
    document = summary.to_json()
    note = None if found else (sweep.note or "no trial succeeded")
    if summary.selected is None and found:
        note = summary.note or "no trial satisfies the selection rule"
    registered_as = None
    if summary.selected is not None and sweep.register_as is not None:
        model = session.get(ModelRow, sweep.selected_model_id)
        job_id = next(job.id for trial, job in pairs if trial.trial == summary.selected)
        version = registry.register_job_model(session, sweep.tenant_id, sweep.register_as, model, job_id)
        document["registered_as"] = {"name": sweep.register_as, "version": version}
        registered_as = RegisteredVersionRef(name=sweep.register_as, version=version)
    sweep.summary = document
    sweep.close("succeeded" if found else "failed", note, utcnow())
    outbox.enqueue_event(session, tenant_id=sweep.tenant_id, event=SweepFinishedEvent(
        status=sweep.status, registered_as=registered_as, **_ended(sweep, summary, found)))
    log.info("sweep %s finished: %s, selected trial %s", sweep.id, sweep.status, summary.selected)


def _ended(sweep: SweepRow, summary: SweepSummary, found: dict[int, TrialResult]) -> dict[str, Any]:
    """What the ``sweep.finished`` and ``sweep.cancelled`` webhook events share (the sweep is closed)."""
    return {"sweep_id": sweep.id, "dataset_id": sweep.dataset_id, "trials_planned": len(sweep.plan),
            "trials_with_model": len(found), "selected_trial": summary.selected,
            "selected_model_id": sweep.selected_model_id if summary.selected is not None else None,
            "note": sweep.note, "finished_at": sweep.finished_at}


# ---- halving -------------------------------------------------------------------------------------
def rung_reached(settings: Settings, job_id: str, epoch: int, score: halving.RungScore | None) -> bool:
    """The worker finished ``epoch`` of ``job_id``: True if it continues, False if halving stops it here.

    Jobs that are not halving trials, and epochs that are not rungs, always continue.
    """
    if score is None:
        return True
    with session_scope(settings.resolved_database_url) as session:
        trial = session.scalar(select(SweepTrialRow).where(SweepTrialRow.job_id == job_id))
        if trial is None:
            return True
        sweep = session.get(SweepRow, trial.sweep_id, with_for_update=True)
        if sweep is None or sweep.status != RUNNING:
            return True
        spec = spec_from_request(sweep.request)
        if epoch not in spec.rungs():
            return True
        session.refresh(trial)  # read again under the sweep's lock
        key = str(epoch)
        if key in trial.rung_scores:  # a resumed run re-reaching a rung: judged once, when first reached
            return trial.stopped_at_epoch is None
        others = session.scalars(
            select(SweepTrialRow.rung_scores).where(SweepTrialRow.sweep_id == sweep.id, SweepTrialRow.job_id != job_id)
        ).all()
        scores = [s[key] for s in others if key in s] + [score]
        trial.rung_scores = {**trial.rung_scores, key: score}
        trial.updated_at = utcnow()
        if halving.keeps(score, scores, spec.eta):
            return True
        trial.stopped_at_epoch = epoch
        job = session.get(JobRow, job_id, with_for_update=True)
        if job is not None and job.status in ACTIVE_STATES:
            lifecycle.request_cancel(session, job)
        return False


def epochs_run(session: Session, job_ids: list[str]) -> dict[str, int]:
    """Epochs each job has recorded (its last history row)."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(JobEpochRow.job_id, func.max(JobEpochRow.epoch)).where(JobEpochRow.job_id.in_(job_ids))
        .group_by(JobEpochRow.job_id)
    ).all()
    return dict(rows)


# ---- cancel --------------------------------------------------------------------------------------
def cancel(session: Session, sweep: SweepRow) -> None:
    """Close the sweep and cancel its active trials (the caller locked the sweep row and checked it runs).

    The trials that had already finished keep their worth: the fronts and the selection are
    computed over them, so a user who stops a sweep early still gets its best model so far.
    ``register_as`` is not applied: a cancelled search does not move a registry alias.
    """
    pairs = trials_and_jobs(session, sweep.id)
    found = results(session, pairs)
    summary = _select(sweep, spec_from_request(sweep.request), found)
    note = f"cancelled on request after {len(found)} of {len(sweep.plan)} trials had finished"
    if summary.selected is not None:
        note += "; the fronts and the selection cover those trials (register_as not applied)"
    elif summary.note is not None:
        note += f"; {summary.note}"
    sweep.summary = summary.to_json()
    sweep.close("cancelled", note, utcnow())
    outbox.enqueue_event(session, tenant_id=sweep.tenant_id, event=SweepCancelledEvent(**_ended(sweep, summary, found)))
    for _, job in pairs:
        if job.status in ACTIVE_STATES:
            locked = session.get(JobRow, job.id, with_for_update=True)
            if locked is not None and locked.status in ACTIVE_STATES:
                lifecycle.request_cancel(session, locked)


# ---- quotas --------------------------------------------------------------------------------------
#: how a note left by a held-back launch begins (a later launch clears a waiting note)
QUOTA_WAIT_NOTE = "waiting for quota"
QUOTA_DROP_NOTE = "stopped launching"


def _within_quotas(session: Session, sweep: SweepRow, indices: range, active: int, settings: Settings) -> range:
    """The part of ``indices`` the tenant's quotas admit now; notes (or ends the plan) when they hold trials back."""
    room = job_room(session, sweep.tenant_id, settings)
    if room.jobs is None or room.jobs >= len(indices):
        if sweep.note is not None and sweep.note.startswith(QUOTA_WAIT_NOTE):
            sweep.note = None  # launching again
        return indices
    held = len(indices) - room.jobs
    if room.quota in CLEARS_BY_WAITING or active > 0 or room.jobs > 0:
        # a quota that clears as jobs finish, or trials of this sweep still running (one may fail and free
        # room): launch what fits, the rest at a later advance (the worker's, or the reconciler's pass)
        note = (f"{QUOTA_WAIT_NOTE}: the tenant's {room.quota} quota ({room.limit}) holds back {held} "
                "trial(s); they launch as its jobs finish")
    else:
        dropped = len(sweep.plan) - sweep.launched
        sweep.plan = sweep.plan[: sweep.launched]
        note = (f"{QUOTA_DROP_NOTE}: the tenant's {room.quota} quota ({room.limit}) leaves no room for "
                f"another trial; the {dropped} trial(s) not yet launched were dropped")
        log.info("sweep %s: %s quota reached, %d unlaunched trial(s) dropped", sweep.id, room.quota, dropped)
    if note != sweep.note:  # a sweep that keeps waiting is not rewritten at every reconciler pass
        sweep.note, sweep.updated_at = note, utcnow()
    return range(indices.start, indices.start + room.jobs)


def running_sweep_count(session: Session, tenant_id: str) -> int:
    return int(session.scalar(select(func.count()).where(SweepRow.tenant_id == tenant_id,
                                                         SweepRow.status == RUNNING)))


# ---- the API's reads -----------------------------------------------------------------------------
def find(session: Session, tenant_id: str, sweep_id: str, *, lock: bool = False) -> SweepRow | None:
    """The tenant's sweep (locked ``FOR UPDATE`` with ``lock``), or None (unknown, not an id, another tenant's)."""
    return find_owned(session, SweepRow, sweep_id, tenant_id, lock=lock)


def list_sweeps(
    session: Session, tenant_id: str, window: Window, *, status: str | None = None, dataset_id: str | None = None,
    name: str | None = None, tags: list[str] | None = None,
) -> Rows:
    """One window of the tenant's sweeps, newest first, filtered like the jobs list."""
    where: list[Any] = []
    if status is not None:
        where.append(SweepRow.status == status)
    if dataset_id is not None:
        where.append(SweepRow.dataset_id == dataset_id)
    where += labels.conditions("sweep", name=name, tags=tags)
    return list_owned(session, SweepRow, window, tenant_id=tenant_id, where=where)


def dataset_of(session: Session, dataset_id: str, tenant_id: str) -> DatasetRow | None:
    row = session.get(DatasetRow, dataset_id)
    return row if row is not None and row.tenant_id == tenant_id else None
