"""Property-based API testing: schemathesis against the live OpenAPI of an embedded deployment.

Every operation of ``/openapi.json`` gets requests generated from its schema (positive mode:
valid by the schema; negative mode: violating it, the declared Bearer scheme included, so
some requests go without a valid key), sent to a real ``lipspline serve``. Real ids (two
datasets, one finished job, one trained model) are substituted into most path parameters and
``dataset_id`` bodies, so routes with ids are exercised past their 404s, and predict/certify
bodies are often trimmed to the model's two features so they reach the model. Training limits
are set tiny, so the jobs that a random config gets accepted for are cheap.

Checks on every response: ``not_a_server_error``, ``response_schema_conformance`` (error
bodies against the ``Problem`` schema), ``content_type_conformance`` (errors documented as
``application/problem+json``), ``response_headers_conformance`` (``Location``, ``Retry-After``,
``WWW-Authenticate``), and for errors a problem+json body whose ``status`` is the response's.
``status_code_conformance`` is reported by its own test: every status answered is documented.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

import requests  # noqa: E402  (a schemathesis dependency)
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.processes import Deployment, embedded_env, wait_for_job  # noqa: E402

pytestmark = pytest.mark.e2e


def _npy(rows: list[list[float]]) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(rows, dtype=np.float64))
    return buffer.getvalue()


# ``POST /v1/models/{id}/predict/npy`` takes application/x-npy bodies: arbitrary bytes (which must be
# refused with a 4xx, never a 500) and real arrays of two features (what the seeded model expects)
schemathesis.openapi.media_type(
    "application/x-npy",
    st.one_of(
        st.binary(max_size=256),
        st.lists(st.lists(st.floats(-10, 10), min_size=2, max_size=2), min_size=1, max_size=5).map(_npy),
    ),
)

#: examples per operation and generation mode (operations without inputs stop after one)
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 16}
MIN_REQUESTS = 500
TINY_CONFIG = {
    "architecture": {"hidden": [2]},
    "spline": {"knots": 11},
    "training": {"epochs": 2, "batch_size": 16, "validation_split": 0.0},
    "device": "cpu",
}


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("schemathesis")
    env = embedded_env(
        workdir,
        LIPSPLINE_CANCEL_POLL_S="0.2",
        LIPSPLINE_RATE_LIMIT_PER_S="100000",
        LIPSPLINE_RATE_LIMIT_BURST="100000",
        # jobs accepted for generated configs must stay cheap
        LIPSPLINE_MAX_EPOCHS="3",
        LIPSPLINE_MAX_WIDTH="8",
        LIPSPLINE_MAX_DEPTH="2",
        LIPSPLINE_MAX_KNOTS="21",
        LIPSPLINE_MAX_PARAMETERS="2000",
        LIPSPLINE_MAX_UPLOAD_BYTES=str(1 << 20),
    )
    with Deployment(env, workdir, embedded=True).running() as deployment:
        yield deployment


@pytest.fixture(scope="module")
def real_ids(dep: Deployment) -> dict[str, list[str]]:
    inputs = [[(i % 7) / 7 - 0.5, (i % 5) / 5 - 0.4] for i in range(32)]
    targets = [int(a * a + b * b < 0.1) for a, b in inputs]
    with dep.client() as http:
        datasets = []
        for name in ("seed-a", "seed-b"):
            response = http.post("/v1/datasets", json={"name": name, "inputs": inputs, "targets": targets})
            assert response.status_code == 201, response.text
            datasets.append(response.json()["id"])
        job = http.post("/v1/jobs", json={"dataset_id": datasets[0], "config": TINY_CONFIG})
        assert job.status_code == 202, job.text
        state = wait_for_job(http, job.json()["id"])
        assert state["status"] == "succeeded", state
    # datasets[0] is kept (jobs are submitted on it); DELETE gets datasets[1], which it may remove
    return {"dataset_id": datasets, "job_id": [state["id"]], "model_id": [state["model_id"]]}


def _two_features(inputs: Any) -> Any:
    """Generated rows cut or padded to the model's 2 features (non-numbers left as they are)."""
    if not isinstance(inputs, list) or not inputs:
        return inputs
    rows = []
    for row in inputs[:50]:
        if not isinstance(row, list):
            return inputs
        values = [v if isinstance(v, int | float) and not isinstance(v, bool) else 0.0 for v in row]
        values = [float(v) if math.isfinite(float(v)) and abs(v) < 1e30 else 0.0 for v in values]
        rows.append((values + [0.0, 0.0])[:2])
    return rows


def _use_real_ids(case: Any, ids: dict[str, list[str]], pick: int) -> None:
    """Most cases (pick < 7 of 10) get real ids; some get model-shaped inputs or a config that fits."""
    if pick >= 7:
        return
    deleting = case.operation.method.upper() == "DELETE"
    for name, value in list((case.path_parameters or {}).items()):
        if name in ids and isinstance(value, str):
            case.path_parameters[name] = ids[name][-1] if deleting else ids[name][0]
    body = case.body
    if isinstance(body, dict):
        if "dataset_id" in body and case.operation.path == "/v1/jobs":
            body["dataset_id"] = ids["dataset_id"][0]
            if pick < 2:  # generated configs rarely fit the tiny limits: some jobs must be accepted
                body["config"] = TINY_CONFIG
        if "model_id" in (case.path_parameters or {}) and pick < 4 and "inputs" in body:
            body["inputs"] = _two_features(body["inputs"])


