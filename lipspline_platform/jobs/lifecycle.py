"""The job lifecycle: every change of a job's status, in one place.

    queued --claim--> running --succeed--> succeeded
      |                 |  |---fail-----> failed
      |                 |  '---stopped--> cancelled   (cancel requested, seen by the runner)
      |                 '--lease expired--> queued (re-sent) | failed (attempts used up) | cancelled
      '--cancel--> cancelled

Every transition is one function here and one conditional UPDATE (or a row
locked with ``FOR UPDATE`` and checked), so any number of API processes,
workers and reconcilers can race on the same job and exactly one wins. The
fencing rule: a claim bumps ``attempts``, and that number is the runner's
lease token; a runner writes (heartbeat, progress, result) only while the row
is still ``running`` under its own attempt. Once the reconciler has re-queued
the job, or another worker has claimed it, the old runner's writes match no
row and it stops. Nothing outside this module writes ``jobs.status``
(``tests/unit/repository/test_layering.py`` checks it).

Each transition also appends to the job's event stream (``job_events``) in its own
transaction, and the one that ends a job writes its webhook deliveries (the outbox) there
too: an event is never lost and never reported for a change that rolled back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from api_schemas import TERMINAL_STATES, JobStatus, TrainingConfig
from api_schemas.timestamps import as_utc, utcnow
from lipspline_platform import labels, registry
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import JobCheckpointRow, JobEpochRow, JobRow, ModelRow
from lipspline_platform.jobs import job_events
from lipspline_platform.settings import Settings
from lipspline_platform.storage import artifacts
from lipspline_platform.webhooks import outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A job a runner now holds: what to train, and the attempt number that fences its writes."""

    config: TrainingConfig
    dataset_id: str
    attempt: int
    #: seconds the job waited for this claim: since its submission, or since its re-queue
    waited_s: float = 0.0
    #: the X-Request-ID of the request that submitted the job (for the worker's log lines)
    request_id: str | None = None


@dataclass(frozen=True)
class NewModel:
    """Everything stored with a model; written in the transaction that marks its job succeeded."""

    task: str
    document: dict
    weights: bytes
    weights_sha256: str
    metrics: dict
    certificate: dict
    sparsity: dict
    parameter_count: int


@dataclass(frozen=True)
class StaleJob:
    """A running job whose lease expired, as the reconciler read it."""

    id: str
    attempts: int
    cancel_requested: bool
    worker_host: str | None
    queue: str


# ---- reading the state --------------------------------------------------------------------------
def lease_expired(job: JobRow, settings: Settings, now: datetime | None = None) -> bool:
    """True when a running job's worker has not renewed its lease within ``lease_timeout_s``."""
    beat = as_utc(job.heartbeat_at or job.updated_at)
    return beat is None or beat < (now or utcnow()) - timedelta(seconds=settings.lease_timeout_s)


def holds(job: JobRow | None, attempt: int) -> bool:
    """Whether the runner of ``attempt`` still holds the job's lease."""
    return job is not None and job.status == JobStatus.running and job.attempts == attempt


def cancel_requested(settings: Settings, job_id: str) -> bool:
    """Whether the job's cancellation was asked for (a vanished job counts as cancelled)."""
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id)
        return job is None or bool(job.cancel_requested)


def give_up_message(attempts: int, last_error: str | None) -> str:
    detail = f" (last: {last_error})" if last_error else ""
    return f"gave up after {attempts} attempts: each time the worker running the job was lost{detail}"


def drop_checkpoint(session: Session, job_id: str) -> None:
    session.execute(delete(JobCheckpointRow).where(JobCheckpointRow.job_id == job_id))


