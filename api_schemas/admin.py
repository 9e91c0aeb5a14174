"""Contracts of ``/v1/admin``: tenants and API keys, managed with an ``admin`` key.

A key's secret appears exactly once, in :class:`KeyCreated`; every listing shows only
its prefix (the first 12 characters, 48 of its 192 random bits).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api_schemas.http import Timestamp

ScopeName = Literal["read", "predict", "train", "admin"]
TenantName = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: the largest value a quota column holds (a signed 64-bit integer on both databases): a larger one is a 422
QUOTA_MAX = 2**63 - 1
QuotaValue = Field(
    None, ge=1, le=QUOTA_MAX, description="none: the deployment's default (LIPSPLINE_QUOTA_*), unlimited unless set"
)


class TenantQuotas(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quota_max_active_jobs: int | None = QuotaValue
    quota_max_stored_bytes: int | None = QuotaValue
    quota_max_models: int | None = QuotaValue


class TenantCreate(TenantQuotas):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "team-a", "quota_max_active_jobs": 4}]}
    )

    name: str = TenantName


class TenantUpdate(TenantQuotas):
    """New quotas of a tenant (every field is replaced; null: the deployment's default)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"quota_max_models": 50}]})


class TenantOut(TenantQuotas):
    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    created_at: Timestamp
    revoked_at: Timestamp | None = None


class TenantList(BaseModel):
    items: list[TenantOut]


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"tenant": "team-a", "scopes": ["read", "predict"], "expires_at": "2030-01-01T00:00:00Z"}]
        },
    )

    tenant: str = Field(min_length=1, max_length=100, description="the tenant's name (it must exist)")
    scopes: list[ScopeName] = Field(
        default_factory=lambda: ["read", "predict", "train"], min_length=1, description="what the key may do"
    )
    expires_at: Timestamp | None = Field(None, description="the key stops working at this time (none: never)")
    name: str | None = Field(None, max_length=100, description="a label for listings")


class KeyOut(BaseModel):
    """A key as listed: never its secret, only its prefix."""

    id: str
    tenant_id: str
    prefix: str
    scopes: list[ScopeName]
    name: str | None = None
    created_at: Timestamp
    expires_at: Timestamp | None = None
    revoked_at: Timestamp | None = None


class KeyCreated(KeyOut):
    key: str = Field(description="the API key: shown this once, stored only as its SHA-256")


class KeyList(BaseModel):
    items: list[KeyOut]
