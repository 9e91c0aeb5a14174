"""The SDK (``lipspline_client``) against the in-process app: its ``http=`` is the TestClient, an
``httpx.Client``, so every call goes through the real routes (the worker's side through
``helpers.Runner``). The live-server flows are in ``tests/e2e/test_sdk_e2e.py``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from api_schemas import TrainingConfig
from api_schemas.sweeps import Budget, RangeSpec, SelectKnee, SelectMaxAccuracy, SweepOut
from lipspline_client import (
    AsyncClient,
    AsyncSweep,
    Client,
    JobFailedError,
    LipSplineError,
    ModelHandle,
    Sweep,
    resources,
)
from lipspline_client.resources import AsyncModelHandle
from tests.routes.helpers import SEED_INPUTS, SEED_TARGETS, TINY_CONFIG, Service
from tests.routes.test_sweeps_routes import BASE, run_to_the_end


def sdk(svc: Service, tenant: str = "default") -> Client:
    return Client("http://testserver", http=svc.client if tenant == "default" else svc.other)


def test_upload_train_predict_certify_download(svc: Service, tmp_path: Path) -> None:
    client = sdk(svc)
    dataset = client.datasets.upload((np.array(SEED_INPUTS), np.array(SEED_TARGETS)), name="seed")
    assert dataset.n_samples == 64 and dataset.task == "classification"
    job = client.jobs.submit(dataset, TINY_CONFIG)
    assert job.status == "queued"
    svc.worker.run(job.id)
    assert job.wait() is job and job.status == "succeeded" and job.model_id
    frame = job.metrics()
    assert list(frame.index) == [1, 2, 3] and "train_accuracy" in frame.columns

    model = client.models.get(job.model_id)
    prediction = model.predict(np.array([[0.0, 0.0], [0.45, 0.5]]), epsilon=0.05)
    assert prediction.outputs.shape[0] == 2 and prediction.predictions.shape == (2,)
    assert prediction.certified_radius is not None and (prediction.certified_radius >= 0).all()
    assert prediction.output_bounds is not None and prediction.output_bound == prediction.output_bounds.max()
    assert prediction.lipschitz_bound == model.info.lipschitz.certified
    best = model.predict(np.array([[0.0, 0.0], [0.45, 0.5]]), local_ball=0.2)
    assert best.response.radius_source is not None and len(best.response.radius_source) == 2
    assert (best.certified_radius >= prediction.certified_radius).all()
    local = model.certify([[0.0, 0.0]], epsilon=0.1).local
    assert local is not None and 0 <= local[0].local_radius <= 0.1

    path = model.download(tmp_path / "model.zip")
    assert set(zipfile.ZipFile(path).namelist()) == {"model.json", "weights.safetensors"}
    assert model.download(format="onnx")[:2] != b"PK"  # bytes of the ONNX graph, not a zip


def test_a_dataframe_and_a_csv_file_upload_with_their_target(svc: Service, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    client = sdk(svc)
    frame = pd.DataFrame(SEED_INPUTS, columns=["x1", "x2"]).assign(label=SEED_TARGETS)
    from_frame = client.datasets.upload(frame, target="label", name="frame")
    assert from_frame.feature_names == ["x1", "x2"] and from_frame.target_name == "label"
    frame.to_csv(tmp_path / "seed.csv", index=False)
    from_file = client.datasets.upload(tmp_path / "seed.csv", target="label")
    assert from_file.sha256 == from_frame.sha256
    assert {d.id for d in client.datasets.list().items} >= {from_frame.id, from_file.id}


def test_a_dataset_registered_by_uri_and_the_tenants_storage_keys(make_service, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    shared = tmp_path / "shared"
    shared.mkdir()
    svc = make_service(dataset_file_roots=[str(shared)])
    inputs = np.array(SEED_INPUTS)
    pq.write_table(pa.table({"x1": inputs[:, 0], "x2": inputs[:, 1], "label": SEED_TARGETS}), shared / "a.parquet")
    client = sdk(svc)
    dataset = client.datasets.register(f"file://{shared}/*.parquet", target="label", features=["x2"],
                                       name="by-uri", tags=["shared"])
    assert (dataset.uri, dataset.n_samples, dataset.feature_names) == (f"file://{shared}/*.parquet", 64, ["x2"])
    assert dataset.name == "by-uri" and dataset.tags == ["shared"]

    stored = client.storage.set_s3_credentials("AKIASDKTEST00077", "sdk-secret", region="eu-west-3")
    assert stored.s3.access_key_id_hint == "…0077" and client.storage.credentials().s3.region == "eu-west-3"
    client.storage.delete_credentials()
    with pytest.raises(LipSplineError) as caught:
        client.storage.credentials()
    assert caught.value.status == 404


def test_errors_carry_the_problem(svc: Service) -> None:
    client = sdk(svc)
    with pytest.raises(LipSplineError) as caught:
        client.jobs.submit("no-such-dataset", TINY_CONFIG)
    assert caught.value.status == 404 and caught.value.problem.field == "dataset_id"
    with pytest.raises(LipSplineError) as caught:
        client.models.get("circle net@prod")  # sent URL-encoded, read back whole by the route
    assert caught.value.status == 404 and "'circle net@prod'" in caught.value.problem.detail


def test_wait_raises_when_the_job_fails(svc: Service) -> None:
    client = sdk(svc)
    job = client.jobs.submit(client.datasets.upload((SEED_INPUTS, SEED_TARGETS)), TINY_CONFIG)
    svc.worker.fail(job.id, svc.worker.claim(job.id), "out of luck")
    with pytest.raises(JobFailedError, match="out of luck"):
        job.wait()
    assert job.wait(raise_on_failure=False).status == "failed"


def test_importing_the_sdk_imports_no_torch_and_no_service_code() -> None:
    probe = "import sys, lipspline_client; bad = [m for m in ('torch', 'fastapi', 'sqlalchemy', 'celery', 'service')" \
            " if m in sys.modules]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", probe], check=True)


# ---- sweeps: the trials are run by ``svc.worker`` and advanced as the worker would (test_sweeps_routes) ----
LAMBDAS = [1e-6, 1e-3, 1e-1]
GRID = {"objective.lambda": LAMBDAS}


def watch_requests(svc: Service) -> list[httpx.Request]:
    """Every request the default tenant's client sends from now on (an httpx event hook: nothing is replaced)."""
    sent: list[httpx.Request] = []
    svc.client.event_hooks["request"].append(sent.append)
    return sent