def _announce(session: Session, job: JobRow, status: JobStatus, *, error: str | None = None,
              attempt: int | None = None) -> None:
    """Report a status change: a ``status`` event; when it ends the job, a ``final`` event
    (model id or error) and one webhook delivery per target, all in the caller's transaction."""
    change: dict = {"status": str(status)}
    if attempt is not None:
        change["attempt"] = attempt
    if error:
        change["error"] = error
    job_events.append(session, job.id, job_events.STATUS, change)
    if status not in TERMINAL_STATES:
        return
    final = {
        "event": f"job.{status}",
        "job_id": job.id,
        "status": str(status),
        "model_id": job.model_id if status == JobStatus.succeeded else None,
        "error": error,
        "dataset_id": job.dataset_id,
        "train_seconds": job.train_seconds,
        "finished_at": utcnow().isoformat(),
    }
    job_events.append(session, job.id, job_events.FINAL, final)
    outbox.enqueue(session, tenant_id=job.tenant_id, job_id=job.id, notify_url=job.notify_url,
                   event=final["event"], payload=final)


def _last_beat():
    return func.coalesce(JobRow.heartbeat_at, JobRow.updated_at)


def _last_send():
    return func.coalesce(JobRow.dispatched_at, JobRow.created_at)


# ---- the API's transitions ---------------------------------------------------------------------
def submit(
    session: Session,
    *,
    job_id: str,
    tenant_id: str,
    dataset_id: str,
    config: TrainingConfig,
    queue: str,
    register_as: str | None = None,
    notify_url: str | None = None,
    request_id: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    description: str | None = None,
) -> JobRow:
    """A new ``queued`` job, in the caller's transaction (its message is sent after the commit).

    ``register_as``: a registered model's name (checked by the caller); the model becomes
    its next version in the transaction that stores it (:func:`succeed`). ``name``, ``tags``
    and ``description`` (validated by the caller) are copied to the job's model when it is stored.
    """
    now = utcnow()
    row = JobRow(
        id=job_id,
        tenant_id=tenant_id,
        dataset_id=dataset_id,
        config=config.to_json(),
        status=JobStatus.queued,
        queue=queue,
        cancel_requested=False,
        progress={"epoch": 0, "epochs": config.training.epochs},
        attempts=0,
        # the message is sent right after this commits; the reconciler re-sends it if lost
        dispatched_at=now,
        register_as=register_as,
        notify_url=notify_url,
        request_id=request_id,
    )
    labels.label(session, "job", row, name=name, tags=tags or [], description=description)
    session.add(row)
    _announce(session, row, JobStatus.queued)
    return row


def withdraw_unsent(settings: Settings, job_id: str) -> None:
    """The broker refused the job's message: remove the job if nothing has touched it yet."""
    with session_scope(settings.resolved_database_url) as session:
        row = session.get(JobRow, job_id)
        if row is not None and row.status == JobStatus.queued and row.attempts == 0:
            labels.forget(session, "job", job_id)
            session.delete(row)


def request_cancel(session: Session, job: JobRow) -> JobRow:
    """Queued: cancelled at once. Running: flagged; its runner stops within one epoch.

    The caller has locked the row and checked it is not succeeded or failed.
    """
    now = utcnow()
    job.cancel_requested = True
    if job.status == JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = now
        _announce(session, job, JobStatus.cancelled)
    job.updated_at = now
    session.flush()
    return job


