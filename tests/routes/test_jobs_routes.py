"""``/v1/jobs``: submit, get, list (``?status=``), metrics, cancel in every state; the worker's
side is played through the real lifecycle functions (``helpers.Runner``)."""

from __future__ import annotations

import pytest

import service.routers.jobs as jobs_router
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import IdempotencyRow, JobRow
from tests.routes.helpers import REGRESSION_TARGETS, TINY_CONFIG, WORKER_HOST, Service, problem, seed_dataset_body

JOB_KEYS = {"id", "status", "dataset_id", "config", "queue", "progress", "model_id", "error", "device",
            "worker_host", "attempts", "cancel_requested", "created_at", "started_at", "finished_at", "updated_at",
            "train_seconds", "register_as", "request_id", "name", "tags", "description"}


def broker_messages(svc: Service) -> list:
    """The job messages waiting in the embedded broker's queue folder."""
    return sorted((svc.settings.broker_dir / "queue").iterdir())


def test_submit_is_accepted_queued_and_sent(svc: Service) -> None:
    dataset_id = svc.upload()
    before = len(broker_messages(svc))
    response = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body == {"id": body["id"], "status": "queued"}
    assert response.headers["location"] == f"/v1/jobs/{body['id']}"
    assert len(broker_messages(svc)) == before + 1  # one message for a worker

    job = svc.job(body["id"])
    assert set(job) == JOB_KEYS
    assert job["status"] == "queued" and job["dataset_id"] == dataset_id and job["queue"] == "cpu"
    assert job["attempts"] == 0 and job["cancel_requested"] is False and job["model_id"] is None
    assert job["progress"]["epoch"] == 0 and job["progress"]["epochs"] == 3 and job["started_at"] is None
    # how the run ended is unknown until it has
    assert job["progress"]["stop_reason"] is None and job["progress"]["best_epoch"] is None
    assert job["config"]["training"]["epochs"] == 3 and job["config"]["architecture"]["hidden"] == [2]


def test_submit_with_defaults_and_gpu_queue(svc: Service) -> None:
    dataset_id = svc.upload()
    default = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id})
    assert default.status_code == 202, default.text
    job = svc.job(default.json()["id"])
    # the defaults leave the epoch limit to the step-budget rule, which the worker applies
    assert job["config"]["training"]["epochs"] is None and job["progress"]["epochs"] is None and job["queue"] == "cpu"
    cuda = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": {**TINY_CONFIG, "device": "cuda"}})
    assert cuda.status_code == 202 and svc.job(cuda.json()["id"])["queue"] == "gpu"


def test_a_job_runs_to_success_through_the_lifecycle(svc: Service) -> None:
    dataset_id = svc.upload()
    job_id = svc.submit(dataset_id)
    claim = svc.worker.claim(job_id)
    running = svc.job(job_id)
    assert running["status"] == "running" and running["attempts"] == 1 and running["worker_host"] == WORKER_HOST
    assert running["started_at"] is not None and running["device"] == "cpu" and running["finished_at"] is None

    svc.worker.record_epochs(job_id, claim, 2)
    progress = svc.job(job_id)["progress"]
    assert progress["epoch"] == 2 and progress["epochs"] == 3 and "data" in progress["losses"]

    model_id = svc.worker.succeed(job_id, claim)
    done = svc.job(job_id)
    assert done["status"] == "succeeded" and done["model_id"] == model_id and done["train_seconds"] == 0.25
    assert done["finished_at"] is not None and done["error"] is None
    # the run's outcome, on the job and on the model
    assert done["progress"]["stop_reason"] == "max_epochs" and done["progress"]["epochs_run"] == 3
    assert done["progress"]["epochs_planned"] == 3 and 1 <= done["progress"]["best_epoch"] <= 3
    (fraction,) = done["progress"]["out_of_grid_fraction"]
    assert 0.0 <= fraction <= 1.0
    model = svc.client.get(f"/v1/models/{model_id}").json()
    assert model["metrics"]["training"]["stop_reason"] == "max_epochs" and model["metrics"]["warnings"] == []
    assert model["metrics"]["training"]["served_epoch"] == done["progress"]["served_epoch"]
    # the loss the defaults chose (objective.loss auto) is spelled out on both
    assert done["progress"]["loss"] == model["metrics"]["training"]["loss"] in ("bce", "cross_entropy")


