"""Webhook refusals and secrets (issue 26). The 422 for a webhook URL that may not receive: one
sentence, whatever the host resolved to, at registration (``POST /v1/webhooks``) and for a job's ``notify_url``.

Naming the address ("host 'vm' resolves to 127.0.0.1") told a tenant what the service's
internal DNS answers; the refusal now only says the rule.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import WebhookSecretRow
from lipspline_platform.webhooks import secret_store
from tests.routes.helpers import TINY_CONFIG, Service, problem

GENERIC = "the host must resolve to public addresses only"
INTERNAL = ["http://localhost:8000/hook", "http://[::127.0.0.1]/hook", "http://[64:ff9b::7f00:1]/hook",
            "http://[::ffff:169.254.169.254]/latest", "http://2130706433/", "http://no-such-host.invalid/"]


@pytest.mark.parametrize("url", INTERNAL)
def test_registering_an_internal_url_is_a_422_that_names_no_address(svc: Service, url: str) -> None:
    response = svc.client.post("/v1/webhooks", json={"url": url})
    body = problem(response, 422, "validation-error", field="url")
    assert body["detail"] == f"url: {GENERIC}"
    assert body["errors"] == [{"field": "url", "message": GENERIC}]
    assert "127.0.0.1" not in response.text and "resolves" not in response.text


def test_a_jobs_internal_notify_url_is_a_422_that_names_no_address(svc: Service) -> None:
    dataset_id = svc.upload()
    response = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG,
                                                 "notify_url": "http://localhost:8000/hook"})
    body = problem(response, 422, "validation-error", field="notify_url")
    assert body["detail"] == f"notify_url: {GENERIC}"
    assert "127.0.0.1" not in response.text



def test_the_webhook_secret_is_shown_once_and_stored_sealed(svc: Service) -> None:
    """Issue 26: the database holds the secret sealed (a dump alone forges no delivery); the
    dispatcher's key opens it for this tenant only."""
    secret = svc.client.post("/v1/webhooks/secret").json()["secret"]
    with session_scope(svc.database_url) as session:
        stored = session.scalars(select(WebhookSecretRow.secret)).one()
    assert secret not in stored and secret_store.is_sealed(stored)
    assert secret_store.open_sealed(svc.settings, "default", stored) == secret
    with pytest.raises(secret_store.SecretKeyError):
        secret_store.open_sealed(svc.settings, "other", stored)
    assert secret not in svc.client.get("/v1/webhooks").text
