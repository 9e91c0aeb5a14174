"""One training job, start to finish, with the ``jobs`` row kept true at every step.

Idempotent: a job already finished is left alone, and a model is written in the
same transaction that marks the job succeeded (``models.job_id`` is unique), so
a redelivered message can never create a second model.
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import UTC, datetime

import numpy as np

from api_schemas import TERMINAL_STATES, JobStatus, TrainingConfig
from lipspline.certificates import certificate_report
from lipspline.model import TrainedModel
from lipspline.serialization import model_to_parts
from lipspline.training import EpochReport, fit, resolve_device
from service.db.dataset_blob import dataset_from_row
from service.db.engine import session_scope
from service.db.ids import new_id
from service.db.tables import DatasetRow, JobEpochRow, JobRow, ModelRow
from service.settings import Settings

log = logging.getLogger(__name__)

#: LipSDP-Neuron is solved at training time only for nets this small (it is an SDP).
LIPSDP_MAX_NEURONS = 32
#: pairs and points for the lower bounds stored with every model
LOWER_BOUND_PAIRS = 4096
LOWER_BOUND_POINTS = 128


def _now() -> datetime:
    return datetime.now(UTC)


def _claim(settings: Settings, job_id: str, worker_host: str) -> tuple[TrainingConfig, str] | None:
    """Mark the job running; None if there is nothing to do (finished, cancelled, gone)."""
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id, with_for_update=True)
        if job is None or job.status in TERMINAL_STATES:
            return None
        if job.cancel_requested:
            job.status, job.finished_at, job.updated_at = JobStatus.cancelled, _now(), _now()
            return None
        if job.dataset_id is None:
            job.status, job.error = JobStatus.failed, "the job's dataset was deleted before it ran"
            job.finished_at = job.updated_at = _now()
            return None
        job.status = JobStatus.running
        job.attempts += 1
        job.worker_host = worker_host
        job.started_at = job.started_at or _now()
        job.updated_at = _now()
        job.error = None
        return TrainingConfig.model_validate(job.config), job.dataset_id


class _CancelFlag:
    """Reads the job's cancel flag from the database at most every ``interval`` seconds."""

    def __init__(self, settings: Settings, job_id: str) -> None:
        self.settings, self.job_id = settings, job_id
        self.interval = settings.cancel_poll_s
        self.last_check = 0.0
        self.cancelled = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.cancelled and now - self.last_check >= self.interval:
            self.last_check = now
            with session_scope(self.settings.resolved_database_url) as session:
                job = session.get(JobRow, self.job_id)
                self.cancelled = job is None or bool(job.cancel_requested)
        return self.cancelled


def _record_epoch(settings: Settings, job_id: str, device: str, report: EpochReport) -> None:
    data = report.to_json()
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id)
        if job is None:
            return
        job.progress = {
            "epoch": report.epoch,
            "epochs": report.epochs,
            "losses": report.losses,
            "train_metrics": report.train_metrics,
            "validation_metrics": report.validation_metrics,
            "epoch_seconds": report.elapsed_s,
        }
        job.device = device
        job.updated_at = _now()
        session.merge(JobEpochRow(job_id=job_id, epoch=report.epoch, report=data))


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


def _finish(settings: Settings, job_id: str, **fields) -> None:  # noqa: ANN003
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id)
        if job is None or job.status in TERMINAL_STATES:
            return
        for key, value in fields.items():
            setattr(job, key, value)
        job.finished_at = job.updated_at = _now()


def _store_model(settings: Settings, job_id: str, dataset_id: str, model: TrainedModel, train_seconds: float) -> None:
    document, weights = model_to_parts(model)
    certificate = certificate_of(model, _dataset_inputs(settings, dataset_id))
    sparsity = sparsity_of(model)
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id, with_for_update=True)
        if job is None or job.status in TERMINAL_STATES:
            return
        existing = session.query(ModelRow).filter_by(job_id=job_id).one_or_none()
        if existing is None:
            row = ModelRow(
                id=new_id(),
                tenant_id=job.tenant_id,
                job_id=job_id,
                dataset_id=dataset_id,
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
        job.finished_at = job.updated_at = _now()


def _dataset_inputs(settings: Settings, dataset_id: str) -> np.ndarray:
    with session_scope(settings.resolved_database_url) as session:
        row = session.get(DatasetRow, dataset_id)
        if row is None:
            return np.zeros((0, 0))
        return dataset_from_row(row).X


def run_training_job(settings: Settings, job_id: str, *, worker_host: str) -> None:
    claimed = _claim(settings, job_id, worker_host)
    if claimed is None:
        log.info("job %s: nothing to do", job_id)
        return
    config, dataset_id = claimed
    try:
        with session_scope(settings.resolved_database_url) as session:
            row = session.get(DatasetRow, dataset_id)
            if row is None:
                raise RuntimeError("the job's dataset was deleted before it ran")
            dataset = dataset_from_row(row)
        device = str(resolve_device(config.device))
        _record_device(settings, job_id, device)
        checkpoint = settings.checkpoint_dir / f"{job_id}.ckpt"
        settings.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        result = fit(
            dataset,
            config,
            callback=lambda report: _record_epoch(settings, job_id, device, report),
            should_stop=_CancelFlag(settings, job_id),
            checkpoint_path=checkpoint,
            resume=True,
        )
        train_seconds = time.perf_counter() - began
        if result.stopped:
            _finish(settings, job_id, status=JobStatus.cancelled)
        else:
            _store_model(settings, job_id, dataset_id, result.model, train_seconds)
        checkpoint.unlink(missing_ok=True)
    except Exception as exc:  # any failure is recorded on the row; the worker lives on
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
        _finish(settings, job_id, status=JobStatus.failed, error=f"{type(exc).__name__}: {exc}")


def _record_device(settings: Settings, job_id: str, device: str) -> None:
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(JobRow, job_id)
        if job is not None:
            job.device = device
            job.updated_at = _now()
