"""What the route tests share: an in-process service, the worker's side of a job, and checks.

* :class:`Service`: the real app (``service.app.create_app``) on a SQLite file in a temp dir,
  with the embedded (filesystem) broker under the same dir, an API key per tenant and a
  ``TestClient`` per key. No server, no worker process, no reconciler thread.
* :class:`Runner`: the worker's side of a job, played by the test through the real
  ``lipspline_platform.jobs.lifecycle`` functions (claim, record_epoch, succeed, fail,
  stop_cancelled); the model is trained in-process with ``lipspline.training.loop.fit`` on the
  uploaded data and stored exactly as ``worker/training_job.py::_store_model`` stores it.
* :class:`Trainer`: one trained model per (dataset content, config) per test session.
* :func:`problem`: the checks every error response must pass (RFC 9457 problem+json).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from api_schemas import TrainingConfig
from lipspline.training.loop import EpochReport, TrainingOutcome, fit
from lipspline_platform.db.dataset_blob import dataset_from_row
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import DEFAULT_TENANT, DatasetRow, JobRow, ModelRow
from lipspline_platform.jobs import lifecycle
from lipspline_platform.jobs.lifecycle import Claim
from lipspline_platform.settings import EMBEDDED_BROKER, Settings
from lipspline_platform.storage import artifacts
from service.app import create_app
from service.http.problems import PROBLEM_BASE, PROBLEM_JSON
from service.security import auth
from worker.training_job import epoch_progress, outcome_progress, stored_model

DB_FILE = "lipspline.sqlite3"
WORKER_HOST = "test@host"

#: 64 points in [-0.5, 0.5]^2, label 1 inside a small disc: two features, two classes
SEED_INPUTS = [[(i % 7) / 7 - 0.5, (i % 5) / 5 - 0.4] for i in range(64)]
SEED_TARGETS = [int(a * a + b * b < 0.1) for a, b in SEED_INPUTS]
#: the same points with a smooth numeric target (a regression dataset)
REGRESSION_TARGETS = [round(a - 0.5 * b, 6) for a, b in SEED_INPUTS]
#: a (2, [2], 1) deep-spline net, three epochs: trains in well under a second
TINY_CONFIG: dict[str, Any] = {
    "architecture": {"hidden": [2], "activation": "deepspline"},
    "spline": {"knots": 11, "range": 2.0},
    "training": {"epochs": 3, "batch_size": 16, "lr": 0.01, "seed": 0, "validation_split": 0.0},
    "device": "cpu",
}
#: a rate limit no ordinary test reaches (the rate-limit tests build their own service)
OPEN_RATE = {"rate_limit_per_s": 1e6, "rate_limit_burst": 1_000_000}


def seed_dataset_body(name: str = "seed", targets: list | None = None) -> dict[str, Any]:
    return {"name": name, "inputs": SEED_INPUTS, "targets": SEED_TARGETS if targets is None else targets}


def seed_csv() -> bytes:
    lines = ["x1,x2,y"] + [f"{a!r},{b!r},{t}" for (a, b), t in zip(SEED_INPUTS, SEED_TARGETS, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def problem(response: httpx.Response, status: int, kind: str | None = None, **expected: Any) -> dict[str, Any]:
    """Assert an RFC 9457 problem: status, media type, the members every problem has, and ``expected``.

    ``kind`` is the last part of ``type``; ``field=`` must be one of ``errors[].field``; any
    other keyword must equal the body's member of that name (``row=``, ``column=``, ``limit=``...).
    """
    assert response.status_code == status, (response.status_code, response.text[:800])
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert body["status"] == status, body
    assert isinstance(body["title"], str) and body["title"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert body["type"].startswith(PROBLEM_BASE), body
    assert body["instance"] == response.request.url.path, body
    if kind is not None:
        assert body["type"] == PROBLEM_BASE + kind, body
    field = expected.pop("field", None)
    if field is not None:
        assert field in [error["field"] for error in body.get("errors", [])], body
    for key, value in expected.items():
        assert key in body and body[key] == value, (key, value, body)
    return body


@dataclass(frozen=True)
class Trained:
    """A model trained and certified once, stored for every job that asks for the same thing."""

    model: lifecycle.NewModel
    reports: list[EpochReport]
    outcome: TrainingOutcome


class Trainer:
    """Trains with the real ``fit`` and builds the stored parts exactly as the worker does; one per key."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Trained] = {}

    def trained(self, settings: Settings, claim: Claim) -> Trained:
        with session_scope(settings.resolved_database_url) as session:
            row = session.get(DatasetRow, claim.dataset_id)
            assert row is not None, claim
            dataset, sha256 = dataset_from_row(row, settings), row.sha256
        key = (sha256, json.dumps(claim.config.to_json(), sort_keys=True))
        if key not in self._cache:
            self._cache[key] = self._train(dataset, claim.config)
        return self._cache[key]

    @staticmethod
    def _train(dataset: Any, config: TrainingConfig) -> Trained:
        reports: list[EpochReport] = []
        result = fit(dataset, config, callback=reports.append)
        return Trained(stored_model(result.model, dataset.X, dataset), reports, result.outcome)


