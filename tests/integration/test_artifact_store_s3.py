"""The artifact store on a real S3 API (moto's server on loopback), as compose runs it on MinIO:
objects written, read, streamed in and deleted; migration 0011 moves existing row bytes into the
store and its downgrade brings them back."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from lipspline_platform.db import migrate
from lipspline_platform.settings import Settings
from lipspline_platform.storage import artifacts
from lipspline_platform.storage.object_store import UriRefusedError, resolve
from tests.support.s3_server import CREDENTIALS, S3Server, s3_server

pytestmark = pytest.mark.integration
BUCKET = "lipspline-artifacts"


@pytest.fixture(scope="module")
def store_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture
def s3_env(store_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LIPSPLINE_S3_ENDPOINT_URL", store_server.url)
    monkeypatch.setenv("LIPSPLINE_ARTIFACT_STORE_URL", f"s3://{BUCKET}/run-{tmp_path.name}")
    monkeypatch.setenv("LIPSPLINE_DATA_DIR", str(tmp_path / "data"))
    return Settings()


def test_objects_round_trip_through_s3(s3_env: Settings, store_server: S3Server) -> None:
    store = artifacts.store_for(s3_env)
    assert store is not None and store.root.startswith(f"s3://{BUCKET}/")
    uri = store.put("weights/m1", b"\x00weights\xff")
    assert artifacts.read(s3_env, None, uri) == b"\x00weights\xff"
    big = bytes(range(256)) * 50_000  # 12.8 MB, copied in 1 MiB chunks
    streamed, size, _ = store.put_file("datasets/d1", io.BytesIO(big), chunk=1 << 20)
    assert size == len(big) and store.get(streamed) == big
    key = streamed.removeprefix(f"s3://{BUCKET}/")
    assert store_server.client().head_object(Bucket=BUCKET, Key=key)["ContentLength"] == len(big)
    store.delete(streamed)
    with pytest.raises(artifacts.ArtifactMissingError):
        store.get(streamed)


def test_migration_moves_row_bytes_to_the_store_and_back(s3_env: Settings, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'move.sqlite3'}"
    migrate.upgrade(url, "0010")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 't1', '2026-12-06')"))
            insert = text("INSERT INTO datasets (id, tenant_id, name, task, n_samples, n_features, feature_names, "
                          "source_format, sha256, content, created_at, tags) VALUES ('d1', 't1', 'd', 'regression', "
                          "1, 1, :names, 'json', :sha, :content, '2026-12-06', '[]')")
            connection.execute(insert, {"names": '["x"]', "sha": "0" * 64, "content": b"npz!"})
        migrate.upgrade(url)
        with engine.connect() as connection:
            content, uri, size = connection.execute(
                text("SELECT content, content_uri, content_bytes FROM datasets")).one()
        assert content is None and size == 4 and uri.startswith(f"s3://{BUCKET}/")
        assert artifacts.read(s3_env, None, uri) == b"npz!"
        migrate.downgrade(url, "0010")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT content FROM datasets")).scalar_one() == b"npz!"
    finally:
        engine.dispose()


def test_a_credential_the_store_refuses_is_named_at_registration(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that checks credentials (moto with authentication on) refusing the service's keys: the
    refusal says so, names the URI, and shows no key."""
    with s3_server(tmp_path, check_credentials=True) as guarded:
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        settings = Settings(data_dir=tmp_path / "data", s3_endpoint_url=guarded.url)
        for uri in (f"s3://{BUCKET}/data/*.parquet", f"s3://{BUCKET}/data/one.parquet"):
            with pytest.raises(UriRefusedError) as refused:
                resolve(uri, settings)
            assert str(refused.value) == f"{uri!r}: the store refused the service's credentials"
            assert CREDENTIALS["AWS_ACCESS_KEY_ID"] not in str(refused.value)
