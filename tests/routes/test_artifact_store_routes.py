"""The artifact store (issue 30): on the embedded default, model weights, checkpoints and uploaded
datasets are objects beside the SQLite file, not row bytes; the rows keep their URIs and sizes,
quotas still count them, and deleting a dataset deletes its object."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import DatasetRow, ModelRow
from lipspline_platform.quotas import stored_bytes
from lipspline_platform.settings import Settings
from lipspline_platform.storage import artifacts
from tests.routes.helpers import TINY_CONFIG, Service


def _path(uri: str) -> Path:
    return Path(urlsplit(uri).path)


def test_weights_and_datasets_are_objects_and_rows_keep_uris_and_sizes(svc: Service) -> None:
    dataset_id = svc.upload()
    job = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG}).json()
    model_id = svc.worker.run(job["id"])
    root = artifacts.root_for(svc.settings)
    assert root is not None and root.startswith("file://")
    with session_scope(svc.database_url) as session:
        dataset, model = session.get(DatasetRow, dataset_id), session.get(ModelRow, model_id)
        assert dataset.content is None and model.weights is None
        content_uri, weights_uri = dataset.content_uri, model.weights_uri
        sizes = dataset.content_bytes + model.weights_bytes
        assert stored_bytes(session, "default") == sizes > 0
    assert content_uri.startswith(root) and weights_uri.startswith(root)
    assert _path(weights_uri).stat().st_size == model.weights_bytes
    assert svc.client.post(f"/v1/models/{model_id}/predict", json={"inputs": [[0.0, 0.0]]}).status_code == 200
    assert svc.client.get(f"/v1/models/{model_id}/download").status_code == 200
    assert svc.client.get(f"/v1/datasets/{dataset_id}/preview").status_code == 200


def test_deleting_a_dataset_deletes_its_object(svc: Service) -> None:
    dataset_id = svc.upload()
    with session_scope(svc.database_url) as session:
        uri = session.get(DatasetRow, dataset_id).content_uri
    assert _path(uri).exists()
    assert svc.client.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert not _path(uri).exists()


def test_without_a_store_bytes_stay_in_the_rows(svc: Service) -> None:
    """A PostgreSQL deployment with no LIPSPLINE_ARTIFACT_STORE_URL keeps them where they always were."""
    settings = Settings(data_dir=svc.settings.data_dir, database_url="postgresql+psycopg://h/db")
    assert artifacts.root_for(settings) is None and artifacts.store_for(settings) is None
    configured = Settings(data_dir=svc.settings.data_dir, artifact_store_url="s3://bucket/prefix")
    assert artifacts.root_for(configured) == "s3://bucket/prefix"


def test_a_model_whose_weights_object_is_gone_is_a_409_naming_it_without_server_paths(svc: Service) -> None:
    dataset_id = svc.upload()
    job = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG}).json()
    model_id = svc.worker.run(job["id"])
    with session_scope(svc.database_url) as session:
        weights_uri = session.get(ModelRow, model_id).weights_uri
    _path(weights_uri).unlink()
    for response in (svc.client.post(f"/v1/models/{model_id}/predict", json={"inputs": [[0.0, 0.0]]}),
                     svc.client.get(f"/v1/models/{model_id}/download")):
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["type"].endswith("bad-artifact") and model_id in body["detail"], body
        assert "cannot be read (it is missing)" in body["detail"], body
        assert str(svc.settings.data_dir) not in response.text and "file://" not in response.text, body
