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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from api_schemas import JobStatus, TrainingConfig
from api_schemas.http import TrainingOutcomeFields
from lipspline.certificates import CertificateReport, certificate_report
from lipspline.data import Dataset
from lipspline.nn.model import TrainedModel
from lipspline.nn.serialization import model_to_parts
from lipspline.training.data import StreamedData
from lipspline.training.loop import EpochReport, TrainingOutcome, fit, resolve_device
from lipspline.training.robust_accuracy import robustness_metrics
from lipspline_platform.db.dataset_blob import dataset_from_row
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import DatasetRow
from lipspline_platform.jobs import lifecycle
from lipspline_platform.jobs.lifecycle import Claim
from lipspline_platform.observability import metrics, structured_logging
from lipspline_platform.settings import Settings
from lipspline_platform.storage import dataset_refs
from worker import sweep_trials

log = logging.getLogger(__name__)

#: LipSDP-Neuron is solved at training time only for nets this small (it is an SDP).
LIPSDP_MAX_NEURONS = 32
#: wall-clock limit of that solve (it runs in a child process that is killed past it)
LIPSDP_TIME_LIMIT_S = 60.0
#: pairs and points for the lower bounds stored with every model
LOWER_BOUND_PAIRS = 4096
LOWER_BOUND_POINTS = 128


class Lease:
    """Renews a running job's heartbeat from a thread; ``lost`` is set once the job is no longer ours."""

    def __init__(self, settings: Settings, job_id: str, attempt: int) -> None:
        self.settings, self.job_id, self.attempt = settings, job_id, attempt
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def renew(self) -> bool:
        if not lifecycle.renew_lease(self.settings, self.job_id, self.attempt):
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

    def __exit__(self, *_exc) -> None:
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
            self.cancelled = lifecycle.cancel_requested(self.settings, self.job_id)
        return self.cancelled

    def stop_now(self) -> None:
        """Stop without waiting for the next database read (the job's cancel flag is already set)."""
        self.cancelled = True


def epoch_progress(report: EpochReport, attempt: int, resumed_from: int, best_epoch: int | None) -> dict:
    """The job's ``progress`` after an epoch: where the run is, its limit, and its best epoch so far.

    ``epochs`` and ``epochs_planned`` are both the run's epoch limit (``epochs`` for clients
    written before the limit could be automatic; ``epochs_planned`` says it is a plan: early
    stopping usually ends the run before it).
    """
    return {
        "epoch": report.epoch,
        "epochs": report.epochs,
        "epochs_planned": report.epochs,
        "best_epoch": best_epoch,
        "lr": report.lr,
        "losses": report.losses,
        "train_metrics": report.train_metrics,
        "validation_metrics": report.validation_metrics,
        "epoch_seconds": report.elapsed_s,
        "attempt": attempt,
        "resumed_from_epoch": resumed_from,
    }


def outcome_progress(outcome: TrainingOutcome) -> dict:
    """What a finished run adds to the job's ``progress``: the outcome's members the contract declares
    (``TrainingOutcomeFields``: why it stopped, what it serves, grid coverage, the loss it minimised)."""
    return {name: getattr(outcome, name) for name in TrainingOutcomeFields.model_fields}


