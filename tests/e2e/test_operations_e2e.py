"""Issue 18 on a live PostgreSQL + Redis deployment: two API processes, two workers.

* metrics: every process is scraped before and after one job and a few predictions, the
  text parsed with ``prometheus_client.parser``, and the counters must have moved by
  exactly what was done (requests by route template and status, jobs succeeded +1, one
  queue wait observed, one certificate, the epochs trained);
* the rate limit: a burst split across both API processes is throttled at one bucket;
* logs: one request id followed from the API's line through the job row to the worker's
  lines, and no API key used in the run appears in any line of any process;
* scopes: a ``predict`` key cannot train or delete, an expired key is 401, an
  admin-created key works at once and a revoked one stops, in both processes.

The deployment is this module's own (the shared one has one API process and no metrics
ports). One tiny job (2 epochs) keeps it short.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from tests.support.processes import Process, free_port, lipspline_argv
from tests.support.services import fresh_postgres_database, fresh_redis_url

pytestmark = pytest.mark.e2e

REDIS_DB = 13
BURST = 40
EPOCHS = 2
CONFIG = {"architecture": {"hidden": [2]}, "training": {"epochs": EPOCHS, "batch_size": 16, "seed": 0},
          "device": "cpu"}
ROWS = [[(i % 7) / 7 - 0.5, (i % 5) / 5 - 0.4] for i in range(64)]
TARGETS = [int(a * a + b * b < 0.1) for a, b in ROWS]
PREDICT = "/v1/models/{model_id}/predict"


@dataclass
class Operations:
    env: dict[str, str]
    workdir: Path
    database_url: str
    apis: list[Process] = field(default_factory=list)
    api_urls: list[str] = field(default_factory=list)
    workers: list[Process] = field(default_factory=list)
    worker_metrics: list[str] = field(default_factory=list)
    #: every API key this module used: none may appear in any log line
    keys_used: list[str] = field(default_factory=list)

    def cli_key(self, *args: str) -> str:
        argv = lipspline_argv("keys", "create", *args)
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120, check=True)
        key = result.stdout.strip()
        self.keys_used.append(key)
        return key

    def client(self, which: int, key: str, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.api_urls[which], timeout=60,
                            headers={"Authorization": f"Bearer {key}", **headers})

    def logs(self) -> str:
        return "\n".join(p.log_path.read_text(errors="replace") for p in [*self.apis, *self.workers])

    def job_row(self, job_id: str) -> dict:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                row = connection.execute(text("SELECT status, request_id, model_id FROM jobs WHERE id = :id"),
                                         {"id": job_id}).mappings().one()
                return dict(row)
        finally:
            engine.dispose()

    def wait_for_job(self, job_id: str, timeout_s: float = 180) -> dict:
        """Read the row, not the API: polling over HTTP would spend the keys' small rate budget."""
        deadline = time.monotonic() + timeout_s
        while (row := self.job_row(job_id))["status"] not in {"succeeded", "failed", "cancelled"}:
            assert time.monotonic() < deadline, f"job {job_id} still {row['status']} after {timeout_s} s"
            time.sleep(0.2)
        return row


def _wait_ready(url: str, process: Process, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.alive(), process.log_tail()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready:\n{process.log_tail()}")


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operations]:
    workdir = tmp_path_factory.mktemp("operations")
    database_url, drop = fresh_postgres_database()
    env = dict(
        __import__("os").environ,
        LIPSPLINE_DATABASE_URL=database_url,
        LIPSPLINE_BROKER_URL=fresh_redis_url(REDIS_DB),
        LIPSPLINE_DATA_DIR=str(workdir / "data"),
        # a refill of one token per 100 s: a burst sees exactly BURST tokens, however slow the host
        LIPSPLINE_RATE_LIMIT_PER_S="0.01",
        LIPSPLINE_RATE_LIMIT_BURST=str(BURST),
        LIPSPLINE_AUTH_CACHE_TTL_S="0.5",
        LIPSPLINE_LOG_FORMAT="json",
    )
    ops = Operations(env, workdir, database_url)
    try:
        for i in range(2):  # one after the other: the first applies the migrations
            port = free_port()
            api = Process(lipspline_argv("api", "--port", str(port)), env, workdir / f"api{i}.log").start()
            ops.apis.append(api)
            ops.api_urls.append(f"http://127.0.0.1:{port}")
            _wait_ready(ops.api_urls[-1] + "/readyz", api)
        for i in range(2):
            port = free_port()
            argv = lipspline_argv("worker", "--queues", "cpu", "--concurrency", "1", "--hostname",
                                  f"ops{i}-{uuid.uuid4().hex[:6]}@%h", "--metrics-port", str(port))
            ops.workers.append(Process(argv, env, workdir / f"worker{i}.log").start())
            ops.worker_metrics.append(f"http://127.0.0.1:{port}/metrics")
        for url, worker in zip(ops.worker_metrics, ops.workers, strict=True):
            _wait_ready(url, worker)
        yield ops
    except BaseException:
        print(ops.logs()[-20000:])
        raise
    finally:
        for process in [*ops.apis, *ops.workers]:
            process.stop()
        drop()


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a /metrics page: (name, labels without pid) -> value, summed over processes."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    samples: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if k != "pid")
            samples[(sample.name, labels)] = samples.get((sample.name, labels), 0.0) + sample.value
    return samples


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


