"""``GET /v1/jobs/{id}/events``: the stored stream of a job, resumable with ``Last-Event-ID``.

The worker's side is played through the real lifecycle (``helpers.Runner``); the stream of a
finished job ends by itself, so each test reads it to the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from lipspline_platform.db.engine import session_scope
from service.security import auth
from tests.routes.helpers import Service, problem


def read_stream(svc: Service, job_id: str, headers: dict[str, str] | None = None, query: str = "") -> list[dict]:
    """Every SSE message of the stream as ``{"id", "event", "data"}``, in order."""
    with svc.client.stream("GET", f"/v1/jobs/{job_id}/events{query}", headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    messages = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "data" in fields:
            messages.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return messages


def test_a_finished_job_streams_every_status_epoch_and_the_final_event(svc: Service) -> None:
    dataset_id = svc.upload()
    job_id = svc.submit(dataset_id)
    model_id = svc.worker.run(job_id)

    messages = read_stream(svc, job_id)
    kinds = [(m["event"], m["data"]["data"].get("status") or m["data"]["data"].get("epoch")) for m in messages]
    assert kinds == [("status", "queued"), ("status", "running"), ("epoch", 1), ("epoch", 2), ("epoch", 3),
                     ("status", "succeeded"), ("final", "succeeded")]
    assert [m["id"] for m in messages] == list(range(1, 8))
    assert all(m["data"]["seq"] == m["id"] and m["data"]["job_id"] == job_id for m in messages)
    epoch = messages[2]["data"]["data"]
    assert {"losses", "train_metrics", "validation_metrics", "epoch_seconds", "epochs"} <= set(epoch)
    assert messages[-1]["data"]["data"]["model_id"] == model_id


def test_last_event_id_resumes_after_the_event_it_names(svc: Service) -> None:
    job_id = svc.submit(svc.upload())
    svc.worker.run(job_id)
    everything = read_stream(svc, job_id)
    assert [m["id"] for m in read_stream(svc, job_id, {"Last-Event-ID": "4"})] == [m["id"] for m in everything[4:]]
    assert read_stream(svc, job_id, query="?after=6") == everything[6:]


def test_a_cancelled_queued_job_ends_its_stream_with_the_final_event(svc: Service) -> None:
    job_id = svc.submit(svc.upload())
    assert svc.client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    messages = read_stream(svc, job_id)
    assert [m["event"] for m in messages] == ["status", "status", "final"]
    assert messages[-1]["data"]["data"] == {**messages[-1]["data"]["data"], "status": "cancelled", "model_id": None}


def test_another_tenants_job_is_not_found(svc: Service) -> None:
    job_id = svc.submit(svc.upload())
    problem(svc.other.get(f"/v1/jobs/{job_id}/events"), 404, "not-found")
    problem(svc.client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "-1"}), 422)


def test_a_revoked_keys_open_stream_ends_within_the_key_check(make_service: Callable[..., Service]) -> None:
    # idle timeout 5 s: without the key check the stream would end only then, and the test fail (not hang)
    svc = make_service(auth_cache_ttl_s=0.2, sse_key_check_s=0.3, sse_poll_s=0.05, sse_idle_timeout_s=5.0)
    spare = svc.create_key("default")
    job_id = svc.submit(svc.upload())  # queued: its stream stays open, waiting for events
    client = svc.open_client(spare)
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(lines).startswith("retry:")  # the stream is open
        with session_scope(svc.database_url) as session:
            assert auth.revoke_key(session, spare[: auth.PREFIX_CHARS]) == 1
        began = time.monotonic()
        rest = list(lines)  # returns once the server ends the stream
    assert time.monotonic() - began < 2.0
    assert any("no longer valid" in line for line in rest)


def test_open_streams_are_limited_per_key_and_idle_streams_end(make_service: Callable[..., Service]) -> None:
    svc = make_service(sse_max_streams_per_key=2, sse_idle_timeout_s=0.5, sse_poll_s=0.05)
    job_id = svc.submit(svc.upload())
    path = f"/v1/jobs/{job_id}/events"
    with svc.client.stream("GET", path) as first, svc.client.stream("GET", path) as second:
        assert first.status_code == second.status_code == 200
        third = svc.client.get(path)
        assert problem(third, 429, "too-many-streams")["detail"].startswith("this API key holds 2 open event streams")
        began = time.monotonic()
        text = "".join(first.iter_text())  # ends by itself once idle for 0.5 s
        assert time.monotonic() - began < 3.0 and "no event for 0.5 s" in text
        "".join(second.iter_text())
    # closed streams are counted out: a new one opens
    with svc.client.stream("GET", path) as again:
        assert again.status_code == 200
