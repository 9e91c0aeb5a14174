"""``POST /v1/datasets`` with a ``uri``: a Parquet dataset registered where it lies, not uploaded;
and the tenant's own credentials for reading such URIs (``/v1/storage/credentials``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api_schemas.http import RequestBody
from api_schemas.labels import InDescription, InTags


class DatasetReference(RequestBody):
    """Register Parquet objects in an object store or a shared filesystem as a dataset, without copying them.

    The service reads the objects' footers (schema, row counts), checks the columns, and makes
    one streaming pass for the statistics training needs (per-feature mean and scale, ranges,
    class counts); a job later refuses the data if an object changed in between.
    """

    uri: str = Field(
        ..., min_length=6, max_length=2000,
        description="`s3://bucket/prefix/*.parquet`, `gs://…`, `az://…`, or `file:///shared/…` (under a directory "
        "the service shares); `*`/`?` in the last segment, or a trailing `/` for every `.parquet` under a prefix",
        examples=["s3://datasets/iris/*.parquet"],
    )
    target: str = Field(..., min_length=1, max_length=200, description="the target column")
    features: list[str] | None = Field(
        None, min_length=1, max_length=10_000, description="feature columns, in order; default: every other column "
        "(each must be numeric)",
    )
    task: Literal["classification", "regression"] | None = Field(None, description="inferred when omitted")
    name: str = Field("dataset", min_length=1, max_length=200)
    tags: InTags = []
    description: InDescription = None


class S3CredentialsIn(RequestBody):
    """The tenant's own keys for ``s3://`` dataset URIs (sealed at rest, never shown again)."""

    access_key_id: str = Field(..., min_length=4, max_length=128, pattern=r"^[A-Za-z0-9/+=._-]+$")
    secret_access_key: str = Field(..., min_length=1, max_length=512, repr=False)
    session_token: str | None = Field(None, min_length=1, max_length=4096, repr=False,
                                      description="for temporary (STS) credentials")
    region: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$",
                               description="default: the service's (AWS_REGION)")


class StorageCredentialsIn(RequestBody):
    """``PUT /v1/storage/credentials``: what the service uses to read this tenant's dataset URIs.

    Without them the service's own credentials (its environment) are used. They are sealed with
    the service's secrets key; responses show only the last four characters of the key id.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"s3": {"access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "region": "eu-west-3"}},
    ]})

    s3: S3CredentialsIn


class S3CredentialsOut(BaseModel):
    access_key_id_hint: str = Field(description="the access key id's last four characters, after '…'")
    region: str | None = None
    has_session_token: bool


class StorageCredentialsOut(BaseModel):
    s3: S3CredentialsOut
    updated_at: datetime
