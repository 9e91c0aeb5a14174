"""A sweep across three real workers on PostgreSQL + Redis, with one worker SIGKILLed mid-sweep.

`lipspline api` and three `lipspline worker` processes (each its own session and data dir:
three "hosts" sharing only the database and the broker). A 12-trial random sweep over lambda
and K on a held-out classification set must finish with every trial succeeded, its trials
spread over at least two hosts, exactly one model per trial (the killed worker's trial is
resumed elsewhere, not lost or duplicated), a front that is non-dominated when recomputed
from the jobs and models themselves, and a selection that satisfies its constraint.

Successive halving through a real worker (the embedded deployment): trials below the top
third at a rung stop there. A sweep over the target radius, selected on certified accuracy at
that radius, serves the trial that certifies the most there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lipspline.data import make_circle
from lipspline.sweeps.pareto import dominates
from tests.integration.test_worker_faults import deployment as postgres_redis_api
from tests.support.processes import Deployment, SessionProcess, wait_for_sweep
from tests.support.services import fresh_redis_url

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SWEEP_REDIS_DB = 14
MAX_LIPSCHITZ = 25.0
TRIALS = 12


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, list[SessionProcess]]]:
    tmp_path: Path = tmp_path_factory.mktemp("sweeps")
    with postgres_redis_api(tmp_path, fresh_redis_url(SWEEP_REDIS_DB)) as dep:
        workers = [dep.start_host_worker(f"w{i}") for i in range(3)]
        yield dep, workers


def sweep_body(dataset_id: str) -> dict:
    return {
        "dataset_id": dataset_id,
        "base_config": {
            "architecture": {"hidden": [4]},
            "spline": {"range": 3.0},
            "training": {"epochs": 8, "batch_size": 32, "lr": 0.02, "seed": 0, "validation_split": 0.25},
            "device": "cpu",
        },
        "space": {"objective.lambda": {"low": 1e-6, "high": 1e-1, "scale": "log"}, "spline.knots": [5, 11, 21]},
        "strategy": "random",
        "seed": 3,
        "budget": {"max_trials": TRIALS, "max_concurrent": 3},
        "select": {"rule": "max_accuracy", "max_lipschitz": MAX_LIPSCHITZ},
    }


def test_random_sweep_on_three_workers_survives_a_killed_worker(cluster) -> None:
    dep, workers = cluster
    http = dep.client()
    data = make_circle(300, seed=11)
    uploaded = http.post("/v1/datasets", json={"name": "circle", "inputs": data.X.tolist(),
                                               "targets": np.asarray(data.y).tolist()})
    assert uploaded.status_code == 201, uploaded.text
    response = http.post("/v1/sweeps", json=sweep_body(uploaded.json()["id"]))
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]

    # kill the first worker (its whole process group) while it is inside a trial
    killed_job = None
    deadline = time.monotonic() + 180
    while killed_job is None and time.monotonic() < deadline:
        sweep = http.get(f"/v1/sweeps/{sweep_id}").json()
        for trial in sweep["trials"]:
            host = trial["worker_host"] or ""
            if trial["job_status"] == "running" and host.startswith("w0@") and trial["epochs"] >= 1:
                workers[0].kill_group()
                killed_job = trial["job_id"]
                break
        time.sleep(0.1)
    assert killed_job is not None, "worker w0 never ran a trial"

    sweep = wait_for_sweep(http, sweep_id, timeout_s=420, poll_s=0.5)
    assert sweep["status"] == "succeeded", sweep
    trials = sweep["trials"]
    assert len(trials) == TRIALS and sweep["progress"]["succeeded"] == TRIALS
    assert {t["trial"] for t in trials} == set(range(TRIALS))

    # resumed, not lost: the killed trial ran again elsewhere
    resumed = next(t for t in trials if t["job_id"] == killed_job)
    assert resumed["attempts"] >= 2 and not resumed["worker_host"].startswith("w0@")
    assert len({t["worker_host"] for t in trials}) >= 2

    # exactly one model per trial, read from the models themselves
    models = {m["job_id"]: m for m in http.get("/v1/models").json()["items"] if m["job_id"] in
              {t["job_id"] for t in trials}}
    per_job = [m["job_id"] for m in http.get("/v1/models").json()["items"]]
    assert len(models) == TRIALS and all(per_job.count(t["job_id"]) == 1 for t in trials)

    # the front, recomputed from the jobs' models (validation accuracy, certified bound)
    points = {}
    for t in trials:
        model = models[t["job_id"]]
        assert model["id"] == t["model_id"]
        points[t["trial"]] = (model["metrics"]["validation"]["accuracy"], -model["lipschitz"]["certified"])
        assert model["certified_accuracy"]["split"] == "validation"
    expected = {i for i, p in points.items() if not any(dominates(q, p) for q in points.values())}
    assert {p["trial"] for p in sweep["front"]["lipschitz"]} == expected

    # the selection satisfies its constraint and is the best that does
    chosen = sweep["selected"]
    assert chosen is not None, sweep["note"]
    allowed = {i: p for i, p in points.items() if -p[1] <= MAX_LIPSCHITZ}
    assert chosen["trial"] in allowed
    assert points[chosen["trial"]][0] == max(p[0] for p in allowed.values())
    assert chosen["model_id"] == models[trials[chosen["trial"]]["job_id"]]["id"]


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_the_worker_stops_halving_trials_at_their_rung(deployment: Deployment) -> None:
    """Successive halving through a real worker: the best trials first, so every later, worse one falls
    below the top third at the first rung and stops there.

    One trial at a time (``max_concurrent: 1``): the sweep then launches them in order. With all four
    queued at once, the broker may hand a later trial to the worker first (the filesystem broker of
    the embedded deployment orders messages written in the same instant arbitrarily), and the first
    trial to reach a rung always continues (asynchronous halving): the test then failed now and then.
    """
    data = make_circle(400, seed=1)
    with deployment.client() as http:
        dataset = http.post("/v1/datasets", json={"inputs": data.X.tolist(), "targets": data.y.tolist()}).json()
        response = http.post("/v1/sweeps", json={
            "dataset_id": dataset["id"], "strategy": "halving", "budget": {"max_trials": 4, "max_concurrent": 1},
            "base_config": {"architecture": {"hidden": [4]}, "device": "cpu",
                            "training": {"epochs": 9, "validation_split": 0.25, "seed": 0}},
            "space": {"training.lr": [3e-2, 1e-2, 1e-5, 3e-6]}, "halving": {"min_epochs": 1, "eta": 3},
        })
        assert response.status_code == 202, response.text
        sweep = wait_for_sweep(http, response.json()["id"], timeout_s=240)
    trials = {t["trial"]: t for t in sweep["trials"]}
    assert sweep["status"] == "succeeded" and trials[0]["status"] == "succeeded" and trials[0]["epochs"] == 9
    for index in (2, 3):
        assert trials[index]["status"] == "stopped" and trials[index]["stopped_at_epoch"] == 1, trials[index]
        assert trials[index]["epochs"] == 1
    assert sweep["progress"]["epochs"] < 4 * 9


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_sweep_over_the_target_radius_serves_the_trial_that_certifies_most_there(deployment: Deployment) -> None:
    """The recipe of docs/concepts/certified-accuracy.md: sweep ``robustness.target_radius`` around the
    radius you need and select on ``max_certified_accuracy`` there. Every trial must be the job a user
    with only that radius gets (the target fill, not the base's defaults), each curve must list the
    select radius exactly, and the served model is the trial that certifies the most validation rows there."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 240)
    inputs = rng.normal(scale=0.45, size=(240, 2)) + np.where(labels[:, None] == 1, 1.0, -1.0) * [1.0, 0.0]
    radius = 0.3
    with deployment.client() as http:
        dataset = http.post("/v1/datasets", json={"inputs": inputs.tolist(), "targets": labels.tolist()}).json()
        response = http.post("/v1/sweeps", json={
            "dataset_id": dataset["id"], "strategy": "grid", "budget": {"max_trials": 3, "max_concurrent": 1},
            "base_config": {"device": "cpu", "training": {"epochs": 12, "validation_split": 0.25, "seed": 0}},
            "space": {"robustness.target_radius": [radius / 2, radius, 2 * radius]},
            "select": {"rule": "max_certified_accuracy", "radius": radius},
        })
        assert response.status_code == 202, response.text
        sweep = wait_for_sweep(http, response.json()["id"])
        assert sweep["status"] == "succeeded", sweep
        at_radius = {}
        for trial in sweep["trials"]:
            assert trial["status"] == "succeeded", trial
            config = http.get(f"/v1/jobs/{trial['job_id']}").json()["config"]
            assert config["objective"]["mode"] == "one_lipschitz"
            assert config["robustness"]["target_radius"] == trial["params"]["robustness.target_radius"]
            curve = trial["certified_accuracy"]
            assert radius in curve["radii"], curve["radii"]
            at_radius[trial["trial"]] = curve["global"][curve["radii"].index(radius)]
        selected = sweep["selected"]
        assert selected is not None, sweep["note"]
        assert at_radius[selected["trial"]] == max(at_radius.values()) > 0.0, at_radius
        assert sweep["front"]["radius"] == radius

        answer = http.post(f"/v1/models/{selected['model_id']}/predict", json={"inputs": inputs.tolist()}).json()
    certified = (np.array(answer["predictions"]) == labels) & (np.array(answer["certified_radius"]) >= radius)
    assert certified.mean() > 0.5, certified.mean()  # two blobs 2 apart: most rows are more than 0.3 from the boundary