class Runner:
    """The worker's side of a job, through the real lifecycle functions."""

    def __init__(self, settings: Settings, trainer: Trainer) -> None:
        self.settings, self.trainer = settings, trainer

    def claim(self, job_id: str) -> Claim:
        claim = lifecycle.claim(self.settings, job_id, WORKER_HOST)
        assert claim is not None, f"job {job_id} could not be claimed"
        assert lifecycle.record_start(self.settings, job_id, claim.attempt, "cpu", 0)
        return claim

    def record_epochs(self, job_id: str, claim: Claim, count: int | None = None) -> int:
        """Record the first ``count`` epochs of the trained model's history (all by default), as the worker does."""
        reports = self.trainer.trained(self.settings, claim).reports[:count]
        best_epoch = None
        for report in reports:
            best_epoch = report.epoch if report.improved else best_epoch
            progress = epoch_progress(report, claim.attempt, 0, best_epoch)
            history = {**report.to_json(), "attempt": claim.attempt}
            assert lifecycle.record_epoch(self.settings, job_id, claim.attempt, progress=progress, history=history,
                                          device="cpu")
        return len(reports)

    def succeed(self, job_id: str, claim: Claim) -> str:
        trained = self.trainer.trained(self.settings, claim)
        outcome = outcome_progress(trained.outcome)
        assert lifecycle.succeed(self.settings, job_id, claim.attempt, claim.dataset_id, trained.model, 0.25,
                                 outcome=outcome)
        with session_scope(self.settings.resolved_database_url) as session:
            model_id = session.get(JobRow, job_id).model_id
        assert model_id
        return model_id

    def fail(self, job_id: str, claim: Claim, error: str) -> None:
        lifecycle.fail(self.settings, job_id, claim.attempt, error)

    def stop_cancelled(self, job_id: str, claim: Claim) -> None:
        lifecycle.stop_cancelled(self.settings, job_id, claim.attempt)

    def run(self, job_id: str) -> str:
        """Claim, train (every epoch recorded) and succeed; the model's id."""
        claim = self.claim(job_id)
        self.record_epochs(job_id, claim)
        return self.succeed(job_id, claim)


class Service:
    """The app on a copy of a migrated SQLite database in ``data_dir``, with a client per tenant.

    ``client``: tenant ``default``; ``other``: tenant ``other``; ``anon``: no Authorization header.
    Clients never raise the server's exceptions: a bug is seen as the 500 a real client would get.
    """

    def __init__(self, data_dir: Path, template_db: Path, trainer: Trainer, **overrides: Any) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template_db, data_dir / DB_FILE)
        database_url = f"sqlite:///{(data_dir / DB_FILE).resolve()}"
        self.settings = Settings(data_dir=data_dir, database_url=database_url, broker_url=EMBEDDED_BROKER,
                                 reconcile_every_s=0, **{**OPEN_RATE, **overrides})
        self.app = create_app(self.settings)
        self.worker = Runner(self.settings, trainer)
        self.keys: dict[str, str] = {}
        self._clients: list[TestClient] = []
        self.client = self.client_for(DEFAULT_TENANT)
        self.other = self.client_for("other")
        self.anon = self.open_client(None)

    @property
    def database_url(self) -> str:
        return self.settings.resolved_database_url

    def create_key(self, tenant: str) -> str:
        """A new key for the tenant, as ``lipspline keys create --tenant NAME`` makes it."""
        with session_scope(self.database_url) as session:
            return auth.create_key(session, tenant)

    def scoped_key(self, tenant: str, *scopes: str, expires_at: Any = None) -> str:
        """A key with exactly these scopes (``lipspline keys create --scopes ...``)."""
        with session_scope(self.database_url) as session:
            return auth.create_key(session, tenant, frozenset(scopes), expires_at=expires_at)

    def client_for(self, tenant: str) -> TestClient:
        key = self.create_key(tenant)
        self.keys.setdefault(tenant, key)
        return self.open_client(key)

    def open_client(self, key: str | None) -> TestClient:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        client = TestClient(self.app, headers=headers, raise_server_exceptions=False)
        client.__enter__()  # one event-loop thread per client for all its requests
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in reversed(self._clients):
            client.__exit__(None, None, None)
        self._clients.clear()

    # ---- shortcuts that the tests would otherwise repeat
    def upload(self, body: dict | None = None, client: TestClient | None = None) -> str:
        response = (client or self.client).post("/v1/datasets", json=body or seed_dataset_body())
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def submit(self, dataset_id: str, config: dict | None = None, client: TestClient | None = None) -> str:
        response = (client or self.client).post("/v1/jobs", json={"dataset_id": dataset_id,
                                                                  "config": config or TINY_CONFIG})
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def trained_model(self, body: dict | None = None, client: TestClient | None = None) -> dict[str, str]:
        """Upload, submit, run the job through the lifecycle: the ids of dataset, job and model."""
        dataset_id = self.upload(body, client)
        job_id = self.submit(dataset_id, client=client)
        model_id = self.worker.run(job_id)
        return {"dataset_id": dataset_id, "job_id": job_id, "model_id": model_id}

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()


def tamper_weights(svc: Service, model_id: str) -> None:
    """Flip the last byte of a model's stored weights, wherever they are kept (row or artifact store)."""
    with session_scope(svc.database_url) as session:
        row = session.get(ModelRow, model_id)
        weights = bytearray(artifacts.read(svc.settings, row.weights, row.weights_uri))
        weights[-1] ^= 0x01
        if row.weights_uri is None:
            row.weights = bytes(weights)
            return
        uri = row.weights_uri
    store = artifacts.store_for(svc.settings)
    assert store is not None and uri == store.uri(f"weights/{model_id}")
    store.put(f"weights/{model_id}", bytes(weights))