def test_create_from_a_dict_or_a_training_config_sends_only_what_was_given(svc: Service) -> None:
    client = sdk(svc)
    dataset = client.datasets.get(svc.upload())
    sent = watch_requests(svc)
    sweep = client.sweeps.create(dataset, BASE, space=GRID, budget=Budget(max_trials=3))
    assert isinstance(sweep, Sweep) and sweep.status == "running" and sweep.info.trials == 3
    posted = json.loads(sent[-1].content)
    assert sent[-1].headers["Idempotency-Key"]  # as for job submission: a retried create starts one sweep
    assert set(posted) == {"dataset_id", "base_config", "space", "budget"}  # the strategy: the service's grid
    assert sweep.refresh().info.strategy == "grid"
    assert posted["budget"] == {"max_trials": 3, "max_concurrent": 2}
    # the base as given, not spelled out: a trial's target radius may still fill what it left open
    assert posted["base_config"] == TrainingConfig.model_validate(BASE).explicit_json()
    assert set(posted["base_config"]) == set(BASE)  # spelled out, it would carry every section (objective, ...)

    typed = client.sweeps.create(dataset.id, TrainingConfig.model_validate(BASE), budget={"max_trials": 2},
                                 strategy="random",
                                 space={"objective.lambda": RangeSpec(low=1e-6, high=1e-2, scale="log")},
                                 seed=5, select=SelectKnee(rule="knee"))
    assert json.loads(sent[-1].content)["space"] == {"objective.lambda": {"low": 1e-6, "high": 1e-2, "scale": "log"}}
    assert sent[-1].headers["Idempotency-Key"] != sent[0].headers["Idempotency-Key"]
    got = client.sweeps.get(typed.id)
    assert isinstance(got.info, SweepOut) and got.info.strategy == "random" and got.info.select.rule == "knee"
    assert [t.trial for t in got.info.trials] == [0, 1] and got.info.dataset_id == dataset.id
    assert got.info.trials[0].params["objective.lambda"] != got.info.trials[1].params["objective.lambda"]
    assert sweep.refresh().info.progress.launched == 2  # max_concurrent: the third waits for a free slot


