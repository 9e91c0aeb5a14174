"""One training job, start to finish, with the ``jobs`` row kept true at every step.

Idempotent: a job already finished is left alone, and a model is written in the
same transaction that marks the job succeeded (``models.job_id`` is unique), so
a redelivered message can never create a second model.

Leases: a claim takes a ``queued`` job, or a ``running`` one whose lease expired
(no heartbeat for ``lease_timeout_s``), and bumps ``attempts``; that attempt number
is the lease's fencing token. While the job runs, a thread renews ``heartbeat_at``
every ``heartbeat_s`` (and each epoch does too), but only while the row is still
``running`` under the same attempt: once the reconciler has re-queued the job, or
another worker has claimed it, the old runner stops and writes nothing more.

Checkpoints: fit() writes a local safetensors file each epoch; at most every
``checkpoint_db_every_s`` it is copied into ``job_checkpoints``, so a worker on any
host resumes a re-run job from it. The row is deleted when the job finishes.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import delete, update

from api_schemas import TERMINAL_STATES, JobStatus, TrainingConfig
from lipspline.certificates import certificate_report
from lipspline.model import TrainedModel
from lipspline.serialization import model_to_parts
from lipspline.training import EpochReport, fit, resolve_device
from service.db.dataset_blob import dataset_from_row
from service.db.engine import session_scope
from service.db.ids import new_id
from service.db.tables import DatasetRow, JobCheckpointRow, JobEpochRow, JobRow, ModelRow, as_utc, utcnow
from service.settings import Settings

log = logging.getLogger(__name__)

#: LipSDP-Neuron is solved at training time only for nets this small (it is an SDP).
LIPSDP_MAX_NEURONS = 32
#: pairs and points for the lower bounds stored with every model
LOWER_BOUND_PAIRS = 4096
LOWER_BOUND_POINTS = 128


def lease_expired(job: JobRow, settings: Settings, now: datetime | None = None) -> bool:
    """True when a running job's worker has not renewed its lease within ``lease_timeout_s``."""
    beat = as_utc(job.heartbeat_at or job.updated_at)
    return beat is None or beat < (now or utcnow()) - timedelta(seconds=settings.lease_timeout_s)


@dataclass
class Claim:
    config: TrainingConfig
    dataset_id: str
    attempt: int


