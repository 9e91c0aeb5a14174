"""``GET /v1/jobs/{id}/events``: the stored stream of a job, resumable with ``Last-Event-ID``.

The worker's side is played through the real lifecycle (``helpers.Runner``); the stream of a
finished job ends by itself, so each test reads it to the end.
"""

from __future__ import annotations

import json

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
                     ("status", "succeeded"), ("final", "succeeded")]  # fmt: skip
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
