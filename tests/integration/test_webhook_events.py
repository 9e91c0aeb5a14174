"""Webhook events beyond a job's final one (issue 27): sweeps, registry versions, alias moves.

The real app (in-process, on a migrated SQLite file) and the real dispatcher code send to a
real HTTP receiver on loopback (``webhook_allow_private``, as the other webhook tests do).
What is checked is what a receiver sees: one signed POST per event to the registered
endpoint, the ``X-LipSpline-Event`` header naming it, a body the event's contract in
``api_schemas/webhook_events.py`` accepts with the values the API reports, no event for a
request that was refused or changed nothing, and every delivery recorded as delivered.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import select

from api_schemas.webhook_events import WebhookEvent
from lipspline_client import verify_webhook
from lipspline_platform import sweeps
from lipspline_platform.db.engine import dispose_all, session_scope
from lipspline_platform.db.migrate import upgrade
from lipspline_platform.db.tables import WebhookDeliveryRow
from lipspline_platform.webhooks.dispatcher import deliver_due
from tests.routes.helpers import TINY_CONFIG, Service, Trainer, problem

pytestmark = pytest.mark.integration
EVENTS = TypeAdapter(WebhookEvent)
NAME = "circle"
SWEEP_BASE = {**TINY_CONFIG, "training": {**TINY_CONFIG["training"], "validation_split": 0.25}}


class Receiver:
    """An HTTP server on loopback that answers 200 and keeps every request (headers, body)."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    template = tmp_path / "template.sqlite3"
    upgrade(f"sqlite:///{template.resolve()}")
    service = Service(tmp_path / "data", template, Trainer(), webhook_allow_private=True, webhook_poll_s=0)
    try:
        yield service
    finally:
        service.close()
        dispose_all()


