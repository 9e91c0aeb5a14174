"""Webhook secrets at rest (issue 26): sealed with AES-256-GCM, bound to their tenant, under a key
from settings or from a 0600 file made once in the data directory."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from lipspline_platform.settings import Settings
from lipspline_platform.webhooks import secret_store
from lipspline_platform.webhooks.signing import new_secret


def _settings(tmp_path: Path, key: str | None = None) -> Settings:
    return Settings(data_dir=tmp_path / "data", secrets_key=key)


def test_a_sealed_secret_opens_for_its_tenant_and_does_not_show_the_secret(tmp_path: Path) -> None:
    settings, secret = _settings(tmp_path), new_secret()
    sealed = secret_store.seal(settings, "tenant-a", secret)
    assert secret_store.is_sealed(sealed) and secret not in sealed and secret.removeprefix("whsec_") not in sealed
    assert secret_store.open_sealed(settings, "tenant-a", sealed) == secret
    assert secret_store.seal(settings, "tenant-a", secret) != sealed  # a fresh nonce each time


def test_a_sealed_secret_moved_to_another_tenant_does_not_open(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    sealed = secret_store.seal(settings, "tenant-a", new_secret())
    with pytest.raises(secret_store.SecretKeyError, match="does not open for this tenant"):
        secret_store.open_sealed(settings, "tenant-b", sealed)


def test_the_key_file_is_made_once_owner_only_and_shared_by_later_processes(tmp_path: Path) -> None:
    first, second = _settings(tmp_path), _settings(tmp_path)
    sealed = secret_store.seal(first, "t", "whsec_x")
    key_file = tmp_path / "data" / secret_store.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert secret_store.open_sealed(second, "t", sealed) == "whsec_x"


def test_a_process_with_another_key_names_the_mismatch(tmp_path: Path) -> None:
    sealed = secret_store.seal(_settings(tmp_path, secret_store.new_key_text()), "t", "whsec_x")
    with pytest.raises(secret_store.SecretKeyError, match="same LIPSPLINE_SECRETS_KEY"):
        secret_store.open_sealed(_settings(tmp_path, secret_store.new_key_text()), "t", sealed)


@pytest.mark.parametrize("bad", ["not base64 !!", "c2hvcnQ"])
def test_a_malformed_configured_key_is_refused_by_name(tmp_path: Path, bad: str) -> None:
    with pytest.raises(secret_store.SecretKeyError, match="LIPSPLINE_SECRETS_KEY"):
        secret_store.seal(_settings(tmp_path, bad), "t", "whsec_x")
