"""In-process checks of the operations surface: /metrics, the request id, quotas, JSON log lines."""

from __future__ import annotations

import io
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lipspline_platform.observability import structured_logging
from tests.routes.helpers import TINY_CONFIG, Service, problem, seed_dataset_body


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_by_route_template_and_jobs_by_status(svc: Service) -> None:
    def scrape() -> dict:
        response = svc.anon.get("/metrics")  # no key needed by default
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        return _samples(response.text)

    before = scrape()
    dataset_id = svc.upload()
    for ident in ("a", "b", "c"):  # three ids, one series
        svc.client.get(f"/v1/datasets/{ident}")
    svc.submit(dataset_id)
    after = scrape()
    route = frozenset({("method", "GET"), ("route", "/v1/datasets/{dataset_id}"), ("status", "404")})
    requests = ("lipspline_http_requests_total", route)
    assert after[requests] - before.get(requests, 0) == 3
    assert after[("lipspline_jobs", frozenset({("status", "queued")}))] == 1
    assert after[("lipspline_jobs_scrape_error", frozenset())] == 0
    kind = frozenset({("status", "404"), ("type", "not-found")})
    assert after[("lipspline_http_problems_total", kind)] - before.get(("lipspline_http_problems_total", kind), 0) == 3


def test_metrics_may_require_an_admin_key(make_service) -> None:
    svc = make_service(metrics_public=False)
    problem(svc.anon.get("/metrics"), 401, "unauthorized")
    problem(svc.client.get("/metrics"), 403, "insufficient-scope")
    assert svc.open_client(svc.scoped_key("default", "admin")).get("/metrics").status_code == 200


@pytest.mark.parametrize(("sent", "kept"), [
    ("abc-123", True),
    ("trace:4bf92f3577b34da6@edge/1", True),
    ("x" * 129, False),          # too long
    ("has space", False),
    ("quote\"d", False),
])
def test_request_id_is_echoed_when_safe_and_made_otherwise(svc: Service, sent: str, kept: bool) -> None:
    response = svc.client.get("/v1/datasets", headers={"X-Request-ID": sent})
    echoed = response.headers["x-request-id"]
    assert (echoed == sent) is kept
    assert structured_logging.valid_request_id(echoed) == echoed


def test_errors_carry_the_request_id_too(svc: Service) -> None:
    response = svc.anon.get("/v1/datasets", headers={"X-Request-ID": "err-1"})
    assert response.status_code == 401 and response.headers["x-request-id"] == "err-1"


def test_a_submitted_job_keeps_its_request_id(svc: Service) -> None:
    dataset_id = svc.upload()
    response = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG},
                               headers={"X-Request-ID": "submit-42"})
    assert svc.job(response.json()["id"])["request_id"] == "submit-42"
    assert svc.worker.claim(response.json()["id"]).request_id == "submit-42"


def test_json_log_lines_carry_the_context_and_mask_keys(svc: Service) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structured_logging.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        svc.client.get("/v1/datasets", headers={"X-Request-ID": "log-7"})
        with structured_logging.bound(job_id="j1", attempt=2):
            logging.getLogger("test").info("leaked %s", svc.keys["default"])
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "lipspline.access"]
    assert access and access[-1]["request_id"] == "log-7" and access[-1]["tenant"] == "default"
    assert access[-1]["path"] == "/v1/datasets" and access[-1]["status"] == 200
    mine = lines[-1]
    assert mine["job_id"] == "j1" and mine["attempt"] == 2 and "request_id" not in mine
    assert svc.keys["default"] not in stream.getvalue() and "lsk_***" in mine["message"]


def test_quotas_name_what_was_exceeded(make_service) -> None:
    svc = make_service(quota_max_active_jobs=1)
    dataset_id = svc.upload()
    svc.submit(dataset_id)
    response = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG})
    body = problem(response, 429, "quota-exceeded", quota="max_active_jobs", quota_value=1)
    assert response.headers["retry-after"] and body["detail"]
    admin = svc.open_client(svc.scoped_key("default", "admin"))
    tenant = next(t for t in admin.get("/v1/admin/tenants").json()["items"] if t["name"] == "default")
    raised = admin.patch(f"/v1/admin/tenants/{tenant['id']}", json={"quota_max_active_jobs": 5, "quota_max_models": 2})
    assert raised.status_code == 200, raised.text
    svc.submit(dataset_id)  # the tenant's own quota wins over the default
    problem(svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG}), 403,
            "quota-exceeded", quota="max_models")


def test_stored_bytes_quota_refuses_an_upload_that_would_pass_it(make_service) -> None:
    svc = make_service(quota_max_stored_bytes=4000)
    svc.upload()  # 64 rows x 2 features: under the quota
    body = problem(svc.client.post("/v1/datasets", json=seed_dataset_body("second")), 403, "quota-exceeded",
                   quota="max_stored_bytes")
    assert "4000" in body["detail"]
    assert svc.other.post("/v1/datasets", json=seed_dataset_body()).status_code == 201  # per tenant