# ---- the runner's transitions ------------------------------------------------------------------
def claim(settings: Settings, job_id: str, worker_host: str) -> Claim | None:
    """Mark the job running under a new attempt; None if there is nothing to do.

    Nothing to do: the job is finished, cancelled or gone, or another worker holds it
    with a live lease (a duplicate delivery). The status change is a conditional UPDATE
    on the status and attempt that were read, so two workers can never both claim it.
    A job found cancel-requested, without its dataset or out of attempts is closed here.
    """
    now = utcnow()
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id, with_for_update=True)
        if job is None or job.status in TERMINAL_STATES:
            return None
        if job.status == JobStatus.running and not lease_expired(job, settings, now):
            log.info("job %s: held by %s with a live lease; duplicate delivery ignored", job_id, job.worker_host)
            return None
        closing = None
        if job.cancel_requested:
            closing = (JobStatus.cancelled, job.error)
        elif job.dataset_id is None:
            closing = (JobStatus.failed, "the job's dataset was deleted before it ran")
        elif job.attempts >= settings.max_attempts:
            closing = (JobStatus.failed, give_up_message(job.attempts, job.error))
        if closing is not None:
            job.status, job.error = closing
            job.finished_at = job.updated_at = now
            drop_checkpoint(session, job_id)
            _announce(session, job, closing[0], error=closing[1])
            return None
        seen_status, seen_attempts = job.status, job.attempts
        config, dataset_id, request_id = TrainingConfig.from_stored(job.config), job.dataset_id, job.request_id
        # a first run waited since submission; a re-run since the reconciler re-queued it
        waiting_since = as_utc(job.created_at if seen_attempts == 0 else (job.dispatched_at or job.updated_at))
        waited_s = max(0.0, (now - waiting_since).total_seconds()) if waiting_since else 0.0
        result = session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == seen_status, JobRow.attempts == seen_attempts)
            .values(
                status=JobStatus.running,
                attempts=seen_attempts + 1,
                worker_host=worker_host,
                heartbeat_at=now,
                started_at=job.started_at or now,
                updated_at=now,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return None
        _announce(session, job, JobStatus.running, attempt=seen_attempts + 1)
        return Claim(config, dataset_id, seen_attempts + 1, waited_s, request_id)  # type: ignore[arg-type]


def renew_lease(settings: Settings, job_id: str, attempt: int) -> bool:
    """Heartbeat; False once the job is no longer this attempt's."""
    with session_scope(settings.resolved_database_url) as session:
        result = session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == JobStatus.running, JobRow.attempts == attempt)
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


def record_start(settings: Settings, job_id: str, attempt: int, device: str, resumed_from: int) -> bool:
    """The runner has its data and device; False if it lost the lease meanwhile."""
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id, with_for_update=True)
        if not holds(job, attempt):
            return False
        job.device = device
        job.progress = {**(job.progress or {}), "attempt": attempt, "resumed_from_epoch": resumed_from}
        if resumed_from:
            job.progress["epoch"] = resumed_from
        job.heartbeat_at = job.updated_at = utcnow()
        return True


def record_epoch(
    settings: Settings,
    job_id: str,
    attempt: int,
    *,
    progress: dict,
    history: dict,
    device: str,
    checkpoint: tuple[int, bytes] | None = None,
) -> bool:
    """One epoch's progress, its history row and (optionally) a checkpoint; False if the lease is lost."""
    now = utcnow()
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id, with_for_update=True)
        if not holds(job, attempt):
            return False
        job.progress = progress
        job.device = device
        job.heartbeat_at = job.updated_at = now
        session.merge(JobEpochRow(job_id=job_id, epoch=progress["epoch"], report=history))
        job_events.append(session, job_id, job_events.EPOCH, progress)
        if checkpoint is not None:
            epoch, blob = checkpoint
            store = artifacts.store_for(settings)
            uri = store.put(f"checkpoints/{job_id}", blob) if store is not None else None
            session.merge(JobCheckpointRow(job_id=job_id, epoch=epoch, blob=None if uri else blob, blob_uri=uri,
                                           updated_at=now))
        return True


def latest_checkpoint(settings: Settings, job_id: str, newer_than: int) -> tuple[int, bytes] | None:
    """The job's checkpoint in the database, if it is newer than epoch ``newer_than``."""
    with session_scope(settings.resolved_database_url) as session:
        row = session.get(JobCheckpointRow, job_id)
        if row is None or row.epoch <= newer_than:
            return None
        epoch, blob, uri = row.epoch, row.blob, row.blob_uri
    try:
        return epoch, artifacts.read(settings, blob, uri)
    except artifacts.ArtifactMissingError:
        log.warning("job %s: its checkpoint %s is gone; the job starts over", job_id, uri)
        return None