def test_metrics_history_per_epoch(svc: Service) -> None:
    dataset_id = svc.upload()
    job_id = svc.submit(dataset_id)
    empty = svc.client.get(f"/v1/jobs/{job_id}/metrics")
    assert empty.status_code == 200 and empty.json() == {"id": job_id, "status": "queued", "history": []}
    claim = svc.worker.claim(job_id)
    assert svc.worker.record_epochs(job_id, claim) == 3
    body = svc.client.get(f"/v1/jobs/{job_id}/metrics").json()
    assert body["status"] == "running"
    assert [h["epoch"] for h in body["history"]] == [1, 2, 3]
    for entry in body["history"]:
        assert entry["epochs"] == 3 and entry["attempt"] == 1 and {"data", "total"} <= set(entry["losses"])
        assert entry["elapsed_s"] >= 0


def test_a_failed_job_says_why(svc: Service) -> None:
    job_id = svc.submit(svc.upload())
    claim = svc.worker.claim(job_id)
    svc.worker.fail(job_id, claim, "RuntimeError: out of memory")
    job = svc.job(job_id)
    assert job["status"] == "failed" and job["error"] == "RuntimeError: out of memory" and job["model_id"] is None
    assert job["finished_at"] is not None


def test_list_newest_first_and_filter_by_status(svc: Service) -> None:
    dataset_id = svc.upload()
    queued = svc.submit(dataset_id)
    running = svc.submit(dataset_id)
    svc.worker.claim(running)
    succeeded = svc.submit(dataset_id)
    svc.worker.run(succeeded)
    cancelled = svc.submit(dataset_id)
    svc.client.post(f"/v1/jobs/{cancelled}/cancel")

    everything = svc.client.get("/v1/jobs")
    assert everything.status_code == 200
    assert [j["id"] for j in everything.json()["items"]] == [cancelled, succeeded, running, queued]
    for status, expected in [("queued", [queued]), ("running", [running]), ("succeeded", [succeeded]),
                             ("cancelled", [cancelled]), ("failed", [])]:
        items = svc.client.get("/v1/jobs", params={"status": status}).json()["items"]
        assert [j["id"] for j in items] == expected, status
        assert all(j["status"] == status for j in items)


def test_list_with_an_unknown_status_is_422(svc: Service) -> None:
    body = problem(svc.client.get("/v1/jobs", params={"status": "done"}), 422, "validation-error",
                   field="query.status")
    assert "queued" in body["detail"]


def test_unknown_job_is_404_on_every_job_route(svc: Service) -> None:
    for method, path in [("GET", "/v1/jobs/nope"), ("GET", "/v1/jobs/nope/metrics"),
                         ("POST", "/v1/jobs/nope/cancel")]:
        body = problem(svc.client.request(method, path), 404, "not-found")
        assert body["detail"] == "job 'nope' does not exist"


def test_submit_on_an_unknown_dataset_is_404_naming_the_field(svc: Service) -> None:
    body = problem(svc.client.post("/v1/jobs", json={"dataset_id": "nope", "config": TINY_CONFIG}), 404, "not-found")
    assert body["field"] == "dataset_id"
    assert body["detail"] == "dataset_id: dataset 'nope' does not exist"
    assert svc.client.get("/v1/jobs").json()["items"] == []


# ---- cancel
def test_cancel_queued_is_cancelled_at_once(svc: Service) -> None:
    job_id = svc.submit(svc.upload())
    response = svc.client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled" and body["cancel_requested"] is True
    assert body["finished_at"] is not None and body["started_at"] is None
    # a worker that receives its message later finds nothing to do
    from lipspline_platform.jobs import lifecycle

    assert lifecycle.claim(svc.settings, job_id, WORKER_HOST) is None
    assert svc.job(job_id)["status"] == "cancelled"
    again = svc.client.post(f"/v1/jobs/{job_id}/cancel")  # cancelling twice is harmless
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_cancel_running_requests_a_stop_that_the_runner_honours(svc: Service) -> None:
    job_id = svc.submit(svc.upload())
    claim = svc.worker.claim(job_id)
    svc.worker.record_epochs(job_id, claim, 1)
    body = svc.client.post(f"/v1/jobs/{job_id}/cancel").json()
    assert body["status"] == "running" and body["cancel_requested"] is True and body["finished_at"] is None
    from lipspline_platform.jobs import lifecycle

    assert lifecycle.cancel_requested(svc.settings, job_id)  # what the runner polls
    svc.worker.stop_cancelled(job_id, claim)
    job = svc.job(job_id)
    assert job["status"] == "cancelled" and job["model_id"] is None and job["progress"]["epoch"] == 1


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_cancel_finished_is_409(svc: Service, outcome: str) -> None:
    job_id = svc.submit(svc.upload())
    if outcome == "succeeded":
        svc.worker.run(job_id)
    else:
        svc.worker.fail(job_id, svc.worker.claim(job_id), "boom")
    body = problem(svc.client.post(f"/v1/jobs/{job_id}/cancel"), 409, "job-finished")
    assert outcome in body["detail"]
    job = svc.job(job_id)
    assert job["status"] == outcome and job["cancel_requested"] is False


