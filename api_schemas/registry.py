"""HTTP contracts of the model registry (``/v1/registered-models``) and of model references.

A *registered model* is a name a tenant gives to a line of trained models; each model
added under it is a numbered, immutable *version* (1, 2, 3 ...); an *alias*
(``production``, ``staging``...) names one version and can be moved. Routes that use a
model accept a *model reference*: a model id, ``name@alias`` or ``name/versions/N``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api_schemas.http import NAME_PATTERN, NEXT_CURSOR, RequestBody, Timestamp
from api_schemas.training_config import TrainingConfig

#: an alias starts with a letter, so it can never be mistaken for a version number
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9._-]{0,63}$"


#: unknown keys are errors and no string may hold a NUL byte, as in every /v1 request body
_Request = RequestBody


class RegisteredModelCreate(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "circle", "description": "inside the disc"}]})

    name: str = Field(..., pattern=NAME_PATTERN, description="unique per tenant; letters, digits, '.', '_', '-'")
    description: str | None = Field(None, max_length=2000)


class VersionCreate(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model_id": "5f0c6b2e9a4d4c1f8e7b6a5d4c3b2a19"}]})

    model_id: str = Field(..., min_length=1, max_length=64, description="a trained model of the same tenant")


class AliasMove(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"version": 2}]})

    version: int = Field(..., ge=1, description="an existing version number of the registered model")


class Lineage(BaseModel):
    """Where a version's model came from: model -> job -> dataset (content hash) -> training config."""

    model_id: str
    job_id: str
    dataset_id: str | None = Field(description="null once the dataset was deleted (its sha256 stays)")
    dataset_sha256: str | None
    config: TrainingConfig


class VersionOut(BaseModel):
    name: str
    version: int
    model_id: str
    task: str
    lipschitz_bound: float | None = Field(description="the model's certified l2 Lipschitz bound")
    aliases: list[str] = Field(description="aliases that point at this version now")
    created_by: str = Field(description="`key:<API key prefix>`, or `job:<job id>` for a job's register_as")
    created_at: Timestamp
    lineage: Lineage


class VersionList(BaseModel):
    items: list[VersionOut]
    next_cursor: str | None = NEXT_CURSOR


class RegisteredModelOut(BaseModel):
    name: str
    description: str | None = None
    latest_version: int | None = Field(description="the highest version number; null before the first version")
    aliases: dict[str, int] = Field(description="alias -> version number")
    created_at: Timestamp
    updated_at: Timestamp


class RegisteredModelList(BaseModel):
    items: list[RegisteredModelOut]
    next_cursor: str | None = NEXT_CURSOR


class AliasOut(BaseModel):
    name: str
    alias: str
    version: int
    model_id: str
    reference: str = Field(description="the model reference to use in predict and the other model routes")


class AliasList(BaseModel):
    items: list[AliasOut]


class AliasEventOut(BaseModel):
    alias: str
    from_version: int | None = Field(description="null: the alias was set for the first time")
    to_version: int | None = Field(description="null: the alias was removed")
    actor: str = Field(description="`key:<API key prefix>` of the caller, or `job:<job id>`")
    at: Timestamp


class AliasEventList(BaseModel):
    items: list[AliasEventOut]
