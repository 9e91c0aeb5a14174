"""Webhook signing secrets at rest: sealed with AES-256-GCM under a key the database never holds.

A tenant's webhook secret is an HMAC key: whoever reads it can forge deliveries the tenant's
receiver will trust. Hashing it (as API keys are) is not possible, because the dispatcher needs
the key itself to sign. So the ``webhook_secrets.secret`` column holds it sealed:

    v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>

* The sealing key comes from ``LIPSPLINE_SECRETS_KEY`` (base64url of 32 bytes, the same in every
  API and worker process), or, when unset, from ``<data_dir>/secrets.key``, created once with
  mode 0600 by the first process that needs it. The embedded deployment's processes share the
  data directory, so they share that file; a database dump or a PostgreSQL replica alone
  reveals no secret.
* The tenant id is the associated data: a sealed value copied onto another tenant's row does
  not open there. Other secrets a tenant keeps with the service (its object-store credentials,
  ``storage/credentials.py``) are sealed the same way with a ``purpose`` added to it, so a value
  moved from one kind of row to another does not open either.
* The key id (8 hex digits of the key's SHA-256) names the key a value was sealed with, so a
  process configured with another key says so instead of failing to verify an opaque tag.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lipspline_platform.settings import Settings

SEALED_PREFIX = "v1:"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE = "secrets.key"


class SecretKeyError(RuntimeError):
    """The sealing key is missing, malformed, or not the one a stored secret was sealed with."""


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SecretKeyError(f"{where} is not base64url") from exc
    if len(key) != KEY_BYTES:
        raise SecretKeyError(f"{where} must encode {KEY_BYTES} bytes, it encodes {len(key)}")
    return key


def new_key_text() -> str:
    """A fresh sealing key in the form ``LIPSPLINE_SECRETS_KEY`` takes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def _key_file_key(path: Path) -> bytes:
    """The key in ``path``, written there first (0600, exclusive create) if no process has yet."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(new_key_text() + "\n")
    text = path.read_text()
    if not text.strip():  # another process created it a moment ago and is still writing
        raise SecretKeyError(f"{path} is empty; retry")
    return _decode_key(text, str(path))


def sealing_key(settings: Settings) -> bytes:
    if settings.secrets_key is not None:
        return _decode_key(settings.secrets_key.get_secret_value(), "LIPSPLINE_SECRETS_KEY")
    settings.ensure_dirs()
    return _key_file_key(settings.data_dir / KEY_FILE)


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _associated(tenant_id: str, purpose: str) -> bytes:
    return tenant_id.encode() if not purpose else f"{tenant_id}\x00{purpose}".encode()


def seal(settings: Settings, tenant_id: str, secret: str, purpose: str = "") -> str:
    """The stored form of ``secret`` for ``tenant_id`` (webhook secrets: no ``purpose``)."""
    key = sealing_key(settings)
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, secret.encode(), _associated(tenant_id, purpose))
    return f"{SEALED_PREFIX}{_key_id(key)}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)


def open_sealed(settings: Settings, tenant_id: str, stored: str, purpose: str = "") -> str:
    """The secret ``seal`` stored for ``tenant_id``; SecretKeyError when this process's key cannot open it."""
    key = sealing_key(settings)
    what = f"{purpose} secret" if purpose else "webhook secret"
    try:
        key_id, payload = stored.removeprefix(SEALED_PREFIX).split(":", 1)
    except ValueError as exc:
        raise SecretKeyError(f"the stored {what} is not in the sealed form") from exc
    if key_id != _key_id(key):
        raise SecretKeyError(
            f"the {what} was sealed with key {key_id}, this process has key {_key_id(key)}: "
            "give every API and worker process the same LIPSPLINE_SECRETS_KEY"
        )
    raw = base64.urlsafe_b64decode(payload)
    try:
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(tenant_id, purpose)).decode()
    except InvalidTag as exc:
        raise SecretKeyError(f"the stored {what} does not open for this tenant (altered or moved)") from exc
