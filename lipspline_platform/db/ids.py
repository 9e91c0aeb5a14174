"""Resource ids: random, unguessable, URL-safe (uuid4 hex)."""

import uuid


def new_id() -> str:
    return uuid.uuid4().hex
