"""The SDK (``lipspline.client``) against the in-process app: its ``http=`` is the TestClient, an
``httpx.Client``, so every call goes through the real routes (the worker's side through
``helpers.Runner``). The live-server flows are in ``tests/e2e/test_sdk_e2e.py``."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lipspline.client import Client, JobFailedError, LipSplineError
from tests.routes.helpers import SEED_INPUTS, SEED_TARGETS, TINY_CONFIG, Service


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
    probe = "import sys, lipspline.client; bad = [m for m in ('torch', 'fastapi', 'sqlalchemy', 'celery', 'service')" \
            " if m in sys.modules]; assert not bad, bad"  # fmt: skip
    subprocess.run([sys.executable, "-c", probe], check=True)