def succeed(
    settings: Settings,
    job_id: str,
    attempt: int,
    dataset_id: str,
    model: NewModel,
    seconds: float,
    *,
    outcome: dict | None = None,
) -> bool:
    """Store the model and mark the job succeeded in one transaction; False if the lease was lost.

    ``models.job_id`` is unique and an existing model is reused, so a redelivered
    message can never create a second model. A job submitted with ``register_as``
    registers the model as the next version of that name in the same transaction
    (``progress.registered_as`` says which; ``version`` is null if the name was deleted
    meanwhile: the model is kept and the job still succeeds). ``outcome`` (why training stopped, the
    served epoch, grid coverage) is merged into the job's ``progress``.
    """
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id, with_for_update=True)
        if not holds(job, attempt):
            return False
        existing = session.query(ModelRow).filter_by(job_id=job_id).one_or_none()
        if existing is None:
            model_id = new_id()
            store = artifacts.store_for(settings)
            weights_uri = store.put(f"weights/{model_id}", model.weights) if store is not None else None
            row = ModelRow(
                id=model_id,
                weights_uri=weights_uri,
                weights_bytes=len(model.weights),
                tenant_id=job.tenant_id,
                job_id=job_id,
                dataset_id=dataset_id,
                task=model.task,
                document=model.document,
                weights=None if weights_uri else model.weights,
                weights_sha256=model.weights_sha256,
                metrics=model.metrics,
                certificate=model.certificate,
                sparsity=model.sparsity,
                parameter_count=model.parameter_count,
            )
            # the model is called what its job is called, until it is renamed (PATCH /v1/models/{id})
            labels.label(session, "model", row, name=job.name, tags=job.tags or [], description=job.description)
            session.add(row)
            session.flush()
        else:
            row = existing
        model_id = row.id
        if job.register_as is not None:
            version = registry.register_job_model(session, job.tenant_id, job.register_as, row, job_id)
            job.progress = {**(job.progress or {}), "registered_as": {"name": job.register_as, "version": version}}
        job.status = JobStatus.succeeded
        job.model_id = model_id
        if outcome is not None:
            job.progress = {**(job.progress or {}), **outcome}
        job.train_seconds = seconds
        job.finished_at = job.updated_at = utcnow()
        drop_checkpoint(session, job_id)
        _announce(session, job, JobStatus.succeeded)
    return True


def fail(settings: Settings, job_id: str, attempt: int, error: str) -> None:
    """The runner's job raised: ``failed`` with the error (if it still holds the lease)."""
    _close(settings, job_id, attempt, JobStatus.failed, error)


def stop_cancelled(settings: Settings, job_id: str, attempt: int, *, outcome: dict | None = None) -> None:
    """The runner saw the cancel flag and stopped training: ``cancelled`` (``outcome`` merged into progress)."""
    _close(settings, job_id, attempt, JobStatus.cancelled, None, outcome)


def _close(
    settings: Settings, job_id: str, attempt: int, status: JobStatus, error: str | None, outcome: dict | None = None
) -> None:
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id, with_for_update=True)
        if not holds(job, attempt):
            return
        job.status = status
        if error is not None:
            job.error = error
        if outcome is not None:
            job.progress = {**(job.progress or {}), **outcome}
        job.finished_at = job.updated_at = utcnow()
        drop_checkpoint(session, job_id)
        _announce(session, job, status, error=error)


# ---- the reconciler's transitions --------------------------------------------------------------
def stale_jobs(settings: Settings, now: datetime) -> list[StaleJob]:
    """Running jobs whose worker has not renewed the lease within ``lease_timeout_s``."""
    cutoff = now - timedelta(seconds=settings.lease_timeout_s)
    with session_scope(settings.resolved_database_url) as session:
        rows = session.execute(
            select(JobRow.id, JobRow.attempts, JobRow.cancel_requested, JobRow.worker_host, JobRow.queue)
            .where(JobRow.status == JobStatus.running, _last_beat() < cutoff)
            .order_by(JobRow.created_at)
        ).all()
    return [StaleJob(*row) for row in rows]


