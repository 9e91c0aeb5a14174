"""``POST /v1/datasets`` with a ``uri``: a Parquet dataset registered where it lies, not uploaded."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
