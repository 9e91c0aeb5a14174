"""Checking a webhook on the receiving side: the signature, and that it is recent (no replay)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "X-LipSpline-Signature"
TIMESTAMP_HEADER = "X-LipSpline-Timestamp"


def verify_webhook(secret: str, body: bytes, headers: Mapping[str, str], *, tolerance_s: float = 300.0,
                   now: float | None = None) -> bool:
    """True when ``X-LipSpline-Signature`` is the HMAC-SHA256 of ``"{timestamp}.{body}"`` under ``secret``
    and ``X-LipSpline-Timestamp`` is within ``tolerance_s`` of ``now``. Pass the body's raw bytes."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp, signature = lowered.get(TIMESTAMP_HEADER.lower()), lowered.get(SIGNATURE_HEADER.lower())
    if not stamp or not signature or not stamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance_s:
        return False
    expected = "v1=" + hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)