@pytest.fixture(scope="module")
def findings(dep: Deployment, real_ids: dict[str, list[str]]) -> dict[str, Any]:
    """One schemathesis run over every operation; the tests below read what it saw (any order)."""
    schema = schemathesis.openapi.from_url(dep.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [f"{op.method} {op.path}" for op in operations]
    auth = {"Authorization": f"Bearer {dep.api_key}"}
    statuses: collections.Counter = collections.Counter()
    failures: dict[tuple, str] = {}
    undocumented: dict[tuple, str] = {}
    session = requests.Session()

    def record(store: dict, key: tuple, message: str) -> None:
        store.setdefault(key, message[:1500])

    def exercise(label: str, strategy: Any, examples: int) -> None:
        @given(case=strategy, pick=st.integers(0, 9))
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any, pick: int) -> None:
            _use_real_ids(case, real_ids, pick)
            response = case.call(base_url=dep.url, headers=auth, session=session, timeout=60)
            statuses[(label, response.status_code)] += 1
            where = case.as_curl_command(headers={"Authorization": "Bearer ***"})
            for check, store in (
                (not_a_server_error, failures),
                (response_schema_conformance, failures),
                (content_type_conformance, failures),
                (response_headers_conformance, failures),
                (status_code_conformance, undocumented),
            ):
                try:
                    case.validate_response(response, checks=[check], headers=auth)
                except (AssertionError, BaseExceptionGroup, Exception) as exc:  # noqa: B014
                    key = (label, check.__name__, response.status_code)
                    record(store, key, f"{where}\n-> {response.status_code} {response.text[:400]}\n{exc}")
            if response.status_code >= 400:
                content_type = response.headers.get("content-type") or [""]  # schemathesis: name -> values
                problem_ok = str(content_type[0]).startswith("application/problem+json")
                try:
                    problem_ok = problem_ok and response.json().get("status") == response.status_code
                except ValueError:
                    problem_ok = False
                if not problem_ok:
                    key = (label, "problem+json", response.status_code)
                    record(failures, key, f"{where}\n-> {response.status_code} {response.text[:400]}")

        run()

    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        for mode, examples in EXAMPLES.items():
            try:
                exercise(label, operation.as_strategy(generation_mode=mode), examples)
            except Unsatisfiable:
                # negative mode: an operation without inputs has nothing that could be made invalid
                assert mode is GenerationMode.NEGATIVE, label

    total = sum(statuses.values())
    by_status = collections.Counter()
    for (_label, status), n in statuses.items():
        by_status[status] += n
    return {
        "total": total,
        "statuses": statuses,
        "by_status": by_status,
        "undocumented": undocumented,
        "failures": failures,
        "operations": operations,
    }


def test_schemathesis_run(findings: dict[str, Any]) -> None:
    total, statuses, by_status = findings["total"], findings["statuses"], findings["by_status"]
    failures, operations = findings["failures"], findings["operations"]
    summary = dict(sorted(by_status.items()))
    print(f"\nschemathesis: {total} requests, {len(operations)} operations, by status {summary}")
    for (label, status), n in sorted(statuses.items()):
        print(f"  {label:45} {status} x{n}")
    assert total >= MIN_REQUESTS, total
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    # ids were exercised beyond 404: the seeded model answered, the finished job was read
    assert statuses[("POST /v1/models/{model_id}/predict", 200)] > 0
    assert statuses[("GET /v1/jobs/{job_id}", 200)] > 0
    assert statuses[("POST /v1/jobs", 202)] > 0


def test_certify_with_null_inputs(dep: Deployment, real_ids: dict[str, list[str]]) -> None:
    with dep.client() as http:
        response = http.post(f"/v1/models/{real_ids['model_id'][0]}/certify", json={"inputs": None, "epsilon": 0.1})
    # inputs are optional: null means "no local bounds" (was a 500, found by this run; fixed in ce1d3d8)
    assert response.status_code == 200, response.text
    assert response.json()["local"] is None


def test_every_answered_status_is_documented(findings: dict[str, Any]) -> None:
    """status_code_conformance over the same run: every status answered is in the OpenAPI."""
    undocumented = findings["undocumented"]
    assert not undocumented, "\n".join(sorted({f"{k[0]} -> {k[2]}" for k in undocumented}))


def test_openapi_declares_auth_and_problem_errors(dep: Deployment) -> None:
    """The live document itself: Bearer on every /v1 operation only, every error a Problem."""
    spec = requests.get(dep.url + "/openapi.json", timeout=30).json()
    assert spec["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "lsk_ API key",
        "description": spec["components"]["securitySchemes"]["BearerAuth"]["description"],
    }
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and {"Problem", "ProblemFieldError"} <= set(schemas)
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            label, responses = f"{method.upper()} {path}", operation["responses"]
            if path.startswith("/v1/"):
                # each operation names the one key scope it needs, in security and in x-required-scope
                assert operation.get("security") == [{"BearerAuth": [operation["x-required-scope"]]}], label
                assert "403" in responses, label
                assert responses["401"]["headers"]["WWW-Authenticate"]["required"], label
                assert responses["429"]["headers"]["Retry-After"]["required"], label
            else:
                assert "security" not in operation and "401" not in responses, label
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= set(responses), label
            for status, response in responses.items():
                if int(status) >= 400:
                    content = response.get("content", {})
                    assert list(content) == ["application/problem+json"], (label, status)
                    assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert spec["paths"]["/v1/jobs"]["post"]["responses"]["202"]["headers"]["Location"]["required"]
