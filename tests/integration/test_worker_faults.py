"""Workers that die and brokers that lose messages (issue 5, items 4 and 5), with real processes:
`lipspline api` + `lipspline worker` (Celery prefork) against PostgreSQL and Redis.

- A worker's whole process group (main process and pool child) is SIGKILLed mid-training:
  the job's lease expires, the reconciler puts it back in the queue, a worker on another
  "host" (its own data dir, so only the database checkpoint can help) resumes it from a
  later epoch than 0, it succeeds, and exactly one model exists for it.
- Redis is restarted (a private server with no persistence) or its database flushed while
  jobs wait with no worker consuming: the reconciler re-sends them from the database, and
  once workers start every job runs and succeeds.

Timeouts are lowered through LIPSPLINE_* variables so each test takes well under a minute.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_service_e2e import upload_circle
from tests.support.processes import Deployment, free_port
from tests.support.services import fresh_postgres_database, fresh_redis_url

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

#: Redis database numbers reserved for these tests (tests/e2e uses 11)
KILL_REDIS_DB = 12
FLUSH_REDIS_DB = 13

LEASE_TIMEOUT_S = 4.0
RECONCILE_EVERY_S = 0.5
REDISPATCH_AFTER_S = 2.0
FAULT_ENV = {
    "LIPSPLINE_LEASE_TIMEOUT_S": str(LEASE_TIMEOUT_S),
    "LIPSPLINE_HEARTBEAT_S": "0.5",
    "LIPSPLINE_RECONCILE_EVERY_S": str(RECONCILE_EVERY_S),
    "LIPSPLINE_REDISPATCH_AFTER_S": str(REDISPATCH_AFTER_S),
    "LIPSPLINE_CHECKPOINT_DB_EVERY_S": "0",
    "LIPSPLINE_MAX_ATTEMPTS": "3",
    "LIPSPLINE_CANCEL_POLL_S": "0.2",
}


def config(epochs: int, batch_size: int = 32) -> dict:
    return {
        "architecture": {"hidden": [4], "activation": "deepspline"},
        "spline": {"knots": 21, "range": 3.0},
        "objective": {"mode": "bv2", "lambda": 1e-4, "mu": 1e-4},
        "training": {"epochs": epochs, "batch_size": batch_size, "lr": 0.01, "seed": 0, "validation_split": 0.2},
        "device": "cpu",
    }


def submit(http: httpx.Client, dataset_id: str, cfg: dict) -> str:
    response = http.post("/v1/jobs", json={"dataset_id": dataset_id, "config": cfg})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_job(http: httpx.Client, job_id: str, predicate, timeout_s: float, what: str) -> dict:
    deadline = time.monotonic() + timeout_s
    job: dict = {}
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id}: not {what} after {timeout_s}s: {job}")


def db_scalar(url: str, sql: str, **params) -> object:
    from sqlalchemy import text

    from lipspline_platform.db.engine import session_scope

    with session_scope(url) as session:
        return session.execute(text(sql), params).scalar()


@contextmanager
def deployment(tmp_path: Path, broker: str) -> Iterator[Deployment]:
    """`lipspline api` on a fresh PostgreSQL database; the test starts (and kills) its workers."""
    url, drop = fresh_postgres_database()
    env = {"LIPSPLINE_DATA_DIR": str(tmp_path / "api-data"), "LIPSPLINE_DATABASE_URL": url,
           "LIPSPLINE_BROKER_URL": broker, **FAULT_ENV}
    dep = Deployment(env, tmp_path, embedded=False, workers=0)
    dep.database_url = url
    try:
        with dep.running():
            yield dep
    finally:
        drop()


def test_sigkilled_worker_job_resumes_from_checkpoint_elsewhere(tmp_path: Path) -> None:
    with deployment(tmp_path, fresh_redis_url(KILL_REDIS_DB)) as dep:
        _kill_and_rescue(dep)


def _kill_and_rescue(dep: Deployment) -> None:
    epochs = 20
    first = dep.start_host_worker(f"faulty-{os.getpid()}")
    with dep.client() as http:
        dataset = upload_circle(http)
        job_id = submit(http, dataset["id"], config(epochs))
        past_three = lambda j: j["progress"].get("epoch", 0) >= 3 or j["status"] not in {"queued", "running"}  # noqa: E731
        running = wait_job(http, job_id, past_three, 180, "past epoch 3")
        assert running["status"] == "running", running
        assert running["worker_host"].startswith("faulty-") and running["attempts"] == 1
        saved = db_scalar(dep.database_url, "SELECT epoch FROM job_checkpoints WHERE job_id = :j", j=job_id)
        assert saved is not None and saved >= 1, "no checkpoint in the database after 3 epochs"

        first.kill_group()  # the whole worker: Celery main process and the pool child running the job
        killed_at = time.monotonic()
        assert not first.alive()

        # the lease runs out and the reconciler (in the API process) re-queues the job
        queued = wait_job(http, job_id, lambda j: j["status"] != "running", LEASE_TIMEOUT_S + 10, "released")
        released_s = time.monotonic() - killed_at
        assert queued["status"] == "queued", queued
        assert "lost" in queued["error"] and "re-queued" in queued["error"], queued
        assert queued["attempts"] == 1
        assert released_s <= LEASE_TIMEOUT_S + 5, f"job stayed running {released_s:.1f}s after its worker died"
        time.sleep(1.0)  # nobody consumes: it stays queued, never running with a dead worker
        assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"

        # a worker on another host (empty data dir) resumes from the database checkpoint
        second = dep.start_host_worker(f"rescuer-{os.getpid()}")
        done = wait_job(http, job_id, lambda j: j["status"] in {"succeeded", "failed", "cancelled"}, 180, "finished")
        assert done["status"] == "succeeded", (done, dep.logs())
        assert done["attempts"] == 2 and done["worker_host"].startswith("rescuer-") and done["error"] is None
        resumed_from = done["progress"]["resumed_from_epoch"]
        assert resumed_from >= saved > 0, done["progress"]

        history = http.get(f"/v1/jobs/{job_id}/metrics").json()["history"]
        assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
        second_run = [h["epoch"] for h in history if h["attempt"] == 2]
        assert second_run == list(range(resumed_from + 1, epochs + 1)), history
        assert all(h["attempt"] == 1 for h in history if h["epoch"] <= resumed_from)

        # exactly one model, and it is served
        assert db_scalar(dep.database_url, "SELECT count(*) FROM models WHERE job_id = :j", j=job_id) == 1
        models = [m for m in http.get("/v1/models").json()["items"] if m["job_id"] == job_id]
        assert len(models) == 1 and models[0]["id"] == done["model_id"]
        predicted = http.post(f"/v1/models/{done['model_id']}/predict", json={"inputs": [[0.0, 0.0]]})
        assert predicted.status_code == 200, predicted.text
        # the finished job's checkpoint is gone from the database and from the rescuer's disk
        assert db_scalar(dep.database_url, "SELECT count(*) FROM job_checkpoints WHERE job_id = :j", j=job_id) == 0
        assert not list((dep.workdir / f"rescuer-{os.getpid()}-data" / "checkpoints").glob("*.ckpt"))
        assert second.alive()


class PrivateRedis:
    """A redis-server of the test's own, without persistence: a restart loses every queued message."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir)]
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115
        self.popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_connect_timeout=1)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (the FLUSHDB test still covers a lost queue)")
    server = PrivateRedis(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def _queued_jobs_survive(dep: Deployment, lose_queue, queue_length, n_jobs: int = 3) -> None:
    with dep.client() as http:
        dataset = upload_circle(http)
        jobs = [submit(http, dataset["id"], config(3)) for _ in range(n_jobs)]
        assert all(http.get(f"/v1/jobs/{j}").json()["status"] == "queued" for j in jobs)
        assert queue_length() >= n_jobs, "the jobs' messages should be waiting in Redis"
        lost_at = datetime.now(UTC)
        lose_queue()
        assert queue_length() == 0

        # the reconciler in the API process re-sends every job from the database
        deadline = time.monotonic() + REDISPATCH_AFTER_S + 15
        sql = "SELECT count(*) FROM jobs WHERE status = 'queued' AND dispatched_at > :t"
        while db_scalar(dep.database_url, sql, t=lost_at) < n_jobs:
            assert time.monotonic() < deadline, "the reconciler did not re-send the lost jobs"
            time.sleep(0.1)
        # each re-send is marked in the database just before its message goes out: wait for the last one
        while queue_length() < n_jobs:
            assert time.monotonic() < deadline, "re-sent messages should be back in the broker"
            time.sleep(0.1)

        for i in range(2):
            dep.start_host_worker(f"late{i}-{os.getpid()}")
        terminal = lambda x: x["status"] in {"succeeded", "failed", "cancelled"}  # noqa: E731
        finished = [wait_job(http, j, terminal, 180, "finished") for j in jobs]
        assert [f["status"] for f in finished] == ["succeeded"] * n_jobs, finished
        assert all(f["attempts"] == 1 for f in finished), finished
        for j in jobs:
            assert db_scalar(dep.database_url, "SELECT count(*) FROM models WHERE job_id = :j", j=j) == 1


def test_queue_flushed_while_no_worker_consumes(tmp_path: Path) -> None:
    import redis

    broker = fresh_redis_url(FLUSH_REDIS_DB)
    client = redis.Redis.from_url(broker)
    try:
        with deployment(tmp_path, broker) as dep:
            _queued_jobs_survive(dep, client.flushdb, lambda: client.llen("cpu"))
    finally:
        client.close()


def test_redis_restarted_while_jobs_queued(tmp_path: Path, private_redis: PrivateRedis) -> None:
    def restart() -> None:
        private_redis.stop()  # no persistence: every message is gone
        private_redis.start()

    def queue_length() -> int:
        client = private_redis.client()
        try:
            return client.llen("cpu")
        finally:
            client.close()

    with deployment(tmp_path, private_redis.url) as dep:
        _queued_jobs_survive(dep, restart, queue_length)
