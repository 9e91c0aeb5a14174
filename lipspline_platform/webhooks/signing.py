"""How a webhook is signed, so a receiver can tell it came from this service, unaltered and recent.

Headers of every delivery:

* ``X-LipSpline-Timestamp``: Unix seconds when this attempt was signed;
* ``X-LipSpline-Signature``: ``v1=`` + hex HMAC-SHA256, keyed with the tenant's webhook secret,
  of ``"{timestamp}.{body}"`` (the exact bytes of the body).

Signing the timestamp with the body stops replay: a receiver checks the signature, then that
the timestamp is within a few minutes of its clock (``lipspline_client.verify_webhook`` does both).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-LipSpline-Signature"
TIMESTAMP_HEADER = "X-LipSpline-Timestamp"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}
