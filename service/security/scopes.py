"""What an API key may do: its scopes, and the dependency every ``/v1`` route declares its scope with.

* ``read``: list and get datasets, jobs and models, download models;
* ``predict``: predict and certify with a model;
* ``train``: upload and delete datasets, submit and cancel jobs;
* ``admin``: manage tenants and keys (``/v1/admin``), across every tenant: the operator's
  scope. An ``admin`` key may also do all of the above for its own tenant (it could mint
  itself such a key anyway, so refusing would protect nothing).

Each route takes one of the ``*Tenant`` annotations below; FastAPI's ``Security`` puts the
scope in the operation's OpenAPI ``security`` requirement (``BearerAuth: [predict]``), and
``service/http/openapi_docs.py`` repeats it as ``x-required-scope`` and in the description. A
valid key without the scope is a 403 problem+json (``insufficient-scope``) naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    read = "read"
    predict = "predict"
    train = "train"
    admin = "admin"


#: a key made without ``--scopes``/``scopes``: everything but key management
DEFAULT_KEY_SCOPES = (Scope.read, Scope.predict, Scope.train)
ALL_SCOPES = tuple(Scope)


def parse_scopes(text: str) -> frozenset[str]:
    """``"read predict"`` or ``"read,predict"`` as a set; unknown names raise ValueError."""
    names = {part for part in text.replace(",", " ").split() if part}
    unknown = names - {s.value for s in Scope}
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(sorted(unknown))}; choose from {', '.join(Scope)}")
    return frozenset(names)


def format_scopes(scopes: frozenset[str] | set[str] | tuple) -> str:
    """The stored form: space-separated, in the order of :class:`Scope`."""
    return " ".join(s.value for s in Scope if s.value in {str(x) for x in scopes})


@dataclass(frozen=True)
class Principal:
    """Who a verified key speaks for: its tenant, its scopes, and the key's id (never the key)."""

    tenant_id: str
    scopes: frozenset[str]
    key_id: str
    #: wall-clock (time.time()) seconds after which the key is expired; None: never
    expires_at: float | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or Scope.admin.value in self.scopes