# ---- the broker
def test_broker_down_is_503_and_nothing_is_stored(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset_id = svc.upload()

    def unreachable(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(jobs_router, "send_job", unreachable)
    body = problem(svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG}), 503,
                   "broker-unavailable")
    assert "ConnectionError" in body["detail"]
    assert svc.client.get("/v1/jobs").json()["items"] == []
    assert svc.client.delete(f"/v1/datasets/{dataset_id}").status_code == 204  # no job holds it


def test_broker_down_releases_the_idempotency_key(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset_id = svc.upload()
    request = {"json": {"dataset_id": dataset_id, "config": TINY_CONFIG}, "headers": {"Idempotency-Key": "retry-me"}}

    def unreachable(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("broker down")

    with monkeypatch.context() as patch:
        patch.setattr(jobs_router, "send_job", unreachable)
        problem(svc.client.post("/v1/jobs", **request), 503, "broker-unavailable")
    with session_scope(svc.database_url) as session:
        assert session.query(JobRow).count() == 0
        kept = session.query(IdempotencyRow).count()
    retry = svc.client.post("/v1/jobs", **request)  # the broker is back
    assert retry.status_code == 202 and "idempotent-replayed" not in retry.headers, (kept, retry.headers)
    assert svc.client.get(retry.headers["location"]).status_code == 200


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"robustness": {"target_radius": 0}}, "config.robustness.target_radius"),
        ({"robustness": {"target_radius": -0.5}}, "config.robustness.target_radius"),
        ({"robustness": {"target_radius": "Infinity"}}, "config.robustness.target_radius"),
        ({"robustness": {"extra_radii": [0.1, -1.0]}}, "config.robustness.extra_radii"),
        ({"robustness": {"radii": [0.1, 1e13]}}, "config.robustness.radii"),
        ({"robustness": {"extra_radii": [0.1] * 9}}, "config.robustness.extra_radii"),
        ({"objective": {"loss": "hkr", "mode": "bv2"}}, "config.objective.loss"),
        ({"training": {"monitor": "certified_accuracy"}}, "config.training.monitor"),
        ({"objective": {"loss": "mse"}}, "config.objective.loss"),
        ({"training": {"ema_decay": 1.0}}, "config.training.ema_decay"),
        ({"training": {"ema_decay": 0}}, "config.training.ema_decay"),
        ({"training": {"ema_decay": "NaN"}}, "config.training.ema_decay"),
    ],
)
def test_robustness_choices_the_config_refuses_are_422_naming_the_field(svc: Service, config, field) -> None:
    dataset_id = svc.upload()
    response = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": config})
    body = problem(response, 422, "validation-error")
    assert body["field"] == field, body
    assert svc.client.get("/v1/jobs").json()["items"] == []  # nothing half-made


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"robustness": {"target_radius": 0.1}}, "config.robustness.target_radius"),
        ({"objective": {"loss": "lipschitz_margin"}}, "config.objective.loss"),
        ({"objective": {"loss": "hkr", "mode": "one_lipschitz"}}, "config.objective.loss"),
        ({"objective": {"loss": "cross_entropy"}}, "config.objective.loss"),
    ],
)
def test_classification_goals_on_a_regression_dataset_are_422_naming_the_field(svc: Service, config, field) -> None:
    dataset_id = svc.upload(seed_dataset_body("numeric", REGRESSION_TARGETS) | {"task": "regression"})
    response = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": config})
    body = problem(response, 422, "validation-error")
    assert body["field"] == field, body
    assert svc.client.get("/v1/jobs").json()["items"] == []


def test_a_target_radius_job_is_stored_with_the_defaults_it_implies(svc: Service) -> None:
    dataset_id = svc.upload()
    job = svc.job(svc.submit(dataset_id, {"robustness": {"target_radius": 0.05}, "training": {"epochs": 2}}))
    config = job["config"]
    assert config["objective"]["mode"] == "one_lipschitz" and config["objective"]["loss"] == "lipschitz_margin"
    assert config["architecture"]["hidden"] == [128, 128] and config["robustness"]["target_radius"] == 0.05
    assert config["training"]["ema_decay"] == 0.99 and config["training"]["lr"] == 0.02