def _claim(settings: Settings, job_id: str, worker_host: str) -> Claim | None:
    """Mark the job running under a new attempt; None if there is nothing to do.

    Nothing to do: the job is finished, cancelled or gone, or another worker holds it
    with a live lease (a duplicate delivery). The status change is a conditional UPDATE
    on the status and attempt that were read, so two workers can never both claim it.
    """
    now = utcnow()
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id, with_for_update=True)
        if job is None or job.status in TERMINAL_STATES:
            return None
        if job.status == JobStatus.running and not lease_expired(job, settings, now):
            log.info("job %s: held by %s with a live lease; duplicate delivery ignored", job_id, job.worker_host)
            return None
        if job.cancel_requested:
            job.status, job.finished_at, job.updated_at = JobStatus.cancelled, now, now
            _drop_checkpoint(session, job_id)
            return None
        if job.dataset_id is None:
            job.status, job.error = JobStatus.failed, "the job's dataset was deleted before it ran"
            job.finished_at = job.updated_at = now
            _drop_checkpoint(session, job_id)
            return None
        if job.attempts >= settings.max_attempts:
            job.status, job.finished_at, job.updated_at = JobStatus.failed, now, now
            job.error = give_up_message(job.attempts, job.error)
            _drop_checkpoint(session, job_id)
            return None
        seen_status, seen_attempts = job.status, job.attempts
        config, dataset_id = TrainingConfig.model_validate(job.config), job.dataset_id
        started_at = job.started_at or now
        result = session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == seen_status, JobRow.attempts == seen_attempts)
            .values(
                status=JobStatus.running,
                attempts=seen_attempts + 1,
                worker_host=worker_host,
                heartbeat_at=now,
                started_at=started_at,
                updated_at=now,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            return None
        return Claim(config, dataset_id, seen_attempts + 1)


def give_up_message(attempts: int, last_error: str | None) -> str:
    detail = f" (last: {last_error})" if last_error else ""
    return f"gave up after {attempts} attempts: each time the worker running the job was lost{detail}"


def _drop_checkpoint(session, job_id: str) -> None:  # noqa: ANN001
    session.execute(delete(JobCheckpointRow).where(JobCheckpointRow.job_id == job_id))


def _held(job: JobRow | None, attempt: int) -> bool:
    """Whether this runner still holds the job's lease (fencing by attempt number)."""
    return job is not None and job.status == JobStatus.running and job.attempts == attempt


class Lease:
    """Renews a running job's heartbeat from a thread; ``lost`` is set once the job is no longer ours."""

    def __init__(self, settings: Settings, job_id: str, attempt: int) -> None:
        self.settings, self.job_id, self.attempt = settings, job_id, attempt
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def renew(self) -> bool:
        with session_scope(self.settings.resolved_database_url) as session:
            result = session.execute(
                update(JobRow)
                .where(JobRow.id == self.job_id, JobRow.status == JobStatus.running, JobRow.attempts == self.attempt)
                .values(heartbeat_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                self.mark_lost()
        return not self.lost.is_set()

    def mark_lost(self) -> None:
        if not self.lost.is_set():
            log.warning("job %s: lease of attempt %d lost; this runner stops", self.job_id, self.attempt)
            self.lost.set()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s) and not self.lost.is_set():
            try:
                self.renew()
            except Exception:  # a database hiccup: retry at the next beat; the lease outlives several
                log.warning("job %s: heartbeat failed:\n%s", self.job_id, traceback.format_exc())

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:  # noqa: ANN002
        self._stop.set()
        self._thread.join(timeout=5)


class _CancelFlag:
    """Reads the job's cancel flag from the database at most every ``interval`` seconds;
    also true once the lease is lost, so a runner that lost its job stops training."""

    def __init__(self, settings: Settings, job_id: str, lease: Lease | None = None) -> None:
        self.settings, self.job_id, self.lease = settings, job_id, lease
        self.interval = settings.cancel_poll_s
        self.last_check = 0.0
        self.cancelled = False

    def __call__(self) -> bool:
        if self.lease is not None and self.lease.lost.is_set():
            return True
        now = time.monotonic()
        if not self.cancelled and now - self.last_check >= self.interval:
            self.last_check = now
            with session_scope(self.settings.resolved_database_url) as session:
                job = session.get(JobRow, self.job_id)
                self.cancelled = job is None or bool(job.cancel_requested)
        return self.cancelled


class _EpochRecorder:
    """The fit() callback: progress and the epoch's history row, a heartbeat, and, at most every
    ``checkpoint_db_every_s``, a copy of the checkpoint fit() just wrote into ``job_checkpoints``."""

    def __init__(
        self, settings: Settings, job_id: str, device: str, lease: Lease, checkpoint: Path, resumed_from: int
    ) -> None:
        self.settings, self.job_id, self.device, self.lease = settings, job_id, device, lease
        self.checkpoint, self.resumed_from = checkpoint, resumed_from
        self.last_copy = float("-inf")

    def __call__(self, report: EpochReport) -> None:
        data = {**report.to_json(), "attempt": self.lease.attempt}
        now = utcnow()
        with session_scope(self.settings.resolved_database_url) as session:
            job = session.get(JobRow, self.job_id, with_for_update=True)
            if not _held(job, self.lease.attempt):
                self.lease.mark_lost()
                return
            job.progress = {
                "epoch": report.epoch,
                "epochs": report.epochs,
                "losses": report.losses,
                "train_metrics": report.train_metrics,
                "validation_metrics": report.validation_metrics,
                "epoch_seconds": report.elapsed_s,
                "attempt": self.lease.attempt,
                "resumed_from_epoch": self.resumed_from,
            }
            job.device = self.device
            job.heartbeat_at = job.updated_at = now
            session.merge(JobEpochRow(job_id=self.job_id, epoch=report.epoch, report=data))
            due = time.monotonic() - self.last_copy >= self.settings.checkpoint_db_every_s
            if due and report.epoch < report.epochs and self.checkpoint.exists():
                blob = self.checkpoint.read_bytes()
                session.merge(JobCheckpointRow(job_id=self.job_id, epoch=report.epoch, blob=blob, updated_at=now))
                self.last_copy = time.monotonic()


def _checkpoint_epoch(path: Path) -> int:
    """The epoch a local checkpoint file ends at; 0 (and the file removed) if it is unreadable."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return int(json.loads(handle.metadata()["checkpoint"])["epoch"])
    except Exception:
        log.warning("checkpoint %s unreadable; starting without it", path)
        path.unlink(missing_ok=True)
        return 0


def _restore_checkpoint(settings: Settings, job_id: str, path: Path) -> int:
    """Put the newest checkpoint of the job (database row or a local file from an earlier
    attempt on this host) at ``path``; returns its epoch (0: train from scratch)."""
    local = _checkpoint_epoch(path) if path.exists() else 0
    with session_scope(settings.resolved_database_url) as session:
        row = session.get(JobCheckpointRow, job_id)
        if row is None or row.epoch <= local:
            return local
        epoch, blob = row.epoch, row.blob
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("job %s: resuming from the database checkpoint at epoch %d", job_id, epoch)
    return epoch


def sparsity_of(model: TrainedModel) -> dict:
    """Active knots per spline layer (the BV2 sparsity effect of paper 000)."""
    layers = []
    for index, spline in enumerate(model.network.splines()):
        active = spline.active_knots()
        per_neuron = active.sum(dim=1).tolist()
        layers.append(
            {
                "layer": index,
                "neurons": len(per_neuron),
                "active_knots": int(sum(per_neuron)),
                "active_knots_per_neuron": per_neuron,
                "interior_knots_per_neuron": int(active.shape[1]),
            }
        )
    return {"layers": layers, "total_active_knots": int(sum(layer["active_knots"] for layer in layers))}


def certificate_of(model: TrainedModel, inputs: np.ndarray) -> dict:
    small = sum(model.config.architecture.hidden) <= LIPSDP_MAX_NEURONS and model.config.architecture.kind == "mlp"
    rng = np.random.default_rng(0)
    points = inputs if inputs.shape[0] <= 2048 else inputs[rng.choice(inputs.shape[0], 2048, replace=False)]
    return certificate_report(
        model.network,
        points,
        include_lipsdp=small,
        max_pairs=LOWER_BOUND_PAIRS,
        jacobian_points=LOWER_BOUND_POINTS,
    )


def _finish(settings: Settings, job_id: str, attempt: int, **fields) -> None:  # noqa: ANN003
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id, with_for_update=True)
        if not _held(job, attempt):
            return
        for key, value in fields.items():
            setattr(job, key, value)
        job.finished_at = job.updated_at = utcnow()
        _drop_checkpoint(session, job_id)


def _store_model(settings: Settings, job_id: str, claim: Claim, model: TrainedModel, train_seconds: float) -> bool:
    """Write the model and mark the job succeeded in one transaction; False if the lease was lost."""
    document, weights = model_to_parts(model)
    certificate = certificate_of(model, _dataset_inputs(settings, claim.dataset_id))
    sparsity = sparsity_of(model)
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id, with_for_update=True)
        if not _held(job, claim.attempt):
            return False
        existing = session.query(ModelRow).filter_by(job_id=job_id).one_or_none()
        if existing is None:
            row = ModelRow(
                id=new_id(),
                tenant_id=job.tenant_id,
                job_id=job_id,
                dataset_id=claim.dataset_id,
                task=model.task,
                document=document,
                weights=weights,
                weights_sha256=document["weights_sha256"],
                metrics=model.metrics,
                certificate=certificate,
                sparsity=sparsity,
                parameter_count=model.network.parameter_count(),
            )
            session.add(row)
            model_id = row.id
        else:
            model_id = existing.id
        job.status = JobStatus.succeeded
        job.model_id = model_id
        job.train_seconds = train_seconds
        job.finished_at = job.updated_at = utcnow()
        _drop_checkpoint(session, job_id)
    return True


def _dataset_inputs(settings: Settings, dataset_id: str) -> np.ndarray:
    with session_scope(settings.resolved_database_url) as session:
        row = session.get(DatasetRow, dataset_id)
        if row is None:
            return np.zeros((0, 0))
        return dataset_from_row(row).X


def run_training_job(settings: Settings, job_id: str, *, worker_host: str) -> None:
    claim = _claim(settings, job_id, worker_host)
    if claim is None:
        log.info("job %s: nothing to do", job_id)
        return
    with Lease(settings, job_id, claim.attempt) as lease:
        _run_claimed(settings, job_id, claim, lease)


def _run_claimed(settings: Settings, job_id: str, claim: Claim, lease: Lease) -> None:
    checkpoint = settings.checkpoint_dir / f"{job_id}.ckpt"
    try:
        with session_scope(settings.resolved_database_url) as session:
            row = session.get(DatasetRow, claim.dataset_id)
            if row is None:
                raise RuntimeError("the job's dataset was deleted before it ran")
            dataset = dataset_from_row(row)
        device = str(resolve_device(claim.config.device))
        settings.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        resumed_from = _restore_checkpoint(settings, job_id, checkpoint)
        if not _record_start(settings, job_id, claim.attempt, device, resumed_from):
            lease.mark_lost()
            return
        began = time.perf_counter()
        result = fit(
            dataset,
            claim.config,
            callback=_EpochRecorder(settings, job_id, device, lease, checkpoint, resumed_from),
            should_stop=_CancelFlag(settings, job_id, lease),
            checkpoint_path=checkpoint,
            resume=True,
        )
        train_seconds = time.perf_counter() - began
        if lease.lost.is_set():
            return  # the job was re-queued or taken over: whoever holds it now finishes it
        if result.stopped:
            _finish(settings, job_id, claim.attempt, status=JobStatus.cancelled)
        elif not _store_model(settings, job_id, claim, result.model, train_seconds):
            return
        checkpoint.unlink(missing_ok=True)
    except Exception as exc:  # any failure is recorded on the row; the worker lives on
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
        _finish(settings, job_id, claim.attempt, status=JobStatus.failed, error=f"{type(exc).__name__}: {exc}")
        checkpoint.unlink(missing_ok=True)


def _record_start(settings: Settings, job_id: str, attempt: int, device: str, resumed_from: int) -> bool:
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id, with_for_update=True)
        if not _held(job, attempt):
            return False
        job.device = device
        job.progress = {**(job.progress or {}), "attempt": attempt, "resumed_from_epoch": resumed_from}
        if resumed_from:
            job.progress["epoch"] = resumed_from
        job.heartbeat_at = job.updated_at = utcnow()
        return True
