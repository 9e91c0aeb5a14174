"""The Open Inference Protocol (``/v2``) in-process: tensors in and out, the certificate outputs,
the binary extension, name -> version resolution, and the OIP error shape.

The same checks with the real ``tritonclient`` against a live server: tests/e2e/test_registry_oip_e2e.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.routes.helpers import REGRESSION_TARGETS, TINY_CONFIG, Service, seed_dataset_body

ROWS = np.array([[0.1, -0.2], [0.3, 0.05], [-0.45, 0.4]])


def infer_body(rows: np.ndarray, datatype: str = "FP64", **extra: object) -> dict:
    tensor = {"name": "input", "shape": list(rows.shape), "datatype": datatype, "data": rows.ravel().tolist()}
    return {"inputs": [tensor], **extra}


def oip_error(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return body["error"]


def tensors(body: dict) -> dict[str, np.ndarray]:
    return {t["name"]: np.asarray(t["data"]).reshape(t["shape"]) for t in body["outputs"]}


def predict(client: TestClient, model_id: str, rows: np.ndarray, **extra: object) -> dict:
    response = client.post(f"/v1/models/{model_id}/predict", json={"inputs": rows.tolist(), **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_server_metadata_and_health_need_no_key(svc: Service) -> None:
    assert svc.anon.get("/v2").json() == {"name": "lipspline", "version": svc.anon.get("/v2").json()["version"],
                                          "extensions": ["binary_tensor_data", "lipspline_certificate"]}
    assert svc.anon.get("/v2/health/live").json() == {"live": True}
    assert svc.anon.get("/v2/health/ready").json() == {"ready": True}
    oip_error(svc.anon.get("/v2/models/anything"), 401)
    assert "/v2" not in json.dumps(list(svc.client.get("/openapi.json").json()["paths"]))


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_infer_equals_v1_predict_with_the_certificate(svc: Service, task: str) -> None:
    body = seed_dataset_body() if task == "classification" else seed_dataset_body("reg", REGRESSION_TARGETS)
    model_id = svc.trained_model(body)["model_id"]
    expected = predict(svc.client, model_id, ROWS, epsilon=0.05)
    request = infer_body(ROWS, id="r1", parameters={"epsilon": 0.05})
    response = svc.client.post(f"/v2/models/{model_id}/infer", json=request)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_name"] == model_id and answer["id"] == "r1" and answer["model_version"] == ""
    assert answer["parameters"]["lipschitz_bound"] == expected["lipschitz_bound"]
    out = tensors(answer)
    assert out["output"].tolist() == expected["outputs"]  # bit-identical float64
    assert out["lipschitz_bound"].tolist() == [expected["lipschitz_bound"]]
    assert out["rounding_bound"].tolist() == expected["rounding_bound"]
    assert out["output_bound"].tolist() == expected["output_bounds"]
    if task == "classification":
        assert out["label"].tolist() == expected["predictions"]
        assert out["certified_radius"].tolist() == expected["certified_radius"]
    else:
        assert "label" not in out and "certified_radius" not in out
    meta = svc.client.get(f"/v2/models/{model_id}").json()
    assert meta["platform"] == "lipspline" and meta["inputs"] == [{"name": "input", "datatype": "FP64",
                                                                   "shape": [-1, 2]}]
    assert [o["name"] for o in meta["outputs"]] == list(out)
    assert svc.client.get(f"/v2/models/{model_id}/ready").json() == {"name": model_id, "ready": True}


def test_binary_tensors_in_and_out_match_json(svc: Service) -> None:
    model_id = svc.trained_model()["model_id"]
    expected = predict(svc.client, model_id, ROWS)
    raw = ROWS.astype("<f8").tobytes()
    header = json.dumps({"inputs": [{"name": "input", "shape": [3, 2], "datatype": "FP64",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "output", "parameters": {"binary_data": True}},
                                     {"name": "label", "parameters": {"binary_data": True}},
                                     {"name": "certified_radius"}]}).encode()
    response = svc.client.post(f"/v2/models/{model_id}/infer", content=header + raw,
                               headers={"Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    head = json.loads(response.content[:length])
    assert [t["name"] for t in head["outputs"]] == ["output", "label", "certified_radius"]
    sizes = [t.get("parameters", {}).get("binary_data_size", 0) for t in head["outputs"]]
    blob = response.content[length:]
    assert len(blob) == sum(sizes)
    outputs = np.frombuffer(blob[: sizes[0]], "<f8").reshape(head["outputs"][0]["shape"])
    labels = np.frombuffer(blob[sizes[0] : sizes[0] + sizes[1]], "<i8")
    assert outputs.tolist() == expected["outputs"] and labels.tolist() == expected["predictions"]
    assert head["outputs"][2]["data"] == expected["certified_radius"]


def test_fp32_inputs_are_widened_and_fp32_outputs_keep_a_sound_rounding_bound(svc: Service) -> None:
    model_id = svc.trained_model()["model_id"]
    narrow = ROWS.astype(np.float32)
    expected = predict(svc.client, model_id, narrow.astype(np.float64))
    answer = svc.client.post(f"/v2/models/{model_id}/infer", json=infer_body(ROWS, "FP32")).json()
    assert tensors(answer)["output"].tolist() == expected["outputs"]
    answer = svc.client.post(f"/v2/models/{model_id}/infer", json=infer_body(
        narrow.astype(np.float64), "FP64", parameters={"output_datatype": "FP32"})).json()
    out = {t["name"]: t for t in answer["outputs"]}
    assert out["output"]["datatype"] == "FP32"
    sent = np.asarray(out["output"]["data"], dtype=np.float32).astype(np.float64).reshape(3, -1)
    exact = np.asarray(expected["outputs"])
    # the bound still covers the float64 rounding plus the cast
    moved = np.linalg.norm(sent - exact, axis=1)
    assert (np.asarray(out["rounding_bound"]["data"]) >= np.asarray(expected["rounding_bound"]) + moved).all()


def test_registered_names_serve_production_else_the_latest_version(svc: Service) -> None:
    first, second = svc.trained_model()["model_id"], svc.trained_model()["model_id"]
    svc.client.post("/v1/registered-models", json={"name": "circle"})
    for model_id in (first, second):
        svc.client.post("/v1/registered-models/circle/versions", json={"model_id": model_id})

    def served(path: str) -> tuple[str, str]:
        answer = svc.client.post(path, json=infer_body(ROWS[:1])).json()
        return answer["parameters"]["model_id"], answer["model_version"]

    assert served("/v2/models/circle/infer") == (second, "2")  # no production alias: the latest
    svc.client.put("/v1/registered-models/circle/aliases/production", json={"version": 1})
    assert served("/v2/models/circle/infer") == (first, "1")
    assert served("/v2/models/circle/versions/2/infer") == (second, "2")
    assert served("/v2/models/circle@production/infer")[0] == first
    assert svc.client.get("/v2/models/circle").json()["versions"] == ["1", "2"]
    assert svc.client.get("/v2/models/circle/versions/2/ready").status_code == 200
    for path in ("/v2/models/circle/versions/3/infer", "/v2/models/circle/versions/x/infer"):
        assert "does not resolve" in oip_error(svc.client.post(path, json=infer_body(ROWS)), 404)
    # nothing has that name or id: the answer /v1 gives too (one resolver)
    assert oip_error(svc.client.post("/v2/models/nope/infer", json=infer_body(ROWS)), 404) == (
        "model 'nope' does not exist")
    oip_error(svc.other.post("/v2/models/circle/infer", json=infer_body(ROWS)), 404)  # another tenant's name
    oip_error(svc.other.get(f"/v2/models/{first}/ready"), 404)


def test_malformed_tensors_are_400_with_an_error(svc: Service) -> None:
    model_id = svc.trained_model()["model_id"]
    path = f"/v2/models/{model_id}/infer"
    good = infer_body(ROWS)["inputs"][0]
    cases = {
        "datatype": {**good, "datatype": "INT32"},
        "shape": {**good, "shape": [3, 3]},
        "values": {**good, "data": good["data"][:-1]},
        "numbers": {**good, "data": ["a"] * 6},
        "regular": {**good, "data": [[1.0, 2.0], [3.0]]},
        "finite": {**good, "data": [1e39] * 6, "datatype": "FP32"},
        "expected one tensor named 'input'": {**good, "name": "x"},
    }
    for needle, tensor in cases.items():
        assert needle in oip_error(svc.client.post(path, json={"inputs": [tensor]}), 400), needle
    assert "not valid JSON" in oip_error(svc.client.post(path, content=b"{"), 400)
    assert "inputs" in oip_error(svc.client.post(path, json={"inputs": []}), 400)
    assert "output_bound" in oip_error(svc.client.post(path, json=infer_body(ROWS, outputs=[{"name": "output_bound"}])),
                                       400)
    assert "epsilon" in oip_error(svc.client.post(path, json=infer_body(ROWS, parameters={"epsilon": -1})), 400)
    header = json.dumps({"inputs": [{**good, "data": None, "parameters": {"binary_data_size": 48}}]}).encode()
    response = svc.client.post(path, content=header + b"\0" * 40,
                               headers={"Inference-Header-Content-Length": str(len(header))})
    assert "binary_data_size" in oip_error(response, 400)
    nan = header + np.array([np.nan] * 6).tobytes()
    response = svc.client.post(path, content=nan, headers={"Inference-Header-Content-Length": str(len(header))})
    assert "not finite" in oip_error(response, 400)
    oip_error(svc.anon.post(path, json=infer_body(ROWS)), 401)


def _fp32_infer(svc: Service, model_id: str, rows: np.ndarray, epsilon: float) -> dict[str, np.ndarray]:
    body = infer_body(rows, "FP64", parameters={"output_datatype": "FP32", "epsilon": epsilon})
    response = svc.client.post(f"/v2/models/{model_id}/infer", json=body)
    assert response.status_code == 200, response.text
    out = {t["name"]: t for t in response.json()["outputs"]}
    sent = out["output"]["data"]
    # the JSON decimals are the float32 numbers themselves, read back exactly as float64
    assert all(float(np.float32(v)) == v for v in sent)
    return {name: np.asarray(t["data"], dtype=np.float64).reshape(t["shape"]) for name, t in out.items()}


def test_fp32_outputs_keep_the_output_bound_across_float32_rounding_points(svc: Service) -> None:
    """The ulp-straddling attack on an affine regressor with outputs ~1e3 (float32 ulp 6e-5): x is moved so
    that its output sits just above a float32 number a (the cast at x costs nothing), y half an ulp further
    along the gradient, so y's output rounds up to the next float32 number: the returned values move by a
    whole ulp for an input step worth half of one. A bound that covers the cast only at x is beaten 2x."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 2))
    y = 1000.0 + 3.0 * x[:, 0] - 2.0 * x[:, 1]
    dataset_id = svc.upload({"name": "affine", "inputs": x.tolist(), "targets": y.tolist(), "task": "regression"})
    affine = {**TINY_CONFIG, "architecture": {"hidden": [], "activation": "relu"}}
    model_id = svc.worker.run(svc.submit(dataset_id, affine))
    centres = rng.normal(size=(20, 2))
    exact = np.asarray(predict(svc.client, model_id, centres)["outputs"])[:, 0]
    steps = np.asarray(predict(svc.client, model_id, centres + np.eye(2)[0] * 1e-3)["outputs"])[:, 0]
    side = np.asarray(predict(svc.client, model_id, centres + np.eye(2)[1] * 1e-3)["outputs"])[:, 0]
    gradient = np.stack([(steps - exact) / 1e-3, (side - exact) / 1e-3], axis=1)
    direction = gradient / (gradient**2).sum(axis=1, keepdims=True)  # moves the output by 1 per unit
    below = np.float32(exact).astype(np.float64)
    below = np.where(below > exact, np.nextafter(np.float32(below), np.float32(-np.inf)).astype(np.float64), below)
    ulp = np.spacing(np.float32(below)).astype(np.float64)
    starts = centres + direction * (below - exact + 0.01 * ulp)[:, None]
    ends = starts + direction * (0.51 * ulp)[:, None]
    epsilon = float(np.linalg.norm(ends - starts, axis=1).max())
    at_x, at_y = _fp32_infer(svc, model_id, starts, epsilon), _fp32_infer(svc, model_id, ends, epsilon)
    moved = np.abs(at_x["output"] - at_y["output"])[:, 0]
    assert (moved > 0).sum() >= len(moved) // 2, "the attack should cross rounding points"
    assert (moved <= at_x["output_bound"]).all(), float((moved / at_x["output_bound"]).max())