@dataclass
class Run:
    """What the module did once: a dataset, a job (with a known request id), predictions; scrapes around it."""

    before: list[dict]
    after: list[dict]
    job_id: str
    model_id: str
    request_id: str
    response_request_id: str
    job_out: dict


@pytest.fixture(scope="module")
def run(ops: Operations) -> Run:
    api_urls = [u + "/metrics" for u in ops.api_urls]
    key = ops.cli_key("--tenant", "default")
    scrape_urls = [*api_urls, *ops.worker_metrics]
    before = [scrape(u) for u in scrape_urls]
    request_id = f"e2e-{uuid.uuid4().hex}"
    with ops.client(0, key) as first, ops.client(1, key, **{"X-Request-ID": request_id}) as second:
        dataset = first.post("/v1/datasets", json={"name": "ops", "inputs": ROWS, "targets": TARGETS})
        assert dataset.status_code == 201, dataset.text
        submitted = second.post("/v1/jobs", json={"dataset_id": dataset.json()["id"], "config": CONFIG})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        row = ops.wait_for_job(job_id)
        assert row["status"] == "succeeded", (row, ops.logs()[-5000:])
        for client, count in ((first, 3), (second, 2)):
            for _ in range(count):
                response = client.post(f"/v1/models/{row['model_id']}/predict", json={"inputs": [[0.1, 0.2]]})
                assert response.status_code == 200, response.text
        job_out = second.get(f"/v1/jobs/{job_id}").json()
    after = [scrape(u) for u in scrape_urls]
    return Run(before, after, job_id, row["model_id"], request_id, submitted.headers["x-request-id"], job_out)


def test_api_request_counters_moved_by_exactly_the_requests_made(run: Run) -> None:
    (a_before, b_before), (a_after, b_after) = run.before[:2], run.after[:2]
    requests = "lipspline_http_requests_total"
    assert moved(a_before, a_after, requests, method="POST", route="/v1/datasets", status="201") == 1
    assert moved(b_before, b_after, requests, method="POST", route="/v1/jobs", status="202") == 1
    assert moved(a_before, a_after, requests, method="POST", route="/v1/jobs", status="202") == 0
    assert moved(a_before, a_after, requests, method="POST", route=PREDICT, status="200") == 3
    assert moved(b_before, b_after, requests, method="POST", route=PREDICT, status="200") == 2
    # the latency histogram counted the same requests; the raw path (with the id) is no label anywhere
    duration = "lipspline_http_request_duration_seconds_count"
    assert moved(a_before, a_after, duration, method="POST", route=PREDICT, status="200") == 3
    assert not any(run.model_id in value for _, labels in a_after for _, value in labels)
    assert moved(a_before, a_after, "lipspline_predict_rows_count", format="json") == 3
    assert moved(a_before, a_after, "lipspline_predict_rows_sum", format="json") == 3


def test_jobs_gauge_and_worker_metrics_moved_by_one_job(run: Run) -> None:
    for before, after in zip(run.before[:2], run.after[:2], strict=True):  # both API processes read the table
        assert moved(before, after, "lipspline_jobs", status="succeeded") == 1
        assert after[("lipspline_jobs", frozenset({("status", "running")}))] == 0
    workers_before, workers_after = run.before[2:], run.after[2:]

    def total(name: str, **labels: str) -> float:
        return sum(moved(b, a, name, **labels) for b, a in zip(workers_before, workers_after, strict=True))

    assert total("lipspline_jobs_finished_total", status="succeeded") == 1
    assert total("lipspline_job_attempts_total") == 1
    assert total("lipspline_job_queue_wait_seconds_count") == 1
    assert total("lipspline_job_queue_wait_seconds_sum") > 0
    assert total("lipspline_job_training_duration_seconds_count") == 1
    assert total("lipspline_job_certificate_duration_seconds_count") == 1
    assert total("lipspline_job_epochs_total") == EPOCHS
    assert total("lipspline_job_epoch_duration_seconds_count") == EPOCHS