def test_the_sweeps_list_reads_every_page_and_filters(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sdk(svc)
    dataset_id, other_dataset = svc.upload(), svc.upload()
    ids = [client.sweeps.create(d, BASE, space=GRID, strategy="grid", budget={"max_trials": 3}, seed=i).id
           for i, d in enumerate([dataset_id, dataset_id, other_dataset])]
    monkeypatch.setattr(resources, "LIST_PAGE_SIZE", 2)
    sent = watch_requests(svc)
    found = client.sweeps.list()
    assert [s.id for s in found.items] == ids[::-1] and found.next_cursor is None
    assert [r.url.params.get("cursor") is not None for r in sent] == [False, True]  # two pages were read
    assert [s.id for s in client.sweeps.list(dataset_id=dataset_id).items] == ids[1::-1]
    client.sweeps.get(ids[0]).cancel()
    assert [s.id for s in client.sweeps.list("cancelled").items] == ids[:1]
    assert [s.id for s in client.sweeps.list("running", dataset_id=dataset_id).items] == ids[1:2]


def test_cancel_and_no_selected_model_for_a_cancelled_sweep(svc: Service) -> None:
    client = sdk(svc)
    sweep = client.sweeps.create(svc.upload(), BASE, space=GRID, strategy="grid", budget={"max_trials": 3})
    assert sweep.cancel() is sweep and sweep.status == "cancelled" and sweep.info.progress.cancelled == 2
    assert sweep.cancel().status == "cancelled"  # again: the same answer
    with pytest.raises(LipSplineError, match="cancelled on request"):
        sweep.selected_model()
    assert sweep.wait(poll_s=0.01) is sweep  # not running: returns at the first poll


def test_wait_then_the_selected_model_and_the_trials_frame(svc: Service) -> None:
    client = sdk(svc)
    sweep = client.sweeps.create(svc.upload(), BASE, space=GRID, strategy="grid", budget={"max_trials": 3})
    with pytest.raises(LipSplineError, match="still running"):
        sweep.wait(poll_s=0.01, timeout_s=0.05)  # nothing runs the trials yet
    with pytest.raises(LipSplineError, match="still running"):
        sweep.selected_model()
    run_to_the_end(svc, sweep.id)
    assert sweep.wait(poll_s=0.01) is sweep and sweep.status == "succeeded"
    assert sweep.info.finished_at is not None and sweep.info.selected is not None

    model = sweep.selected_model()
    assert isinstance(model, ModelHandle) and model.id == sweep.info.selected.model_id
    assert model.predict([[0.0, 0.0]]).predictions.shape == (1,)

    frame = sweep.trials_frame()
    assert list(frame.index) == [0, 1, 2] and frame.index.name == "trial"
    assert frame["objective.lambda"].tolist() == LAMBDAS and (frame["status"] == "succeeded").all()
    assert frame["model_id"].tolist() == [t.model_id for t in sweep.info.trials]
    assert frame["certified_lipschitz"].tolist() == [t.certified_lipschitz for t in sweep.info.trials]
    assert frame.index[frame["selected"]].tolist() == [sweep.info.selected.trial]
    assert set(frame.index[frame["on_lipschitz_front"]]) == {p.trial for p in sweep.info.front.lipschitz}
    assert frame.loc[sweep.info.selected.trial, "model_id"] == model.id


def test_selected_model_says_why_when_no_trial_meets_the_rule(svc: Service) -> None:
    client = sdk(svc)
    rule = SelectMaxAccuracy(rule="max_accuracy", max_lipschitz=1e-9)  # no network is that smooth
    sweep = client.sweeps.create(svc.upload(), BASE, space=GRID, strategy="grid", budget={"max_trials": 3},
                                 select=rule)
    run_to_the_end(svc, sweep.id)
    assert sweep.wait(poll_s=0.01).status == "succeeded" and sweep.info.selected is None
    with pytest.raises(LipSplineError, match="no trial satisfies the selection rule: no trial has a certified"):
        sweep.selected_model()
    assert not sweep.trials_frame()["selected"].any()


def test_a_bad_space_is_the_services_422_naming_the_path(svc: Service) -> None:
    client = sdk(svc)
    with pytest.raises(LipSplineError) as caught:
        client.sweeps.create(svc.upload(), BASE, space={"objective.lamda": [1.0]}, budget={"max_trials": 1})
    # a 422 names the field in errors[] (like the automatic validation errors), not in a top-level "field"
    assert caught.value.status == 422 and [e.field for e in caught.value.problem.errors] == ["space.objective.lamda"]
    assert client.sweeps.list().items == []  # nothing was created


def test_the_async_client_creates_waits_and_selects(svc: Service) -> None:
    dataset_id = svc.upload()
    key = svc.keys["default"]

    async def flow() -> None:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=svc.app), base_url="http://testserver",
                                 headers={"Authorization": f"Bearer {key}"})
        async with AsyncClient("http://testserver", http=http) as client:
            sweep = await client.sweeps.create(dataset_id, BASE, space=GRID, strategy="grid",
                                               budget={"max_trials": 3})
            assert isinstance(sweep, AsyncSweep) and sweep.status == "running"
            run_to_the_end(svc, sweep.id)
            assert await sweep.wait(poll_s=0.01) is sweep and sweep.status == "succeeded"
            model = await sweep.selected_model()
            assert isinstance(model, AsyncModelHandle) and model.id == sweep.info.selected.model_id
            assert (await model.predict([[0.0, 0.0]])).predictions.shape == (1,)
            assert list((await sweep.trials_frame()).index) == [0, 1, 2]
            assert [s.id for s in (await client.sweeps.list(dataset_id=dataset_id)).items] == [sweep.id]

    asyncio.run(flow())
