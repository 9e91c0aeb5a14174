"""End to end over HTTP, on both deployments: upload -> train -> predict with certificate,
concurrent jobs, cancellation, bad input, and a restart that loses nothing."""

from __future__ import annotations

import io
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from lipspline.data import make_circle
from tests.support.processes import TERMINAL, Deployment, lipspline_argv, wait_for_job

pytestmark = pytest.mark.e2e

CIRCLE_CONFIG = {
    "architecture": {"hidden": [2], "activation": "deepspline"},
    "spline": {"knots": 21, "range": 3.0},
    "objective": {"mode": "bv2", "lambda": 1e-4, "mu": 1e-4},
    "training": {"epochs": 25, "batch_size": 32, "lr": 0.01, "seed": 0, "validation_split": 0.2},
    "device": "cpu",
}
#: a job long enough to be caught running (many minutes; at the default epoch limit, and no early stopping
#: to end it first), stopped by cancel
LONG_CONFIG = {
    **CIRCLE_CONFIG,
    "training": {**CIRCLE_CONFIG["training"], "epochs": 10000, "batch_size": 8, "early_stopping": False},
}


def client(dep: Deployment) -> httpx.Client:
    return dep.client()


def circle_csv() -> bytes:
    data = make_circle(1000, seed=0)
    lines = ["x1,x2,inside"] + [f"{float(a)!r},{float(b)!r},{int(c)}" for (a, b), c in zip(data.X, data.y, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def upload_circle(http: httpx.Client) -> dict:
    response = http.post("/v1/datasets", files={"file": ("circle.csv", circle_csv(), "text/csv")},
                         data={"target": "inside"})
    assert response.status_code == 201, response.text
    return response.json()


def submit(http: httpx.Client, dataset_id: str, config: dict) -> str:
    response = http.post("/v1/jobs", json={"dataset_id": dataset_id, "config": config})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    assert response.json()["status"] == "queued"
    return response.json()["id"]


@pytest.fixture(scope="module")
def state(deployment: Deployment) -> dict:
    """What earlier tests created on this deployment, checked again after the restart."""
    return {"datasets": set(), "jobs": set(), "models": set()}


@pytest.fixture(scope="module")
def circle_model(deployment: Deployment, state: dict) -> dict:
    with client(deployment) as http:
        dataset = upload_circle(http)
        assert dataset["task"] == "classification" and dataset["n_samples"] == 1000 and dataset["classes"] == [0, 1]
        job_id = submit(http, dataset["id"], CIRCLE_CONFIG)
        job = wait_for_job(http, job_id, TERMINAL)
        assert job["status"] == "succeeded", job
        model = http.get(f"/v1/models/{job['model_id']}").json()
    state["datasets"].add(dataset["id"])
    state["jobs"].add(job_id)
    state["models"].add(model["id"])
    return {"dataset": dataset, "job": job, "model": model}


def test_health_and_openapi_examples(deployment: Deployment) -> None:
    with client(deployment) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz").json()
        assert ready["checks"] == {"database": True, "broker": True}
        spec = http.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            for media, content in body["content"].items():
                schema = content.get("schema", {})
                ref = schema.get("$ref", "")
                resolved = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema
                has_example = "example" in content or "examples" in content or "examples" in resolved
                assert has_example or media == "multipart/form-data", (
                    f"{method.upper()} {path} ({media}) has no example"
                )


def test_train_predict_and_certificate_holds(deployment: Deployment, circle_model: dict) -> None:
    job, model = circle_model["job"], circle_model["model"]
    assert job["progress"]["epoch"] == 25 and job["device"] == "cpu" and job["worker_host"]
    assert job["started_at"] and job["finished_at"] and job["train_seconds"] > 0
    lipschitz = model["lipschitz"]
    assert lipschitz["norm"] == "l2" and lipschitz["certified"] >= lipschitz["best_lower"] > 0
    assert set(lipschitz["bounds"]) >= {"spectral_product", "per_neuron_scaled", "liplt", "frobenius", "bv2_mixed"}
    assert lipschitz["certified"] == min(v for v in lipschitz["bounds"].values() if v is not None)
    assert model["sparsity"]["layers"][0]["neurons"] == 2 and model["parameter_count"] == 51
    assert model["metrics"]["validation"]["accuracy"] > 0.8

    rng = np.random.default_rng(1)
    x = rng.uniform(-1.5, 1.5, size=(400, 2))
    with client(deployment) as http:
        history = http.get(f"/v1/jobs/{job['id']}/metrics").json()["history"]
        assert [h["epoch"] for h in history] == list(range(1, 26))
        assert {"data", "total"} <= set(history[-1]["losses"])
        response = http.post(f"/v1/models/{model['id']}/predict", json={"inputs": x.tolist(), "epsilon": 0.05})
    assert response.status_code == 200, response.text
    body = response.json()
    bound = body["lipschitz_bound"]
    assert bound == lipschitz["certified"]
    assert body["output_bound"] == pytest.approx(bound * 0.05, rel=1e-12) and body["output_bound"] >= bound * 0.05
    outputs = np.array(body["outputs"])[:, 0]
    assert set(body["predictions"]) <= {0, 1}
    assert body["predictions"] == [int(z > 0) for z in outputs]
    # No pair of sampled inputs moves the output more than the certificate allows.
    i, j = np.triu_indices(len(x), k=1)
    ratios = np.abs(outputs[i] - outputs[j]) / np.linalg.norm(x[i] - x[j], axis=1)
    assert ratios.max() <= bound * (1 + 1e-6)
    # Radius = |z| / L for a single logit; points just inside it keep their prediction.
    radius = np.array(body["certified_radius"])
    np.testing.assert_allclose(radius, np.abs(outputs) / bound, rtol=1e-6)
    direction = rng.normal(size=x.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    moved = x + 0.99 * radius[:, None] * direction
    with client(deployment) as http:
        again = http.post(f"/v1/models/{model['id']}/predict", json={"inputs": moved.tolist()}).json()
    assert again["predictions"] == body["predictions"]


def test_certify_activations_download(deployment: Deployment, circle_model: dict) -> None:
    model_id = circle_model["model"]["id"]
    with client(deployment) as http:
        cert = http.post(f"/v1/models/{model_id}/certify", json={"inputs": [[0.0, 0.0], [0.9, 0.9]], "epsilon": 0.1})
        curves = http.get(f"/v1/models/{model_id}/activations").json()
        download = http.get(f"/v1/models/{model_id}/download")
    assert cert.status_code == 200, cert.text
    body = cert.json()
    assert len(body["local"]) == 2
    for item in body["local"]:
        assert 0 < item["bound"] <= body["lipschitz"]["certified"]
        assert 0 <= item["local_radius"] <= 0.1
    (layer,) = curves["layers"]
    assert layer["kind"] == "LinearSpline" and layer["units"] == 2 and len(layer["y"]) == 2
    assert len(layer["x"]) == len(layer["y"][0]) == curves["points"]
    import json
    import zipfile

    from lipspline.nn.serialization import model_from_parts

    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        document = json.loads(archive.read("model.json"))
        restored = model_from_parts(document, archive.read("weights.safetensors"))
    assert restored.predict(np.array([[0.0, 0.0], [0.9, 0.9]])) == [item["prediction"] for item in body["local"]]


def test_onnx_download_runs_the_served_map(deployment: Deployment, circle_model: dict) -> None:
    """The ONNX file from the live server computes what /predict returns and carries its bound."""
    import onnxruntime as ort

    from lipspline.export import read_onnx_metadata

    model_id = circle_model["model"]["id"]
    x = np.random.default_rng(4).uniform(-1.5, 1.5, size=(50, 2))
    with client(deployment) as http:
        served = http.post(f"/v1/models/{model_id}/predict", json={"inputs": x.tolist()}).json()
        download = http.get(f"/v1/models/{model_id}/download", params={"format": "onnx"})
    assert download.status_code == 200 and download.headers["content-type"] == "application/onnx"
    outputs = ort.InferenceSession(download.content, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(outputs, np.array(served["outputs"]), rtol=1e-12, atol=1e-12)
    metadata = read_onnx_metadata(download.content)
    assert metadata.lipschitz_bound == served["lipschitz_bound"]
    assert metadata.weights_sha256 == circle_model["model"]["weights_sha256"]


def test_five_jobs_at_once_all_succeed(deployment: Deployment, circle_model: dict, state: dict) -> None:
    dataset_id = circle_model["dataset"]["id"]
    configs = [{**CIRCLE_CONFIG, "training": {**CIRCLE_CONFIG["training"], "epochs": 8, "seed": s}} for s in range(5)]
    with client(deployment) as http, ThreadPoolExecutor(5) as pool:
        job_ids = list(pool.map(lambda c: submit(http, dataset_id, c), configs))
        jobs = [wait_for_job(http, j, TERMINAL) for j in job_ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * 5, [j["error"] for j in jobs]
    assert len({j["model_id"] for j in jobs}) == 5
    state["jobs"].update(job_ids)
    state["models"].update(j["model_id"] for j in jobs)
    if deployment.kind == "postgres_redis":
        # two worker processes shared the work
        assert len({j["worker_host"] for j in jobs}) == 2


def test_cancel_running_and_queued_jobs(deployment: Deployment, circle_model: dict, state: dict) -> None:
    dataset_id = circle_model["dataset"]["id"]
    slots = 1 if deployment.kind == "embedded" else 2
    with client(deployment) as http:
        running = [submit(http, dataset_id, LONG_CONFIG) for _ in range(slots)]
        queued = submit(http, dataset_id, LONG_CONFIG)
        for job_id in running:
            job = wait_for_job(http, job_id, {"running"}, timeout_s=60)
            while job["progress"]["epoch"] < 1:
                job = http.get(f"/v1/jobs/{job_id}").json()
                time.sleep(0.05)
        cancelled = http.post(f"/v1/jobs/{queued}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
        began = time.monotonic()
        for job_id in running:
            assert http.post(f"/v1/jobs/{job_id}/cancel").json()["cancel_requested"] is True
        for job_id in running:
            job = wait_for_job(http, job_id, TERMINAL, timeout_s=30)
            assert job["status"] == "cancelled" and job["model_id"] is None
            assert job["progress"]["epoch"] < job["progress"]["epochs"]
        assert time.monotonic() - began < 15
        time.sleep(1.0)
        assert http.get(f"/v1/jobs/{queued}").json()["started_at"] is None  # never ran
        # a finished job cannot be cancelled
        assert http.post(f"/v1/jobs/{circle_model['job']['id']}/cancel").status_code == 409
    state["jobs"].update([*running, queued])


def test_defaults_stop_by_themselves_and_serve_the_best_epoch(deployment: Deployment, state: dict) -> None:
    """A job that sets nothing but the architecture: it plans its epochs, stops by early stopping,
    serves its best validation epoch, and says so (and how well the spline grid covered the data)."""
    from api_schemas import TrainingConfig
    from lipspline.training.plan import automatic_epochs

    data = make_circle(150, seed=7)
    flipped = np.where(np.random.default_rng(7).uniform(size=150) < 0.2, 1 - data.y, data.y)  # converges early
    with client(deployment) as http:
        dataset = http.post("/v1/datasets", json={"inputs": data.X.tolist(), "targets": flipped.tolist()})
        assert dataset.status_code == 201, dataset.text
        job_id = submit(http, dataset.json()["id"], {"architecture": {"hidden": [2]}})
        job = wait_for_job(http, job_id, TERMINAL, timeout_s=300)
        assert job["status"] == "succeeded", job
        history = http.get(f"/v1/jobs/{job_id}/metrics").json()["history"]
        model = http.get(f"/v1/models/{job['model_id']}").json()
    state["jobs"].add(job_id)
    state["datasets"].add(dataset.json()["id"])
    state["models"].add(model["id"])
    progress = job["progress"]
    assert progress["stop_reason"] == "converged"
    batch_size = TrainingConfig().training.batch_size
    assert progress["epochs_planned"] == automatic_epochs(120, batch_size) > progress["epochs_run"] == len(history)
    losses = [h["validation_metrics"]["loss"] for h in history]
    best = progress["best_epoch"]
    assert best == 1 + losses.index(min(losses)) == progress["served_epoch"]
    assert [h["epoch"] for h in history if h["improved"]][-1] == best
    (fraction,) = progress["out_of_grid_fraction"]
    assert 0.0 <= fraction <= 1.0 and progress["warnings"] == []
    training = model["metrics"]["training"]
    assert training["best_epoch"] == best and training["stop_reason"] == "converged"
    assert model["config"]["spline"]["layer_ranges"] == progress["spline_ranges"] == training["spline_ranges"]
    assert model["metrics"]["epochs"] == len(history) and model["metrics"]["warnings"] == []


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


def test_bad_input_gets_problem_json(deployment: Deployment, circle_model: dict, state: dict) -> None:
    model_id = circle_model["model"]["id"]
    dataset_id = circle_model["dataset"]["id"]
    with client(deployment) as http:
        before = len(http.get("/v1/datasets").json()["items"])
        bad_csv = b"x1,x2,y\n0.1,0.2,1\n0.3,nan,0\n"
        body = problem(http.post("/v1/datasets", files={"file": ("d.csv", bad_csv)}, data={"target": "y"}), 422)
        assert body["row"] == 1 and body["column"] == "x2"
        body = problem(http.post("/v1/datasets", json={"inputs": [[1, 2], [3]], "targets": [0, 1]}), 422)
        assert len(http.get("/v1/datasets").json()["items"]) == before  # nothing half-written

        body = problem(
            http.post("/v1/jobs", json={"dataset_id": dataset_id, "config": {"training": {"epochs": 0}}}), 422
        )
        assert any(e["field"] == "config.training.epochs" for e in body["errors"])
        body = problem(http.post("/v1/jobs", json={"dataset_id": dataset_id, "config": {"optimiser": "adam"}}), 422)
        assert "config.optimiser" in body["detail"]
        problem(http.post("/v1/jobs", json={"dataset_id": "nope", "config": {}}), 404)

        predict = f"/v1/models/{model_id}/predict"
        assert "inputs.0" in problem(http.post(predict, json={"inputs": [[1.0, 2.0, 3.0]]}), 422)["detail"]
        assert "inputs" in problem(http.post(predict, json={"inputs": []}), 422)["detail"]
        nan_body = b'{"inputs": [[0.1, NaN]]}'
        detail = problem(http.post(predict, content=nan_body, headers={"content-type": "application/json"}), 422)
        assert "not finite" in detail["detail"]
        problem(http.post(predict, content=b"{not json", headers={"content-type": "application/json"}), 400)
        problem(http.post("/v1/models/unknown/predict", json={"inputs": [[0.0, 0.0]]}), 404)
        problem(http.get("/v1/jobs/unknown"), 404)

        # a dataset used by an active job cannot be deleted; a finished job's dataset can
        long_job = submit(http, dataset_id, LONG_CONFIG)
        body = problem(http.delete(f"/v1/datasets/{dataset_id}"), 409)
        assert long_job in body["jobs"]
        http.post(f"/v1/jobs/{long_job}/cancel")
        wait_for_job(http, long_job, TERMINAL, timeout_s=30)
        state["jobs"].add(long_job)
        spare = http.post(
            "/v1/datasets", json={"name": "spare", "inputs": [[0], [1], [2], [3]], "targets": [0, 1, 0, 1]}
        )
        assert spare.status_code == 201
        assert http.delete(f"/v1/datasets/{spare.json()['id']}").status_code == 204
        problem(http.get(f"/v1/datasets/{spare.json()['id']}"), 404)
        assert http.get("/readyz").status_code == 200  # still healthy


def test_api_keys_and_tenant_isolation(deployment: Deployment, circle_model: dict) -> None:
    model_id, dataset_id, job_id = circle_model["model"]["id"], circle_model["dataset"]["id"], circle_model["job"]["id"]
    owned_routes = [
        ("GET", f"/v1/datasets/{dataset_id}", None),
        ("DELETE", f"/v1/datasets/{dataset_id}", None),
        ("GET", f"/v1/jobs/{job_id}", None),
        ("GET", f"/v1/jobs/{job_id}/metrics", None),
        ("POST", f"/v1/jobs/{job_id}/cancel", None),
        ("GET", f"/v1/models/{model_id}", None),
        ("POST", f"/v1/models/{model_id}/predict", {"inputs": [[0.0, 0.0]]}),
        ("POST", f"/v1/models/{model_id}/certify", {"inputs": [[0.0, 0.0]]}),
        ("GET", f"/v1/models/{model_id}/activations", None),
        ("GET", f"/v1/models/{model_id}/download", None),
        ("POST", "/v1/jobs", {"dataset_id": dataset_id, "config": CIRCLE_CONFIG}),
    ]
    with httpx.Client(base_url=deployment.url, timeout=60) as anonymous:
        for method, path, body in [*owned_routes, ("GET", "/v1/models", None), ("POST", "/v1/datasets", {})]:
            response = anonymous.request(method, path, json=body)
            assert problem(response, 401)["detail"].startswith("Authorization"), (method, path)
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/healthz").status_code == 200  # probes stay open
    with deployment.client("lsk_not-a-real-key") as forged:
        problem(forged.get("/v1/models"), 401)

    other_key = deployment.create_key("other-team")
    with deployment.client(other_key) as other:
        for method, path, body in owned_routes:
            response = other.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert "does not exist" in response.json()["detail"]  # the same answer as an unknown id
        assert other.get("/v1/datasets").json()["items"] == []
        assert other.get("/v1/jobs").json()["items"] == []
        assert other.get("/v1/models").json()["items"] == []
        mine = other.post("/v1/datasets", json={"name": "theirs", "inputs": [[0], [1]], "targets": [0, 1]}).json()
    with client(deployment) as http:
        problem(http.get(f"/v1/datasets/{mine['id']}"), 404)
        assert mine["id"] not in {d["id"] for d in http.get("/v1/datasets").json()["items"]}
    # a revoked key stops working within the verified-key cache's 1 s (LIPSPLINE_AUTH_CACHE_TTL_S)
    subprocess.run(lipspline_argv("keys", "revoke", other_key[:12]), env=deployment.env, check=True, timeout=120)
    revoked_at = time.monotonic()
    with deployment.client(other_key) as other:
        while other.get("/v1/datasets").status_code == 200:
            assert time.monotonic() - revoked_at < 1.5, "a revoked key still worked 1.5 s after its revocation"
            time.sleep(0.05)
        assert "revoked" in problem(other.get("/v1/datasets"), 401)["detail"]


def test_restart_api_keeps_every_record(deployment: Deployment, circle_model: dict, state: dict) -> None:
    deployment.restart_api()
    with client(deployment) as http:
        datasets = {d["id"] for d in http.get("/v1/datasets").json()["items"]}
        jobs = {j["id"] for j in http.get("/v1/jobs").json()["items"]}
        models = {m["id"] for m in http.get("/v1/models").json()["items"]}
        assert state["datasets"] <= datasets
        assert state["jobs"] <= jobs
        assert state["models"] <= models
        response = http.post(f"/v1/models/{circle_model['model']['id']}/predict", json={"inputs": [[0.0, 0.0]]})
        assert (
            response.status_code == 200
            and response.json()["lipschitz_bound"] == circle_model["model"]["lipschitz"]["certified"]
        )
        # the worker side still works after the restart
        job_id = submit(http, circle_model["dataset"]["id"], {**CIRCLE_CONFIG, "training": {"epochs": 2}})
        assert wait_for_job(http, job_id, TERMINAL)["status"] == "succeeded"