class _EpochRecorder:
    """The fit() callback: progress and the epoch's history row, a heartbeat, and, at most every
    ``checkpoint_db_every_s``, a copy of the checkpoint fit() just wrote into ``job_checkpoints``;
    then ``after_epoch`` (a sweep trial's halving check), if set."""

    after_epoch: Callable[[EpochReport], None] | None = None

    def __init__(
        self, settings: Settings, job_id: str, device: str, lease: Lease, checkpoint: Path, resumed_from: int
    ) -> None:
        self.settings, self.job_id, self.device, self.lease = settings, job_id, device, lease
        self.checkpoint, self.resumed_from = checkpoint, resumed_from
        self.last_copy = float("-inf")
        self.best_epoch: int | None = None  # best seen by this attempt (the outcome has the run's)

    def __call__(self, report: EpochReport) -> None:
        metrics.JOB_EPOCHS.inc()
        metrics.JOB_EPOCH_DURATION.observe(report.elapsed_s)
        if report.improved:
            self.best_epoch = report.epoch
        progress = epoch_progress(report, self.lease.attempt, self.resumed_from, self.best_epoch)
        checkpoint = None
        due = time.monotonic() - self.last_copy >= self.settings.checkpoint_db_every_s
        if due and report.epoch < report.epochs and self.checkpoint.exists():
            checkpoint = (report.epoch, self.checkpoint.read_bytes())
        held = lifecycle.record_epoch(
            self.settings,
            self.job_id,
            self.lease.attempt,
            progress=progress,
            history={**report.to_json(), "attempt": self.lease.attempt},
            device=self.device,
            checkpoint=checkpoint,
        )
        if not held:
            self.lease.mark_lost()
        elif checkpoint is not None:
            self.last_copy = time.monotonic()
        if held and self.after_epoch is not None:
            self.after_epoch(report)


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
    stored = lifecycle.latest_checkpoint(settings, job_id, newer_than=local)
    if stored is None:
        return local
    epoch, blob = stored
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


def certificate_of(model: TrainedModel, inputs: np.ndarray) -> CertificateReport:
    small = sum(model.config.architecture.hidden) <= LIPSDP_MAX_NEURONS and model.config.architecture.kind == "mlp"
    rng = np.random.default_rng(0)
    points = inputs if inputs.shape[0] <= 2048 else inputs[rng.choice(inputs.shape[0], 2048, replace=False)]
    return certificate_report(
        model.network,
        points,
        include_lipsdp=small,
        lipsdp_time_limit_s=LIPSDP_TIME_LIMIT_S,
        max_pairs=LOWER_BOUND_PAIRS,
        jacobian_points=LOWER_BOUND_POINTS,
    )


def stored_model(
    model: TrainedModel, inputs: np.ndarray, dataset: Dataset | None = None,
    rows: tuple[np.ndarray, np.ndarray, str] | None = None,
) -> lifecycle.NewModel:
    """Everything stored with a trained model: its parts, its certificate on ``inputs``, its sparsity;
    with the training ``dataset``, its certified robust accuracy (or output tolerance) under that certificate."""
    document, weights = model_to_parts(model)
    with metrics.JOB_CERTIFICATE_DURATION.time():
        certificate = certificate_of(model, inputs)
    model_metrics = dict(model.metrics)
    if dataset is not None or rows is not None:
        robustness = robustness_metrics(model, dataset, certificate.certified, rows)
        warnings = [*model_metrics.get("warnings", []), *robustness.pop("warnings", [])]
        model_metrics.update(robustness, warnings=warnings)
    return lifecycle.NewModel(
        task=model.task,
        document=document,
        weights=weights,
        weights_sha256=document["weights_sha256"],
        metrics=model_metrics,
        certificate=certificate.to_json(),
        sparsity=sparsity_of(model),
        parameter_count=model.network.parameter_count(),
    )


def _store_model(
    settings: Settings, job_id: str, claim: Claim, model: TrainedModel, train_seconds: float, outcome: TrainingOutcome,
    data: Dataset | StreamedData,
) -> bool:
    """Certify the model, then store it and mark the job succeeded in one transaction; False if the lease was lost."""
    if isinstance(data, StreamedData):  # too large to hold: the certificate and CRA read its sample
        validation = data.raw_rows("validation")
        split = "validation" if validation.n_rows else "training"
        rows = validation if validation.n_rows else data.raw_rows("train")
        stored = stored_model(
            model, data.raw_rows("train").all_rows(), None, rows=(rows.all_rows(), rows.targets, split)
        )
    else:  # the rows it trained on, already in memory (reading the dataset again doubled the job's peak)
        stored = stored_model(model, data.X, data)
    return lifecycle.succeed(
        settings, job_id, claim.attempt, claim.dataset_id, stored, train_seconds, outcome=outcome_progress(outcome)
    )