def test_fp32_labels_never_change_inside_the_fp32_certified_radius(svc: Service) -> None:
    model_id = svc.trained_model()["model_id"]
    rng = np.random.default_rng(4)
    rows = rng.uniform(-0.5, 0.5, size=(30, 2))
    body = infer_body(rows, "FP64", parameters={"output_datatype": "FP32"})
    answer = tensors(svc.client.post(f"/v2/models/{model_id}/infer", json=body).json())
    pushed, labels = [], []
    for row, radius, label in zip(rows, answer["certified_radius"], answer["label"], strict=True):
        if radius <= 0:
            continue
        angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        pushed += (row + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)).tolist()
        labels += [label] * 32
    assert labels, "nothing certified: the test would check nothing"
    body = infer_body(np.asarray(pushed), "FP64", parameters={"output_datatype": "FP32"})
    again = tensors(svc.client.post(f"/v2/models/{model_id}/infer", json=body).json())
    assert again["label"].tolist() == labels


def test_one_number_grammar_and_one_epsilon_range_on_v1_and_v2(svc: Service) -> None:
    model_id = svc.trained_model()["model_id"]
    for value in ("1.0", True):
        v1 = svc.client.post(f"/v1/models/{model_id}/predict", json={"inputs": [[value, 0.0]]})
        assert v1.status_code == 422 and "inputs.0" in v1.json()["field"], v1.text
        bad = infer_body(ROWS)
        bad["inputs"][0]["data"][0] = value
        assert svc.client.post(f"/v2/models/{model_id}/infer", json=bad).status_code == 400
    assert svc.client.post(f"/v1/models/{model_id}/predict", json={"inputs": [[0, 1]], "epsilon": 1e308}).status_code \
        == 422
    huge = svc.client.post(f"/v2/models/{model_id}/infer", json=infer_body(ROWS, parameters={"epsilon": 1e308}))
    assert "between 0 and 1e+12" in oip_error(huge, 400)
