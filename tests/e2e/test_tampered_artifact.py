"""Issue 5 item 7 on a live server: a model whose stored weights were altered is never served.

Three tiny models are trained over HTTP on an embedded deployment. Then the weights blob of
two of them is altered directly in the deployment's SQLite file, the way a person with
database access (or a corrupted disk) would: one byte of tensor data flipped, so the blob
still parses as safetensors and only the sha256 check can tell.

* A model never loaded by the API process before the tampering: predict, certify,
  activations and download answer 409 problem+json ``bad-artifact``, never a 500, never
  outputs. Its metadata (GET /v1/models/{id}) stays readable: it does not touch the weights.
* A model the API process had already loaded (and verified) keeps being served from that
  in-memory copy, which is the model as trained, until the process restarts or evicts it;
  its download, which reads the stored blob, is refused at once. After an API restart, every
  route that needs its weights refuses it too.
* A model whose blob *and* the sha256 inside its model document were rewritten to agree is
  still refused: the row's own ``weights_sha256`` is checked as well.
* The untouched model keeps working throughout, its download matching its sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from safetensors.torch import load as load_safetensors

from tests.support.processes import Deployment, embedded_env, wait_for_job

pytestmark = pytest.mark.e2e

TINY_CONFIG = {
    "architecture": {"hidden": [2]},
    "spline": {"knots": 11},
    "training": {"epochs": 2, "batch_size": 16, "validation_split": 0.0},
    "device": "cpu",
}
INPUTS = [[0.0, 0.0], [0.4, -0.3], [-0.2, 0.45]]
#: the routes that need a model's weights (all refuse a tampered one)
WEIGHT_ROUTES = ("predict", "certify", "activations", "download")


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("tampered")
    with Deployment(embedded_env(workdir), workdir, embedded=True).running() as deployment:
        yield deployment


def database_file(dep: Deployment) -> Path:
    """The embedded deployment's SQLite file (``Settings.resolved_database_url``)."""
    path = Path(dep.env["LIPSPLINE_DATA_DIR"]) / "lipspline.sqlite3"
    assert path.is_file(), path
    return path


def read_weights(dep: Deployment, model_id: str) -> bytes:
    """The model's stored weights: in the artifact store beside the SQLite file (the embedded default), or
    in the row's own column."""
    with sqlite3.connect(database_file(dep), timeout=60) as db:
        weights, uri = db.execute("SELECT weights, weights_uri FROM models WHERE id = ?", (model_id,)).fetchone()
    return weights if uri is None else Path(urlsplit(uri).path).read_bytes()


def write_weights(dep: Deployment, model_id: str, weights: bytes) -> None:
    with sqlite3.connect(database_file(dep), timeout=60) as db:
        (uri,) = db.execute("SELECT weights_uri FROM models WHERE id = ?", (model_id,)).fetchone()
        if uri is None:
            db.execute("UPDATE models SET weights = ? WHERE id = ?", (weights, model_id))
            return
    Path(urlsplit(uri).path).write_bytes(weights)


def tamper_weights(dep: Deployment, model_id: str) -> None:
    """Flip the last byte of the stored weights: tensor data, so the blob still parses."""
    weights = read_weights(dep, model_id)
    tampered = weights[:-1] + bytes([weights[-1] ^ 0xFF])
    load_safetensors(tampered)  # still a readable blob: only the sha256 check can catch it
    write_weights(dep, model_id, tampered)


def tamper_weights_and_document(dep: Deployment, model_id: str) -> None:
    """Alter the blob and rewrite the document's sha256 to match it (the row's copy stays)."""
    tamper_weights(dep, model_id)
    weights = read_weights(dep, model_id)
    with sqlite3.connect(database_file(dep), timeout=60) as db:
        (document,) = db.execute("SELECT document FROM models WHERE id = ?", (model_id,)).fetchone()
        document = json.loads(document)
        assert "weights_sha256" in document, sorted(document)
        document["weights_sha256"] = hashlib.sha256(weights).hexdigest()
        db.execute("UPDATE models SET document = ? WHERE id = ?", (json.dumps(document), model_id))


def call(http: httpx.Client, model_id: str, route: str) -> httpx.Response:
    if route == "predict":
        return http.post(f"/v1/models/{model_id}/predict", json={"inputs": INPUTS, "epsilon": 0.05})
    if route == "certify":
        return http.post(f"/v1/models/{model_id}/certify", json={"inputs": INPUTS[:1], "epsilon": 0.1})
    return http.get(f"/v1/models/{model_id}/{route}")


