"""``GET /v1/models/{id}/download?format=onnx``: the served map as an ONNX file, certificate included.

The file is parsed and run by onnxruntime and compared with ``/predict`` on the same rows;
the errors are those of the zip download (same weight check), plus a 422 for an unknown format.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from lipspline.export import read_onnx_metadata
from tests.routes.helpers import Service, problem, tamper_weights

X = np.random.default_rng(11).uniform(-0.6, 0.6, size=(25, 2))


def download_onnx(svc: Service, model_id: str) -> bytes:
    response = svc.client.get(f"/v1/models/{model_id}/download", params={"format": "onnx"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/onnx"
    assert response.headers["content-disposition"] == f'attachment; filename="lipspline-model-{model_id}.onnx"'
    return response.content


def test_onnx_download_runs_and_matches_predict(svc: Service, seeded: dict) -> None:
    model_id = seeded["model_id"]
    data = download_onnx(svc, model_id)
    onnx.checker.check_model(onnx.load_model_from_string(data))
    outputs = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(["output"], {"input": X})[0]
    served = svc.client.post(f"/v1/models/{model_id}/predict", json={"inputs": X.tolist()}).json()
    np.testing.assert_allclose(outputs, np.array(served["outputs"]), rtol=1e-12, atol=1e-12)

    model = svc.client.get(f"/v1/models/{model_id}").json()
    metadata = read_onnx_metadata(data)
    assert metadata.lipschitz_bound == served["lipschitz_bound"] == model["lipschitz"]["certified"]
    assert metadata.certificate_source == "stored"
    assert metadata.certified_by == model["lipschitz"]["certified_by"]
    assert metadata.weights_sha256 == model["weights_sha256"]
    assert metadata.model_id == model_id and metadata.task == "classification"
    assert metadata.classes == model["classes"] and metadata.feature_names == model["feature_names"]


def test_zip_stays_the_default_format(svc: Service, seeded: dict) -> None:
    path = f"/v1/models/{seeded['model_id']}/download"
    assert svc.client.get(path).headers["content-type"] == "application/zip"
    assert svc.client.get(path, params={"format": "zip"}).headers["content-type"] == "application/zip"


def test_unknown_format_is_422_naming_format(svc: Service, seeded: dict) -> None:
    response = svc.client.get(f"/v1/models/{seeded['model_id']}/download", params={"format": "pickle"})
    body = problem(response, 422, "validation-error")
    assert any("format" in error["field"] for error in body["errors"]), body


def test_onnx_download_refuses_tampered_weights_and_other_tenants(svc: Service, seeded: dict) -> None:
    model_id = seeded["model_id"]
    path = f"/v1/models/{model_id}/download"
    problem(svc.other.get(path, params={"format": "onnx"}), 404, "not-found")
    problem(svc.client.get("/v1/models/nope/download", params={"format": "onnx"}), 404, "not-found")
    download_onnx(svc, model_id)  # loaded into the model cache before the weights are rewritten
    tamper_weights(svc, model_id)
    detail = problem(svc.client.get(path, params={"format": "onnx"}), 409, "bad-artifact")["detail"]
    assert "sha256" in detail


def test_openapi_declares_both_downloads_as_binary(svc: Service) -> None:
    operation = svc.anon.get("/openapi.json").json()["paths"]["/v1/models/{model_id}/download"]["get"]
    content = operation["responses"]["200"]["content"]
    binary = {"type": "string", "format": "binary"}
    assert content["application/zip"]["schema"] == binary and content["application/onnx"]["schema"] == binary
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "format"]
    assert parameter["in"] == "query" and parameter["schema"]["enum"] == ["zip", "onnx"]
    assert parameter["schema"]["default"] == "zip"
