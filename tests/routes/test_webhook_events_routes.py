"""Webhook events that are not a job's, as the outbox and ``GET /v1/webhooks/deliveries`` show them.

Nothing is sent here (no dispatcher runs: ``webhook_poll_s=0``); what is checked is what the
changes write to the outbox, in their own transaction: one pending delivery per registered
endpoint for each version created and each alias moved, none for a refused request or a
move that changes nothing, none without an endpoint, and none visible to another tenant.
Sending them, signed, to a real receiver: ``tests/integration/test_webhook_events.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.routes.helpers import Service, problem

NAME = "circle"


def deliveries(svc: Service, **params: str) -> list[dict]:
    response = svc.client.get("/v1/webhooks/deliveries", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_registry_changes_write_their_events_with_the_change(make_service: Callable[..., Service]) -> None:
    svc = make_service(webhook_allow_private=True, webhook_poll_s=0)
    assert svc.client.post("/v1/registered-models", json={"name": NAME}).status_code == 201
    unheard = svc.trained_model()["model_id"]
    svc.client.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": unheard})
    assert deliveries(svc) == []  # no endpoint yet: nobody to tell

    urls = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    for url in urls:
        assert svc.client.post("/v1/webhooks", json={"url": url}).status_code == 201
    model_id = svc.trained_model()["model_id"]
    before = deliveries(svc)
    assert {(d["event"], d["url"]) for d in before} == {("job.succeeded", url) for url in urls}
    assert svc.client.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": model_id}).is_success
    for version in (1, 1, 2):  # the second move changes nothing
        assert svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": version}).is_success
    assert svc.client.delete(f"/v1/registered-models/{NAME}/aliases/production").status_code == 204
    # refused: nothing written, events included
    problem(svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 9}), 404)
    problem(svc.client.put(f"/v1/registered-models/{NAME}/aliases/9x", json={"version": 1}), 422)
    problem(svc.client.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": model_id}), 409)

    found = deliveries(svc)[: -len(before)]  # newest first
    events = [d["event"] for d in reversed(found)]
    assert events == [e for e in ["registry.version_created"] + ["registry.alias_moved"] * 3 for _ in urls]
    assert all(d["job_id"] is None and d["state"] == "pending" and d["attempts"] == [] for d in found)
    assert sorted(d["url"] for d in found) == sorted(urls * 4)
    assert [d["event"] for d in deliveries(svc, event="registry.version_created")] == ["registry.version_created"] * 2
    assert deliveries(svc, event="sweep.finished") == []
    assert svc.other.get("/v1/webhooks/deliveries").json()["items"] == []
    problem(svc.anon.get("/v1/webhooks/deliveries"), 401)
