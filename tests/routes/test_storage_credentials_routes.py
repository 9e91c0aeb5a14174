"""A tenant's own object-store credentials (issue 30): stored sealed, never shown again, one
tenant's invisible to another, and used for that tenant's ``s3://`` URIs only (the reading
itself, against a real S3 API, is ``tests/integration/test_datasets_by_reference.py``)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import StorageCredentialsRow
from lipspline_platform.storage import credentials
from lipspline_platform.webhooks import secret_store
from tests.routes.helpers import Service, problem

ROUTE = "/v1/storage/credentials"
KEYS = {"access_key_id": "AKIAEXAMPLE0TENANT42", "secret_access_key": "wJalr/tenant+secret/EXAMPLEKEY",
        "session_token": "FwoGZXIvYXdzEXAMPLEtoken", "region": "eu-west-3"}


def test_keys_are_stored_sealed_and_never_shown_again(svc: Service) -> None:
    assert svc.client.get(ROUTE).status_code == 404
    stored = svc.client.put(ROUTE, json={"s3": KEYS})
    assert stored.status_code == 200, stored.text
    shown = svc.client.get(ROUTE)
    for response in (stored, shown):
        body = response.json()
        assert body["s3"] == {"access_key_id_hint": "…NT42", "region": "eu-west-3", "has_session_token": True}
        for secret in (KEYS["secret_access_key"], KEYS["session_token"], KEYS["access_key_id"]):
            assert secret not in response.text
    with session_scope(svc.database_url) as session:
        sealed = session.scalars(select(StorageCredentialsRow.sealed)).one()
    assert secret_store.is_sealed(sealed) and KEYS["secret_access_key"] not in sealed
    opened = credentials.s3_keys(svc.settings, "default")
    assert (opened.access_key_id, opened.secret_access_key, opened.session_token, opened.region) == tuple(KEYS.values())
    assert KEYS["secret_access_key"] not in repr(opened)
    # sealed for this purpose: the same value does not open as a webhook secret
    with pytest.raises(secret_store.SecretKeyError):
        secret_store.open_sealed(svc.settings, "default", sealed)


def test_replacing_and_deleting_the_keys(svc: Service) -> None:
    svc.client.put(ROUTE, json={"s3": KEYS})
    replaced = svc.client.put(ROUTE, json={"s3": {"access_key_id": "AKIAOTHERKEY0009", "secret_access_key": "x"}})
    assert replaced.json()["s3"] == {"access_key_id_hint": "…0009", "region": None, "has_session_token": False}
    assert credentials.s3_keys(svc.settings, "default").secret_access_key == "x"
    assert svc.client.delete(ROUTE).status_code == 204
    assert credentials.s3_keys(svc.settings, "default") is None
    problem(svc.client.delete(ROUTE), 404, "not-found")


def test_one_tenants_keys_are_not_anothers(svc: Service) -> None:
    svc.client.put(ROUTE, json={"s3": KEYS})
    other = svc.client_for("other")
    problem(other.get(ROUTE), 404, "not-found")
    problem(other.delete(ROUTE), 404, "not-found")
    assert credentials.s3_keys(svc.settings, "other") is None
    assert credentials.s3_keys(svc.settings, "default") is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"s3": {"secret_access_key": "x"}}, "s3.access_key_id"),
        ({"s3": {"access_key_id": "AKIA EXAMPLE", "secret_access_key": "x"}}, "s3.access_key_id"),
        ({"s3": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": ""}}, "s3.secret_access_key"),
        ({"s3": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "x", "endpoint": "http://evil"}}, "s3.endpoint"),
        ({}, "s3"),
    ],
)
def test_a_bad_body_is_a_422_naming_the_field(svc: Service, body: dict, field: str) -> None:
    response = svc.client.put(ROUTE, json=body)
    problem(response, 422, field=field)
    assert "x" not in {e.get("input") for e in response.json().get("errors", [])}
    assert credentials.s3_keys(svc.settings, "default") is None


def test_a_read_key_may_look_but_not_set(svc: Service) -> None:
    reader = svc.open_client(svc.scoped_key("default", "read"))
    problem(reader.put(ROUTE, json={"s3": KEYS}), 403, "insufficient-scope")
    problem(reader.get(ROUTE), 404, "not-found")