def next_lease_expiry(settings: Settings) -> datetime | None:
    """When the first running job's lease runs out if no heartbeat comes (None: nothing is running).

    The reconciler wakes then rather than at its next period, so a dead worker's job is taken
    back within a moment of ``lease_timeout_s`` after its last heartbeat (worker-loss recovery)."""
    with session_scope(settings.resolved_database_url) as session:
        oldest = session.scalar(select(func.min(_last_beat())).where(JobRow.status == JobStatus.running))
    oldest = as_utc(oldest) if oldest is not None else None
    return None if oldest is None else oldest + timedelta(seconds=settings.lease_timeout_s)


def expire_lease(settings: Settings, job: StaleJob, now: datetime) -> tuple[JobStatus, str] | None:
    """A lost worker's job: re-queued, or failed once its attempts are used up, or cancelled if asked.

    None when the lease was renewed meanwhile or another reconciler acted first. The
    attempt count is kept, so a job whose workers keep dying stops after ``max_attempts``.
    """
    cutoff = now - timedelta(seconds=settings.lease_timeout_s)
    note = (
        f"worker {job.worker_host or '?'} lost: no heartbeat for {settings.lease_timeout_s:g} s "
        f"(attempt {job.attempts} of {settings.max_attempts})"
    )
    if job.cancel_requested:
        status, values = JobStatus.cancelled, {"finished_at": now}
    elif job.attempts >= settings.max_attempts:
        status, values = JobStatus.failed, {"finished_at": now, "error": give_up_message(job.attempts, note)}
    else:
        status, values = JobStatus.queued, {"error": note + "; re-queued", "heartbeat_at": None, "dispatched_at": now}
    with session_scope(settings.resolved_database_url) as session:
        result = session.execute(
            update(JobRow)
            .where(
                JobRow.id == job.id,
                JobRow.status == JobStatus.running,
                JobRow.attempts == job.attempts,
                _last_beat() < cutoff,
            )
            .values(status=status, updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return None
        if status != JobStatus.queued:
            drop_checkpoint(session, job.id)
        row = session.get(JobRow, job.id)
        assert row is not None  # the UPDATE above matched it, and holds its lock
        _announce(session, row, status, error=values.get("error") or note)
    return status, note


def unsent_jobs(settings: Settings, now: datetime) -> list[tuple[str, str]]:
    """(id, queue) of queued jobs last handed to the broker more than ``redispatch_after_s`` ago."""
    cutoff = now - timedelta(seconds=settings.redispatch_after_s)
    with session_scope(settings.resolved_database_url) as session:
        return [
            (job_id, queue)
            for job_id, queue in session.execute(
                select(JobRow.id, JobRow.queue)
                .where(JobRow.status == JobStatus.queued, _last_send() < cutoff)
                .order_by(JobRow.created_at)
            ).all()
        ]


def mark_dispatched(settings: Settings, job_id: str, now: datetime) -> bool:
    """Claim the re-send of a queued job (one reconciler wins); False if someone else did."""
    cutoff = now - timedelta(seconds=settings.redispatch_after_s)
    with session_scope(settings.resolved_database_url) as session:
        result = session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == JobStatus.queued, _last_send() < cutoff)
            .values(dispatched_at=now)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


def mark_unsent(settings: Settings, job_id: str, now: datetime) -> None:
    """The re-send failed (broker down): make the job due again at the next pass."""
    with session_scope(settings.resolved_database_url) as session:
        session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == JobStatus.queued)
            .values(dispatched_at=now - timedelta(seconds=settings.redispatch_after_s + 1))
            .execution_options(synchronize_session=False)
        )
