"""``POST /v1/models/{id}/predict/npy``: binary rows in, structured records out, with the same
checks (fields named as in JSON predict), limits and guarantees as ``/predict``."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import numpy as np
import pytest

from tests.routes.helpers import Service, problem

NPY = {"content-type": "application/x-npy"}
X = np.random.default_rng(11).uniform(-0.6, 0.6, size=(25, 2))


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)  # the client side may pickle: the service must refuse it
    return buffer.getvalue()


def declared_only(shape: tuple[int, ...]) -> bytes:
    """An .npy header that declares ``shape`` followed by 64 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(64)


def path(ids: dict) -> str:
    return f"/v1/models/{ids['model_id']}/predict/npy"


def test_records_match_the_json_predict(svc: Service, seeded: dict) -> None:
    response = svc.client.post(path(seeded), content=npy(X), headers=NPY, params={"epsilon": 0.1})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-npy"
    records = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert records.dtype.names == ("output", "rounding_bound", "label", "certified_radius", "output_bound")
    expected = svc.client.post(f"/v1/models/{seeded['model_id']}/predict", json={"inputs": X.tolist(), "epsilon": 0.1})
    body = expected.json()
    assert float(response.headers["x-lipschitz-bound"]) == body["lipschitz_bound"]
    assert response.headers["x-arithmetic"] == body["arithmetic"] == "float64"
    classes = json.loads(response.headers["x-classes"])
    assert classes == [0, 1]
    np.testing.assert_array_equal(records["output"], np.array(body["outputs"]))
    np.testing.assert_array_equal(records["rounding_bound"], body["rounding_bound"])
    assert [classes[i] for i in records["label"]] == body["predictions"]
    np.testing.assert_array_equal(records["certified_radius"], body["certified_radius"])
    np.testing.assert_array_equal(records["output_bound"], body["output_bounds"])


def test_integer_and_float32_rows_are_accepted_and_no_epsilon_means_no_bound(svc: Service, seeded: dict) -> None:
    for dtype in (np.int64, np.float32):
        response = svc.client.post(path(seeded), content=npy(np.zeros((3, 2), dtype=dtype)), headers=NPY)
        assert response.status_code == 200, response.text
        records = np.load(io.BytesIO(response.content), allow_pickle=False)
        assert len(records) == 3 and "output_bound" not in records.dtype.names


def test_regression_records_have_no_label_nor_radius(svc: Service) -> None:
    from tests.routes.helpers import REGRESSION_TARGETS, SEED_INPUTS

    ids = svc.trained_model({"inputs": SEED_INPUTS, "targets": REGRESSION_TARGETS, "task": "regression"})
    response = svc.client.post(path(ids), content=npy(X[:4]), headers=NPY)
    assert response.status_code == 200, response.text
    records = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert records.dtype.names == ("output", "rounding_bound")
    assert json.loads(response.headers["x-classes"]) is None


@pytest.mark.parametrize(("make", "field", "words"), [
    (lambda: npy(np.zeros((2, 3))), "inputs.0", "3 features, the model expects 2"),
    (lambda: npy(np.zeros(4)), "body", "2-D numeric array"),
    (lambda: npy(np.zeros((2, 2), dtype=complex)), "body", "complex"),
    (lambda: npy(np.array([["a", "b"]])), "body", "2-D numeric array"),
    (lambda: npy(np.array([[{"exec": "x"}, 1]], dtype=object)), "body", "not a readable .npy"),
    (lambda: npy(np.zeros((0, 2))), "inputs", "at least one row"),
    (lambda: npy(np.array([[0.1, 0.2], [0.3, np.inf]])), "inputs.1", "row 1, column 1"),
    (lambda: npy(np.full((1, 2), 1.7e308)), "inputs.0", "overflow"),
    (lambda: b"certainly not numpy", "body", "not a readable .npy"),
    (lambda: b"", "body", "not a readable .npy"),
    (lambda: declared_only((10**6, 10**6)), "body", "not a readable .npy"),
    (lambda: declared_only((2 * 10**6, 2)), "body", "not a readable .npy"),
])
def test_bad_bodies_are_422_naming_the_field(svc: Service, seeded: dict, make: Callable[[], bytes], field: str,
                                             words: str) -> None:
    body = problem(svc.client.post(path(seeded), content=make(), headers=NPY), 422, "validation-error", field=field)
    assert words in body["detail"], body


def test_row_limit_and_epsilon_range(limited_npy: Service) -> None:
    ids = limited_npy.trained_model()
    assert limited_npy.client.post(path(ids), content=npy(np.zeros((50, 2))), headers=NPY).status_code == 200
    body = problem(limited_npy.client.post(path(ids), content=npy(np.zeros((51, 2))), headers=NPY), 422,
                   "validation-error", field="inputs")
    assert "51 rows exceed the limit of 50" in body["detail"]
    problem(limited_npy.client.post(path(ids), content=npy(np.zeros((1, 2))), headers=NPY, params={"epsilon": -1}),
            422, "validation-error", field="query.epsilon")


@pytest.fixture
def limited_npy(make_service: Callable[..., Service]) -> Service:
    return make_service(max_predict_rows=50)


def test_auth_tenants_and_unknown_models(svc: Service, seeded: dict) -> None:
    rows = npy(np.zeros((1, 2)))
    problem(svc.anon.post(path(seeded), content=rows, headers=NPY), 401, "unauthorized")
    problem(svc.other.post(path(seeded), content=rows, headers=NPY), 404, "not-found")
    problem(svc.client.post("/v1/models/nope/predict/npy", content=rows, headers=NPY), 404, "not-found")


def test_npy_integers_beyond_2_53_are_refused_not_rounded(svc: Service) -> None:
    import io

    model_id = svc.trained_model()["model_id"]
    for array in (np.array([[2**64 - 1, 1]], dtype=np.uint64), np.array([[2**53 + 1, 0]], dtype=np.int64)):
        buffer = io.BytesIO()
        np.save(buffer, array)
        response = svc.client.post(f"/v1/models/{model_id}/predict/npy", content=buffer.getvalue(),
                                   headers={"content-type": "application/x-npy"})
        assert response.status_code == 422 and "2^53" in response.text, response.text
    exact = io.BytesIO()
    np.save(exact, np.array([[3, -2]], dtype=np.int64))
    ok = svc.client.post(f"/v1/models/{model_id}/predict/npy", content=exact.getvalue(),
                         headers={"content-type": "application/x-npy"})
    assert ok.status_code == 200, ok.text
