"""``/v1/datasets``: upload (multipart file or JSON), list, get, delete."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from sqlalchemy import select

from api_schemas import ACTIVE_STATES
from api_schemas.http import DatasetCreate, DatasetList, DatasetOut
from lipspline.data import Dataset, from_arrays, parse_upload
from service.db.dataset_blob import dataset_to_bytes
from service.db.ids import new_id
from service.db.tables import DatasetRow, JobRow
from service.deps import AppSettings, DbSession, TenantId
from service.ownership import owned
from service.problems import ProblemError, invalid_field
from service.settings import Settings

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
UPLOAD_CHUNK = 1 << 20

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": ".csv, .npz (X, y) or .parquet"},
                        "target": {"type": "string", "description": "target column (CSV/Parquet)"},
                        "task": {"type": "string", "enum": ["classification", "regression"]},
                        "name": {"type": "string"},
                    },
                },
                "encoding": {"file": {"contentType": "application/octet-stream"}},
            },
            "application/json": {
                "schema": DatasetCreate.model_json_schema(),
                "example": DatasetCreate.model_config["json_schema_extra"]["examples"][0],
            },
        },
    }
}


def to_out(row: DatasetRow) -> DatasetOut:
    return DatasetOut.model_validate(row, from_attributes=True)


async def _read_limited(upload: Any, limit: int) -> bytes:
    """Read an uploaded file, refusing it as soon as it exceeds ``limit`` bytes."""
    chunks, total = [], 0
    while chunk := await upload.read(UPLOAD_CHUNK):
        total += len(chunk)
        if total > limit:
            raise ProblemError(
                413,
                "Content Too Large",
                f"file: the upload exceeds the limit of {limit} bytes",
                kind="content-too-large",
                field="file",
                limit_bytes=limit,
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _dataset_from_multipart(request: Request, settings: Settings) -> tuple[Dataset, str, str | None]:
    form = await request.form(max_files=1, max_fields=16)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise invalid_field("file", "a file field named 'file' is required")
    data = await _read_limited(upload, settings.max_upload_bytes)
    target = form.get("target")
    task = form.get("task")
    if task not in (None, "", "classification", "regression"):
        raise invalid_field("task", "must be 'classification' or 'regression'")
    filename = upload.filename or "upload"
    dataset = parse_upload(
        filename,
        data,
        target=str(target) if target else None,
        task=task or None,  # type: ignore[arg-type]
        max_bytes=settings.max_upload_bytes,
    )
    name = form.get("name")
    if isinstance(name, str) and name.strip():
        dataset = Dataset(dataset.X, dataset.y, dataset.task, dataset.feature_names, dataset.classes, name[:200])
    fmt = filename.rsplit(".", 1)[-1].lower()
    return dataset, ("parquet" if fmt == "pq" else fmt), (str(target) if target and fmt != "npz" else None)


async def _dataset_from_json(request: Request, settings: Settings) -> tuple[Dataset, str, str | None]:
    body = await request.body()
    if len(body) > settings.max_upload_bytes:
        raise ProblemError(
            413,
            "Content Too Large",
            f"body: exceeds the limit of {settings.max_upload_bytes} bytes",
            kind="content-too-large",
        )
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProblemError(400, "Bad Request", f"body: not valid JSON ({exc})", kind="bad-json") from exc
    try:
        spec = DatasetCreate.model_validate(payload)
    except ValidationError as exc:
        from fastapi.exceptions import RequestValidationError

        raise RequestValidationError(exc.errors()) from exc
    dataset = from_arrays(spec.inputs, spec.targets, task=spec.task, feature_names=spec.feature_names, name=spec.name)
    return dataset, "json", None


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    openapi_extra=_UPLOAD_BODY,
    responses={413: {"description": "upload too large"}, 422: {"description": "invalid data"}},
)
async def create_dataset(
    request: Request,
    tenant: TenantId,
    settings: AppSettings,
    session: DbSession,
) -> DatasetOut:
    """Upload a dataset; it is validated in full before anything is stored."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        dataset, fmt, target = await _dataset_from_multipart(request, settings)
    elif content_type.startswith("application/json"):
        dataset, fmt, target = await _dataset_from_json(request, settings)
    else:
        raise ProblemError(
            415,
            "Unsupported Media Type",
            "Content-Type must be multipart/form-data or application/json",
            kind="unsupported-media-type",
        )
    row = DatasetRow(
        id=new_id(),
        tenant_id=tenant,
        name=dataset.name,
        task=dataset.task,
        n_samples=dataset.n_samples,
        n_features=dataset.n_features,
        classes=dataset.classes,
        feature_names=list(dataset.feature_names),
        target_name=target,
        source_format=fmt,
        sha256=dataset.sha256,
        content=dataset_to_bytes(dataset),
    )
    session.add(row)
    session.flush()
    return to_out(row)


@router.get("", response_model=DatasetList)
def list_datasets(session: DbSession, tenant: TenantId) -> DatasetList:
    query = select(DatasetRow).where(DatasetRow.tenant_id == tenant).order_by(DatasetRow.created_at.desc())
    rows = session.scalars(query).all()
    return DatasetList(items=[to_out(r) for r in rows])


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: DbSession, tenant: TenantId) -> DatasetOut:
    return to_out(owned(session, DatasetRow, dataset_id, tenant, "dataset"))


@router.delete("/{dataset_id}", status_code=204, responses={409: {"description": "used by a queued or running job"}})
def delete_dataset(dataset_id: str, session: DbSession, tenant: TenantId) -> Response:
    """Delete a dataset unless a queued or running job still needs it (finished jobs keep their history)."""
    row = owned(session, DatasetRow, dataset_id, tenant, "dataset", lock=True)
    active = session.scalars(
        select(JobRow.id).where(JobRow.dataset_id == dataset_id, JobRow.status.in_([s.value for s in ACTIVE_STATES]))
    ).all()
    if active:
        raise ProblemError(
            409,
            "Conflict",
            f"dataset {dataset_id!r} is used by active jobs: {', '.join(active)}",
            kind="dataset-in-use",
            jobs=list(active),
        )
    session.delete(row)
    return Response(status_code=204)
