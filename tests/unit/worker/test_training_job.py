"""The worker's job runner in-process, on a real SQLite database (no broker, no Celery).

``run_training_job`` is what a Celery task calls; here it is called directly, so every branch of
a job's life can be reached and checked on the rows it leaves: a seeded job that succeeds (model,
certificate, robustness curve, history, no checkpoint left), a redelivered message that changes
nothing, a cancelled job, a job whose lease another runner holds, a dataset whose stored object
is gone, and a checkpoint that resumes where the database says.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from api_schemas import JobStatus, TrainingConfig
from api_schemas.http import TrainingOutcomeFields
from lipspline.data import Dataset
from lipspline_platform import datasets
from lipspline_platform.db.dataset_blob import dataset_to_bytes
from lipspline_platform.db.engine import dispose_all, session_scope
from lipspline_platform.db.migrate import upgrade
from lipspline_platform.db.tables import DEFAULT_TENANT, DatasetRow, JobCheckpointRow, JobRow, ModelRow
from lipspline_platform.jobs import lifecycle
from lipspline_platform.settings import Settings
from worker import training_job
from worker.training_job import run_training_job

HOST = "unit@test"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path, heartbeat_s=0.5, cancel_poll_s=0.01, checkpoint_db_every_s=0.0)
    upgrade(settings.resolved_database_url)
    yield settings
    dispose_all()


def circle(n: int = 120, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2))
    y = (np.sum(x**2, axis=1) < 0.5).astype(np.int64)
    return Dataset(X=x, y=y, task="classification", feature_names=["a", "b"], classes=[0, 1], name="circle")


def add_dataset(settings: Settings, dataset: Dataset) -> str:
    with session_scope(settings.resolved_database_url) as session:
        row = datasets.store_uploaded(session, settings, DEFAULT_TENANT, dataset, dataset_to_bytes(dataset),
                                      source_format="json", target_name="y", tags=[], description=None)
        return row.id


def add_job(settings: Settings, dataset_id: str, config: dict, job_id: str = "j1") -> str:
    with session_scope(settings.resolved_database_url) as session:
        lifecycle.submit(session, job_id=job_id, tenant_id=DEFAULT_TENANT, dataset_id=dataset_id,
                         config=TrainingConfig.model_validate(config), queue="cpu")
    return job_id


def job_row(settings: Settings, job_id: str) -> JobRow:
    with session_scope(settings.resolved_database_url) as session:
        row = session.get(JobRow, job_id)
        session.expunge(row)
        return row


def models_of(settings: Settings, job_id: str) -> list[ModelRow]:
    with session_scope(settings.resolved_database_url) as session:
        rows = session.query(ModelRow).filter(ModelRow.job_id == job_id).all()
        for row in rows:
            session.expunge(row)
        return rows


def checkpoint_rows(settings: Settings) -> int:
    with session_scope(settings.resolved_database_url) as session:
        return session.query(JobCheckpointRow).count()


SMALL = {"architecture": {"hidden": [4]}, "training": {"epochs": 3, "seed": 0, "batch_size": 32}, "device": "cpu"}


def test_a_job_runs_to_a_stored_certified_model_and_leaves_no_checkpoint(settings: Settings) -> None:
    job_id = add_job(settings, add_dataset(settings, circle()), SMALL)
    run_training_job(settings, job_id, worker_host=HOST)

    row = job_row(settings, job_id)
    assert row.status == JobStatus.succeeded and row.attempts == 1 and row.worker_host == HOST
    assert row.progress["epoch"] == 3 and row.progress["stop_reason"] == "max_epochs"
    (model,) = models_of(settings, job_id)
    certificate = model.certificate
    assert 0 < certificate["certified"] < float("inf")
    assert certificate["certified"] >= certificate["best_lower_bound"]  # sound against its own lower bounds
    assert model.metrics["certified_accuracy"]["points"] > 0  # the robustness curve of the stored model
    assert model.sparsity["layers"][0]["neurons"] == 4
    assert checkpoint_rows(settings) == 0
    assert not (settings.checkpoint_dir / f"{job_id}.ckpt").exists()


def test_a_redelivered_message_for_a_finished_job_changes_nothing(settings: Settings) -> None:
    job_id = add_job(settings, add_dataset(settings, circle()), SMALL)
    run_training_job(settings, job_id, worker_host=HOST)
    before = job_row(settings, job_id)

    run_training_job(settings, job_id, worker_host="other@host")  # the broker delivered the message again

    after = job_row(settings, job_id)
    assert (after.status, after.attempts, after.worker_host) == (before.status, before.attempts, HOST)
    assert len(models_of(settings, job_id)) == 1


def test_a_seeded_job_is_repeatable(settings: Settings) -> None:
    dataset_id = add_dataset(settings, circle())
    first, second = add_job(settings, dataset_id, SMALL, "a"), add_job(settings, dataset_id, SMALL, "b")
    run_training_job(settings, first, worker_host=HOST)
    run_training_job(settings, second, worker_host=HOST)
    (a,), (b,) = models_of(settings, first), models_of(settings, second)
    assert a.weights_sha256 == b.weights_sha256
    assert a.certificate["certified"] == b.certificate["certified"]


def test_a_cancel_request_stops_the_run_without_a_model(settings: Settings) -> None:
    job_id = add_job(settings, add_dataset(settings, circle()), {**SMALL, "training": {"epochs": 50, "seed": 0}})
    with session_scope(settings.resolved_database_url) as session:
        lifecycle.request_cancel(session, session.get(JobRow, job_id))
    run_training_job(settings, job_id, worker_host=HOST)

    row = job_row(settings, job_id)
    assert row.status == JobStatus.cancelled
    assert models_of(settings, job_id) == []


def test_a_dataset_whose_stored_object_is_gone_fails_the_job_with_that_reason(settings: Settings) -> None:
    dataset_id = add_dataset(settings, circle())
    job_id = add_job(settings, dataset_id, SMALL)
    with session_scope(settings.resolved_database_url) as session:
        uri = session.get(DatasetRow, dataset_id).content_uri
    assert uri is not None and uri.startswith("file://")  # the embedded default keeps uploads in its store
    Path(uri.removeprefix("file://")).unlink()

    run_training_job(settings, job_id, worker_host=HOST)

    row = job_row(settings, job_id)
    assert row.status == JobStatus.failed and f"datasets/{dataset_id}" in row.error, row.error
    assert str(settings.data_dir) not in row.error  # the tenant reads this: no server path in it
    assert models_of(settings, job_id) == []


def test_a_job_whose_live_lease_another_runner_holds_is_left_alone(settings: Settings) -> None:
    job_id = add_job(settings, add_dataset(settings, circle()), SMALL)
    assert lifecycle.claim(settings, job_id, "first@host") is not None  # running, heartbeat fresh

    run_training_job(settings, job_id, worker_host=HOST)

    row = job_row(settings, job_id)
    assert (row.status, row.attempts, row.worker_host) == (JobStatus.running, 1, "first@host")
    assert models_of(settings, job_id) == []


def test_a_rerun_resumes_from_the_database_checkpoint(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attempt 1 dies after its second epoch (its checkpoint is in the database); attempt 2, on a host
    without the local file, starts at epoch 3 and finishes the planned 4."""
    config = {**SMALL, "training": {"epochs": 4, "seed": 0, "batch_size": 32}}
    job_id = add_job(settings, add_dataset(settings, circle()), config)

    class Killed(BaseException):  # not an Exception: the runner's failure handler must not see it
        pass

    recorded = training_job._EpochRecorder.__call__

    def dies_after_two(self, report) -> None:
        recorded(self, report)
        if report.epoch == 2:
            raise Killed

    monkeypatch.setattr(training_job._EpochRecorder, "__call__", dies_after_two)
    with pytest.raises(Killed):
        run_training_job(settings, job_id, worker_host=HOST)
    monkeypatch.undo()
    assert checkpoint_rows(settings) == 1
    (settings.checkpoint_dir / f"{job_id}.ckpt").unlink()  # another host: only the database copy is left
    with session_scope(settings.resolved_database_url) as session:  # the reconciler's re-queue, in short
        session.query(JobRow).filter(JobRow.id == job_id).update({"status": JobStatus.queued})

    run_training_job(settings, job_id, worker_host="second@host")

    row = job_row(settings, job_id)
    assert row.status == JobStatus.succeeded and row.attempts == 2
    assert row.progress["resumed_from_epoch"] == 2 and row.progress["epoch"] == 4
    assert checkpoint_rows(settings) == 0


def test_progress_documents_hold_json_and_the_outcome_fields_the_contract_declares(settings: Settings) -> None:
    job_id = add_job(settings, add_dataset(settings, circle()), SMALL)
    run_training_job(settings, job_id, worker_host=HOST)
    progress = job_row(settings, job_id).progress
    json.dumps(progress)  # stored as JSON: nothing a driver would have to coerce
    assert set(TrainingOutcomeFields.model_fields) <= set(progress)
    assert {"epoch", "epochs", "epochs_planned", "best_epoch", "attempt"} <= set(progress)