def assert_bad_artifact(response: httpx.Response) -> None:
    assert response.status_code == 409, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/bad-artifact"), problem
    assert problem["status"] == 409 and problem["instance"] == response.request.url.path, problem
    assert "sha256" in problem["detail"], problem
    assert "outputs" not in problem and "predictions" not in problem


@pytest.fixture(scope="module")
def models(dep: Deployment) -> dict[str, str]:
    """Three trained models: ``never_loaded`` and ``cached`` get tampered, ``intact`` does not."""
    inputs = [[(i % 7) / 7 - 0.5, (i % 5) / 5 - 0.4] for i in range(32)]
    targets = [int(a * a + b * b < 0.1) for a, b in inputs]
    with dep.client() as http:
        dataset = http.post("/v1/datasets", json={"name": "tamper", "inputs": inputs, "targets": targets})
        assert dataset.status_code == 201, dataset.text
        jobs = {}
        for name in ("never_loaded", "cached", "intact", "rehashed"):
            job = http.post("/v1/jobs", json={"dataset_id": dataset.json()["id"], "config": TINY_CONFIG})
            assert job.status_code == 202, job.text
            jobs[name] = job.json()["id"]
        ids = {}
        for name, job_id in jobs.items():
            state = wait_for_job(http, job_id)
            assert state["status"] == "succeeded", state
            ids[name] = state["model_id"]
    return ids


@pytest.fixture(scope="module")
def before(dep: Deployment, models: dict[str, str]) -> dict[str, dict]:
    """Load ``cached`` and ``intact`` into the API's model cache, keep their answers, then tamper."""
    with dep.client() as http:
        answers = {}
        for name in ("cached", "intact"):
            response = call(http, models[name], "predict")
            assert response.status_code == 200, response.text
            answers[name] = response.json()
    for name in ("never_loaded", "cached"):
        tamper_weights(dep, models[name])
    tamper_weights_and_document(dep, models["rehashed"])
    return answers


def test_blob_and_document_rewritten_together_are_still_refused(
    dep: Deployment, models: dict[str, str], before: dict
) -> None:
    with dep.client() as http:
        for route in WEIGHT_ROUTES:
            assert_bad_artifact(call(http, models["rehashed"], route))


def test_never_loaded_tampered_model_is_refused(dep: Deployment, models: dict[str, str], before: dict) -> None:
    model_id = models["never_loaded"]
    with dep.client() as http:
        for route in WEIGHT_ROUTES:
            assert_bad_artifact(call(http, model_id, route))
        # a refusal is not cached: asked again, it is refused again
        assert_bad_artifact(call(http, model_id, "predict"))
        # the metadata does not involve the weights and stays readable
        metadata = http.get(f"/v1/models/{model_id}")
        assert metadata.status_code == 200, metadata.text
        assert metadata.json()["id"] == model_id


def test_cached_model_is_served_from_its_verified_copy(dep: Deployment, models: dict[str, str], before: dict) -> None:
    """Documented behaviour: a model loaded before the tampering is served as it was loaded.

    The cache checked the sha256 when it loaded the model; the network in memory is the one
    trained, so its answers are the original ones. The stored blob is not trusted again:
    the download, which sends it, is refused.
    """
    model_id = models["cached"]
    with dep.client() as http:
        predicted = call(http, model_id, "predict")
        assert predicted.status_code == 200, predicted.text
        assert predicted.json() == before["cached"]
        assert call(http, model_id, "certify").status_code == 200
        assert_bad_artifact(call(http, model_id, "download"))


def test_untouched_model_keeps_working(dep: Deployment, models: dict[str, str], before: dict) -> None:
    model_id = models["intact"]
    with dep.client() as http:
        for route in WEIGHT_ROUTES:
            response = call(http, model_id, route)
            assert response.status_code == 200, (route, response.text)
        assert call(http, model_id, "predict").json() == before["intact"]
        archive = zipfile.ZipFile(io.BytesIO(call(http, model_id, "download").content))
        digest = hashlib.sha256(archive.read("weights.safetensors")).hexdigest()
        assert digest == http.get(f"/v1/models/{model_id}").json()["weights_sha256"]


def test_after_an_api_restart_every_tampered_model_is_refused(
    dep: Deployment, models: dict[str, str], before: dict
) -> None:
    """A fresh API process has nothing cached: it reads, checks and refuses both tampered models."""
    dep.restart_api()
    with dep.client() as http:
        for name in ("never_loaded", "cached"):
            for route in WEIGHT_ROUTES:
                assert_bad_artifact(call(http, models[name], route))
        predicted = call(http, models["intact"], "predict")
        assert predicted.status_code == 200, predicted.text
        assert predicted.json() == before["intact"]