def sent(svc: Service, receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """Send what is due through the real dispatcher; the new bodies, each checked as a receiver would."""
    before = len(receiver.received)
    deliver_due(svc.settings, limit=1000)
    bodies = []
    for headers, raw in receiver.received[before:]:
        assert verify_webhook(secret, raw, headers), headers
        body = json.loads(raw)
        assert headers["x-lipspline-event"] == body["event"]
        EVENTS.validate_python(body)  # the documented contract of that event
        bodies.append(body)
    return bodies


def not_jobs(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in bodies if not b["event"].startswith("job.")]


def run_to_the_end(svc: Service, sweep_id: str) -> dict[str, Any]:
    for _ in range(20):
        sweep = svc.client.get(f"/v1/sweeps/{sweep_id}").json()
        if sweep["status"] != "running":
            return sweep
        for trial in [t for t in sweep["trials"] if t["job_status"] == "queued"]:
            svc.worker.run(trial["job_id"])
        sweeps.advance(svc.settings, sweep_id)
    raise AssertionError("the sweep did not finish")


def test_registry_and_sweep_events_reach_the_endpoints_signed(svc: Service, receiver: Receiver) -> None:
    registered = svc.client.post("/v1/webhooks", json={"url": receiver.url})
    assert registered.status_code == 201, registered.text
    secret = registered.json()["secret"]
    actor = "key:" + svc.keys["default"][:12]

    # a version, then an alias set, moved and removed: one event each, in order
    assert svc.client.post("/v1/registered-models", json={"name": NAME}).status_code == 201
    first, second = svc.trained_model()["model_id"], svc.trained_model()["model_id"]
    for model_id in (first, second):
        assert svc.client.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": model_id}).is_success
    moves = [("production", 1), ("production", 1), ("production", 2)]  # the second changes nothing
    for alias, version in moves:
        assert svc.client.put(f"/v1/registered-models/{NAME}/aliases/{alias}", json={"version": version}).is_success
    assert svc.client.delete(f"/v1/registered-models/{NAME}/aliases/production").status_code == 204
    # refused requests write nothing, events included
    problem(svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 7}), 404)
    problem(svc.client.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": first}), 409)
    bodies = not_jobs(sent(svc, receiver, secret))
    created = [(b["event"], b["version"], b["model_id"], b["reference"], b["created_by"]) for b in bodies[:2]]
    assert created == [("registry.version_created", 1, first, f"{NAME}/versions/1", actor),
                       ("registry.version_created", 2, second, f"{NAME}/versions/2", actor)]
    history = svc.client.get(f"/v1/registered-models/{NAME}/alias-events").json()["items"]
    assert [(b["event"], b["name"], b["alias"], b["from_version"], b["to_version"], b["model_id"], b["reference"],
             b["actor"], b["at"]) for b in bodies[2:]] == [
        ("registry.alias_moved", NAME, "production", e["from_version"], e["to_version"],
         {1: first, 2: second, None: None}[e["to_version"]], f"{NAME}@production", actor, e["at"])
        for e in history]
    assert [(e["from_version"], e["to_version"]) for e in history] == [(None, 1), (1, 2), (2, None)]

    # a job's register_as: the job's final event and the version it made
    dataset_id = svc.upload()
    job_id = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG,
                                               "register_as": NAME}).json()["id"]
    model_id = svc.worker.run(job_id)
    bodies = sent(svc, receiver, secret)
    assert sorted((b["event"], b.get("model_id"), b.get("version"), b.get("created_by")) for b in bodies) == [
        ("job.succeeded", model_id, None, None),
        ("registry.version_created", model_id, 3, f"job:{job_id}"),
    ]

    # a sweep that finishes and registers its winner
    body = {"dataset_id": dataset_id, "base_config": SWEEP_BASE, "space": {"objective.lambda": [1e-6, 1e-2]},
            "strategy": "grid", "budget": {"max_trials": 2, "max_concurrent": 2}, "register_as": NAME}
    sweep_id = svc.client.post("/v1/sweeps", json=body).json()["id"]
    sweep = run_to_the_end(svc, sweep_id)
    assert sweep["status"] == "succeeded" and sweep["selected"] is not None
    bodies = sent(svc, receiver, secret)
    assert sorted(b["event"] for b in bodies) == ["job.succeeded", "job.succeeded", "registry.version_created",
                                                  "sweep.finished"]
    (finished,) = [b for b in bodies if b["event"] == "sweep.finished"]
    (version,) = [b for b in bodies if b["event"] == "registry.version_created"]
    winner = sweep["selected"]
    assert {k: finished[k] for k in ("sweep_id", "status", "dataset_id", "trials_planned", "trials_with_model",
                                     "selected_trial", "selected_model_id", "registered_as", "note")} == {
        "sweep_id": sweep_id, "status": "succeeded", "dataset_id": dataset_id, "trials_planned": 2,
        "trials_with_model": 2, "selected_trial": winner["trial"], "selected_model_id": winner["model_id"],
        "registered_as": winner["registered_as"], "note": sweep["note"]}
    assert winner["registered_as"] == {"name": NAME, "version": 4}
    assert (version["model_id"], version["version"]) == (winner["model_id"], 4)

    # a sweep cancelled on request: its event, and its trials' (cancelled while queued)
    sweep_id = svc.client.post("/v1/sweeps", json=body).json()["id"]
    cancelled = svc.client.post(f"/v1/sweeps/{sweep_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    bodies = sent(svc, receiver, secret)
    (event,) = not_jobs(bodies)
    assert (event["event"], event["status"], event["sweep_id"], event["trials_with_model"], event["note"]) == (
        "sweep.cancelled",
        "cancelled",
        sweep_id,
        0,
        cancelled.json()["note"],
    )
    assert event["selected_model_id"] is None and "registered_as" not in event
    assert {b["event"] for b in bodies} - {"sweep.cancelled"} <= {"job.cancelled"}

    # everything recorded as delivered, the events that are not a job's with no job
    with session_scope(svc.database_url) as session:
        rows = session.execute(select(WebhookDeliveryRow.event, WebhookDeliveryRow.job_id,
                                      WebhookDeliveryRow.state)).all()
    assert {state for _, _, state in rows} == {"delivered"} and len(rows) == len(receiver.received)
    assert all((job is None) == (not event.startswith("job.")) for event, job, _ in rows)

    # the tenant's deliveries over the API, page by page: the same, each with its attempt; filtered by event
    listed, cursor = [], None
    while True:
        page = svc.client.get("/v1/webhooks/deliveries", params={"limit": 5, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        listed += page.json()["items"]
        if not (cursor := page.json()["next_cursor"]):
            break
    assert sorted((d["event"], d["job_id"], d["state"]) for d in listed) == sorted(rows)
    assert all(len(d["attempts"]) == 1 and d["attempts"][0]["status_code"] == 200 for d in listed)
    swept = svc.client.get("/v1/webhooks/deliveries", params={"event": "sweep.finished"}).json()["items"]
    assert [(d["event"], d["job_id"], d["url"]) for d in swept] == [("sweep.finished", None, receiver.url)]
    assert svc.other.get("/v1/webhooks/deliveries").json()["items"] == []