def test_one_request_id_from_the_api_through_the_job_row_to_the_worker(ops: Operations, run: Run) -> None:
    assert run.response_request_id == run.request_id  # echoed
    assert run.job_out["request_id"] == run.request_id
    assert ops.job_row(run.job_id)["request_id"] == run.request_id

    def lines(process: Process) -> list[dict]:
        parsed = []
        for line in process.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                parsed.append(json.loads(line))
        return parsed

    api_lines = [line for line in lines(ops.apis[1]) if line.get("request_id") == run.request_id]
    assert any(line.get("job_id") == run.job_id and "submitted" in line["message"] for line in api_lines), api_lines
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in api_lines)
    assert any(line["logger"] == "lipspline.access" and line["status"] == 202 for line in api_lines)
    worker_lines = [line for w in ops.workers for line in lines(w) if line.get("job_id") == run.job_id]
    assert worker_lines, "no worker line names the job"
    claimed = [line for line in worker_lines if "claimed" in line["message"]]
    assert claimed and all(line["request_id"] == run.request_id for line in claimed), claimed
    assert any("succeeded" in line["message"] and line["request_id"] == run.request_id for line in worker_lines)


def test_a_burst_across_both_api_processes_meets_one_shared_limit(ops: Operations) -> None:
    key = ops.cli_key("--tenant", "default", "--scopes", "read")
    statuses: list[int] = []
    with ops.client(0, key) as first, ops.client(1, key) as second:
        for i in range(3 * BURST):
            statuses.append((first, second)[i % 2].get("/v1/models").status_code)
    assert set(statuses) == {200, 429}
    # one bucket: BURST tokens (plus at most one refilled during the burst), not BURST per process
    assert BURST <= statuses.count(200) <= BURST + 1, statuses.count(200)


def test_scopes_expiry_and_revocation_across_both_processes(ops: Operations) -> None:
    admin_key = ops.cli_key("--tenant", "default", "--scopes", "admin")
    with ops.client(0, admin_key) as admin:
        assert admin.post("/v1/admin/tenants", json={"name": "ops-team"}).status_code == 201
        made = admin.post("/v1/admin/keys", json={"tenant": "ops-team", "scopes": ["read", "predict"]})
        assert made.status_code == 201, made.text
        expires = datetime.now(UTC) + timedelta(seconds=3)
        soon = expires.isoformat()
        expiring = admin.post("/v1/admin/keys", json={"tenant": "ops-team", "scopes": ["read"], "expires_at": soon})
        assert expiring.status_code == 201, expiring.text
    key, expiring_key = made.json()["key"], expiring.json()["key"]
    ops.keys_used += [key, expiring_key]
    for which in (0, 1):  # works at once, in both processes
        with ops.client(which, key) as client:
            assert client.get("/v1/models").json() == {"items": [], "next_cursor": None}
            for method, path in (("POST", "/v1/jobs"), ("DELETE", "/v1/datasets/anything")):
                response = client.request(method, path, json={} if method == "POST" else None)
                assert response.status_code == 403, response.text
                assert response.headers["content-type"].startswith("application/problem+json")
                assert response.json()["required_scope"] == "train"
        with ops.client(which, expiring_key) as client:
            assert client.get("/v1/models").status_code == 200
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)  # past the expiry
    for which in (0, 1):
        with ops.client(which, expiring_key) as client:
            assert client.get("/v1/models").status_code == 401
    with ops.client(0, admin_key) as admin:
        assert admin.delete(f"/v1/admin/keys/{made.json()['id']}").status_code == 204
    with ops.client(0, key) as client:  # the revoking process: at once
        assert client.get("/v1/models").status_code == 401
    time.sleep(0.6)  # the other process trusts a verified key for auth_cache_ttl_s (0.5 s here)
    with ops.client(1, key) as client:
        assert client.get("/v1/models").status_code == 401


def test_no_api_key_appears_in_any_log_line(ops: Operations, run: Run) -> None:
    # runs last in the module: every key above was sent in many requests by now
    logs = ops.logs()
    assert logs.count("\n") > 20  # the processes did log
    for key in ops.keys_used:
        assert key not in logs
        assert key[4:] not in logs  # not even without its lsk_ prefix
    assert "Bearer " not in logs