def _training_data(settings: Settings, row: DatasetRow, config: TrainingConfig) -> Dataset | StreamedData:
    """An upload whole in memory; a dataset by reference streamed, after checking its objects are as registered."""
    if row.uri is None:
        return dataset_from_row(row, settings)
    return StreamedData(dataset_refs.open_stream(settings, row, config))


def preload() -> None:
    """Import what a process's first job would import lazily, once, when the worker starts.

    ``torch.optim.Optimizer.__init__`` imports ``torch._dynamo`` on its first call: 2-3.5 s
    of imports on a loaded 2-core machine, paid by every fresh pool child before its first
    epoch (bench/bench_worker_recovery.py). Imports only: nothing here starts a thread or
    an OpenMP pool, so the prefork pool's children are forked from a clean parent.
    """
    import torch._dynamo  # noqa: F401


def run_training_job(settings: Settings, job_id: str, *, worker_host: str) -> None:
    claim = lifecycle.claim(settings, job_id, worker_host)
    if claim is None:
        log.info("job %s: nothing to do", job_id)
        return
    metrics.JOB_ATTEMPTS.inc()
    metrics.JOB_QUEUE_WAIT.observe(claim.waited_s)
    current = metrics.WORKER_CURRENT_JOB.labels(job_id)
    current.set(1)
    try:
        with structured_logging.bound(request_id=claim.request_id, job_id=job_id, attempt=claim.attempt):
            log.info("job %s: claimed (attempt %d, waited %.3f s)", job_id, claim.attempt, claim.waited_s)
            with Lease(settings, job_id, claim.attempt) as lease:
                _run_claimed(settings, job_id, claim, lease)
    finally:
        current.set(0)
    sweep_trials.after_job(settings, job_id)


def _run_claimed(settings: Settings, job_id: str, claim: Claim, lease: Lease) -> None:
    checkpoint = settings.checkpoint_dir / f"{job_id}.ckpt"
    try:
        with session_scope(settings.resolved_database_url) as session:
            row = session.get(DatasetRow, claim.dataset_id)
            if row is None:
                raise RuntimeError("the job's dataset was deleted before it ran")
            dataset = _training_data(settings, row, claim.config)
        device = str(resolve_device(claim.config.device))
        settings.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        resumed_from = _restore_checkpoint(settings, job_id, checkpoint)
        if not lifecycle.record_start(settings, job_id, claim.attempt, device, resumed_from):
            lease.mark_lost()
            return
        began = time.perf_counter()
        recorder = _EpochRecorder(settings, job_id, device, lease, checkpoint, resumed_from)
        stop_flag = _CancelFlag(settings, job_id, lease)
        recorder.after_epoch = sweep_trials.rung_check(settings, job_id, dataset.task, stop_flag.stop_now)
        result = fit(
            dataset,
            claim.config,
            callback=recorder,
            should_stop=stop_flag,
            checkpoint_path=checkpoint,
            resume=True,
            epoch_cap=settings.max_epochs,
        )
        train_seconds = time.perf_counter() - began
        metrics.JOB_TRAINING_DURATION.observe(train_seconds)
        if lease.lost.is_set():
            return  # the job was re-queued or taken over: whoever holds it now finishes it
        if result.stopped:
            lifecycle.stop_cancelled(settings, job_id, claim.attempt, outcome=outcome_progress(result.outcome))
            metrics.JOBS_FINISHED.labels(JobStatus.cancelled.value).inc()
        elif not _store_model(settings, job_id, claim, result.model, train_seconds, result.outcome, dataset):
            return
        else:
            metrics.JOBS_FINISHED.labels(JobStatus.succeeded.value).inc()
            log.info("job %s: succeeded in %.3f s of training", job_id, train_seconds)
        checkpoint.unlink(missing_ok=True)
    except Exception as exc:  # any failure is recorded on the row; the worker lives on
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
        lifecycle.fail(settings, job_id, claim.attempt, f"{type(exc).__name__}: {exc}")
        metrics.JOBS_FINISHED.labels(JobStatus.failed.value).inc()
        metrics.JOB_FAILURES.labels(type(exc).__name__).inc()
        checkpoint.unlink(missing_ok=True)
