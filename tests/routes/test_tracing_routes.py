"""Tracing, in-process with the SDK's in-memory exporter: one trace from POST /v1/jobs into the broker message.

No OTLP collector stand-in is installed here (none is a plain PyPI package); the OTLP
exporter itself is the SDK's, configured from the endpoint, and not exercised by these tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.signals import before_task_publish
from fastapi.testclient import TestClient

from lipspline_platform.db.engine import dispose_all, session_scope
from lipspline_platform.observability import tracing
from lipspline_platform.settings import EMBEDDED_BROKER, Settings
from service.app import create_app
from service.security import auth
from tests.routes.helpers import DB_FILE, OPEN_RATE, TINY_CONFIG, seed_dataset_body

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402


@pytest.fixture
def traced(tmp_path: Path, template_db: Path) -> Iterator[tuple[TestClient, InMemorySpanExporter, list[dict]]]:
    import shutil

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copyfile(template_db, data_dir / DB_FILE)
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{(data_dir / DB_FILE).resolve()}",
                        broker_url=EMBEDDED_BROKER, reconcile_every_s=0, **OPEN_RATE)
    dispose_all()  # engines made from now on are instrumented
    app = create_app(settings)
    exporter = InMemorySpanExporter()
    provider = tracing.configure_tracing(settings, "lipspline-api", app=app, exporter=exporter)
    published: list[dict] = []

    def capture(headers: dict | None = None, **_kwargs: object) -> None:
        published.append(dict(headers or {}))

    before_task_publish.connect(capture, weak=False)
    with session_scope(settings.resolved_database_url) as session:
        key = auth.create_key(session, "default")
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
            yield client, exporter, published
    finally:
        before_task_publish.disconnect(capture)
        tracing.stop_tracing(provider)
        dispose_all()


def test_tracing_is_off_and_not_even_imported_by_default(tmp_path: Path) -> None:
    # a fresh interpreter, without OTEL_* variables: an app is built, and neither the SDK nor an
    # instrumentation is loaded (the bare `opentelemetry` API package is: redis-py imports it itself)
    code = ("import sys; from lipspline_platform.settings import Settings; from service.app import create_app; "
            f"create_app(Settings(data_dir={str(tmp_path)!r})); "
            "sys.exit(any(m.startswith(('opentelemetry.sdk', 'opentelemetry.instrumentation')) "
            "for m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LIPSPLINE_"))}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0
    on = Settings(data_dir=tmp_path, otel_exporter_otlp_endpoint="http://collector:4318")
    assert tracing.otlp_endpoint(on) == "http://collector:4318"


def test_a_job_submission_is_one_trace_from_the_request_to_the_broker_message(traced) -> None:
    client, exporter, published = traced
    dataset = client.post("/v1/datasets", json=seed_dataset_body())
    assert dataset.status_code == 201
    exporter.clear()
    response = client.post("/v1/jobs", json={"dataset_id": dataset.json()["id"], "config": TINY_CONFIG})
    assert response.status_code == 202, response.text
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind == SpanKind.SERVER]
    assert len(server) == 1 and "/v1/jobs" in server[0].name
    trace_id = server[0].context.trace_id
    assert {s.context.trace_id for s in spans} == {trace_id}  # everything of the request: one trace
    sql = [s for s in spans if s.kind == SpanKind.CLIENT and "INSERT" in (s.attributes.get("db.statement") or "")]
    assert sql, [s.name for s in spans]
    producer = [s for s in spans if s.kind == SpanKind.PRODUCER]
    assert producer and "lipspline.train" in producer[0].name
    # the context travels in the message: the worker's task span continues this trace
    traceparent = published[-1].get("traceparent")
    assert traceparent and traceparent.split("-")[1] == format(trace_id, "032x")
    assert published[-1]["id"] == response.json()["id"]  # and the task id is the job id


def test_probes_and_scrapes_make_no_spans(traced) -> None:
    client, exporter, _ = traced
    exporter.clear()
    assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200
    assert [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER] == []

