"""``/v1/datasets``: upload (multipart file or JSON), list, get, preview (first rows, feature ranges), delete.

The rows are ``lipspline_platform/datasets.py``'s (``dataset_refs.py``'s for datasets by reference);
this module parses the upload, checks limits and quotas, calls and answers.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api_schemas.dataset_refs import DatasetReference
from api_schemas.http import (
    DatasetCreate,
    DatasetList,
    DatasetOut,
    DatasetPreview,
    FeatureRange,
    LabelsPatch,
    RequestBody,
)
from api_schemas.labels import DESCRIPTION_HELP, TAGS_HELP, InDescription, InTags
from lipspline.data import Dataset, DatasetError, from_arrays, parse_upload
from lipspline.data.npz_stream import TARGET as NPZ_TARGET
from lipspline_platform import datasets
from lipspline_platform.db.dataset_blob import dataset_from_row, dataset_to_bytes
from lipspline_platform.db.engine import Session, session_scope
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import DatasetRow
from lipspline_platform.settings import Settings
from lipspline_platform.storage import artifacts, dataset_refs
from lipspline_platform.storage.object_store import UriRefusedError
from service import labels, quotas
from service.http.idempotency import IdempotencyKey, IdempotentRequest, fingerprint
from service.http.limits import check_dataset
from service.http.openapi_docs import created_headers, problems
from service.http.pagination import LINK_HEADER, Page, paged
from service.http.problems import ProblemError, invalid_field
from service.security.deps import AppSettings, DbSession, ReadTenant, TrainTenant
from service.security.ownership import found

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
UPLOAD_CHUNK = 1 << 20
#: the most rows ``/preview`` returns: a look at the data, not a download
MAX_PREVIEW_ROWS = 100

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
                        "tags": {
                            "type": "string",
                            "description": "comma-separated tags (the field may also repeat); " + TAGS_HELP,
                        },
                        "description": {"type": "string", "description": DESCRIPTION_HELP},
                    },
                },
                "encoding": {"file": {"contentType": "application/octet-stream"}},
            },
            "application/json": {
                # rows in the body, or Parquet objects registered where they lie (a body with `uri`)
                "schema": {"oneOf": [DatasetCreate.model_json_schema(), DatasetReference.model_json_schema()]},
                "examples": {
                    "rows": {"value": DatasetCreate.model_config["json_schema_extra"]["examples"][0]},
                    "by_reference": {"value": {"uri": "s3://datasets/iris/*.parquet", "target": "species"}},
                },
            },
        },
    }
}


def to_out(row: DatasetRow) -> DatasetOut:
    return DatasetOut.model_validate(row, from_attributes=True)


def _get(session: Session, dataset_id: str, tenant: str, *, lock: bool = False) -> DatasetRow:
    return found(datasets.find(session, tenant, dataset_id, lock=lock), "dataset", dataset_id)


class _FormLabels(RequestBody):
    """A multipart upload's ``tags`` and ``description`` fields, held to the rules of the JSON body's."""

    tags: InTags = []
    description: InDescription = None


def _form_labels(form: Any) -> dict[str, Any]:
    """``tags`` (comma-separated, the field may repeat) and ``description`` of a multipart form; 422 naming them."""
    values = form.getlist("tags")
    description = form.get("description")
    for key, items in (("tags", values), ("description", [description])):
        if any(item is not None and not isinstance(item, str) for item in items):
            raise invalid_field(key, "must be a plain form field, not a file")
    tags = [tag.strip() for value in values for tag in value.split(",") if tag.strip()]
    try:
        checked = _FormLabels.model_validate({"tags": tags, "description": description or None})
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
    return {"tags": checked.tags, "description": checked.description}


UPLOAD_ROUTE = "POST /v1/datasets"
#: file suffixes a large upload may have (streamed to the artifact store), and the format each is
STREAMED_FORMATS = {"parquet": "parquet", "pq": "parquet", "csv": "csv", "npz": "npz"}


async def _read_upload(upload: Any) -> bytes:
    # the body size is already capped by the BodySizeLimit middleware as it streams in
    chunks = []
    while chunk := await upload.read(UPLOAD_CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


async def _multipart_request(request: Request, settings: Settings) -> dict[str, Any]:
    """The form's fields and file bytes (I/O only; parsing happens off the event loop).

    A Parquet, CSV or .npz file over ``upload_stream_over_bytes`` is not read into memory: the form
    parser has spooled it to disk, and it goes to the artifact store from there (``stored_table``;
    CSV and .npz converted to Parquet on the way, ``lipspline.data.csv_stream`` and ``npz_stream``).
    """
    form = await request.form(max_files=1, max_fields=40)  # room for a repeated `tags` field
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise invalid_field("file", "a file field named 'file' is required")
    fields = {key: form.get(key) for key in ("target", "task", "name")}
    for key, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise invalid_field(key, "must be a plain form field, not a file")
    if fields["task"] not in (None, "", "classification", "regression"):
        raise invalid_field("task", "must be 'classification' or 'regression'")
    fields.update(_form_labels(form))
    filename = upload.filename or "upload"
    large = upload.size is not None and upload.size > settings.upload_stream_over_bytes
    suffix = filename.lower().rsplit(".", 1)[-1]
    if large and suffix in STREAMED_FORMATS and artifacts.store_for(settings) is not None:
        return {"kind": "stored_table", "format": STREAMED_FORMATS[suffix], "filename": filename,
                "file": upload.file, **fields}
    data = await _read_upload(upload)
    return {"kind": "multipart", "filename": filename, "data": data, **fields}


async def _json_request(request: Request) -> dict[str, Any]:
    body = await request.body()
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProblemError(400, "Bad Request", f"body: not valid JSON ({exc})", kind="bad-json") from exc
    except RecursionError as exc:
        raise ProblemError(400, "Bad Request", "body: JSON nested too deeply", kind="bad-json") from exc
    by_reference = isinstance(payload, dict) and "uri" in payload
    try:
        spec = (DatasetReference if by_reference else DatasetCreate).model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
    return {"kind": "reference" if by_reference else "json", "spec": spec}


def _fingerprint(parsed: dict[str, Any]) -> str:
    if parsed["kind"] in ("json", "reference"):
        return fingerprint(parsed["spec"].model_dump(mode="json"))
    described = {k: v for k, v in parsed.items() if k not in ("data", "file")}
    if parsed["kind"] == "stored_table":  # read from the spooled file a chunk at a time
        digest, source = hashlib.sha256(), parsed["file"]
        source.seek(0)
        while block := source.read(UPLOAD_CHUNK * 8):
            digest.update(block)
        source.seek(0)
        described["sha256"] = digest.hexdigest()
    else:
        described["sha256"] = hashlib.sha256(parsed["data"]).hexdigest()
    return fingerprint(described)


def _store_large_table(parsed: dict[str, Any], idem: IdempotentRequest, tenant: str,
                       settings: Settings) -> Response:
    """Copy a large Parquet upload (a CSV or .npz one converted to Parquet first) into the artifact
    store, then register it as a dataset streamed from there.

    Nothing is left behind when a check fails: the object is deleted before the error is raised.
    """
    target = NPZ_TARGET if parsed["format"] == "npz" else parsed["target"]
    if not target:
        raise invalid_field("target", f"a {parsed['format'].upper()} upload needs its target column")
    store = artifacts.store_for(settings)
    assert store is not None
    dataset_id = new_id()
    uri, size = dataset_refs.store_as_parquet(store, f"datasets/{dataset_id}", parsed["file"], parsed["format"],
                                              target=target, max_bytes=settings.max_upload_bytes)
    try:
        spec = DatasetReference(uri=uri, target=target, task=parsed["task"] or None,
                                name=(parsed["name"] or "dataset").strip()[:200] or "dataset",
                                tags=parsed["tags"], description=parsed["description"])
        row = dataset_refs.describe_stored(settings, tenant, dataset_id, uri, store.path_of(uri), store.filesystem,
                                           spec, source_format=parsed["format"])
        with session_scope(settings.resolved_database_url) as session:
            quotas.check_storage(session, tenant, settings, size)
            datasets.add(session, row, list(spec.tags))
            body = to_out(row).model_dump(mode="json")
            headers = {"Location": f"/v1/datasets/{row.id}"}
            idem.finish(201, body, headers, session=session)
    except BaseException:
        store.delete(uri)
        raise
    return JSONResponse(body, status_code=201, headers=headers)


def _parse(parsed: dict[str, Any], settings: Settings) -> tuple[Dataset, str, str | None]:
    if parsed["kind"] == "json":
        spec: DatasetCreate = parsed["spec"]
        return from_arrays(spec.inputs, spec.targets, task=spec.task, feature_names=spec.feature_names,
                           name=spec.name), "json", None
    filename, target = parsed["filename"], parsed["target"] or None
    dataset = parse_upload(filename, parsed["data"], target=target, task=parsed["task"] or None,
                           max_bytes=settings.max_upload_bytes)
    name = parsed["name"]
    if name and name.strip():
        dataset = Dataset(dataset.X, dataset.y, dataset.task, dataset.feature_names, dataset.classes, name[:200])
    fmt = filename.rsplit(".", 1)[-1].lower()
    return dataset, ("parquet" if fmt == "pq" else fmt), (target if fmt != "npz" else None)


def _create(parsed: dict[str, Any], idem: IdempotentRequest, tenant: str, settings: Settings) -> Response:
    """Validate in full, then store the dataset and its idempotency record in one transaction."""

    def store() -> Response:
        if parsed["kind"] == "reference":
            return _register_reference(parsed["spec"], idem, tenant, settings)
        if parsed["kind"] == "stored_table":
            return _store_large_table(parsed, idem, tenant, settings)
        dataset, fmt, target = _parse(parsed, settings)
        check_dataset(dataset, settings)
        content = dataset_to_bytes(dataset)
        given = parsed["spec"] if parsed["kind"] == "json" else None
        tags = given.tags if given is not None else parsed["tags"]
        description = given.description if given is not None else parsed["description"]
        with session_scope(settings.resolved_database_url) as session:
            quotas.check_storage(session, tenant, settings, len(content))
            row = datasets.store_uploaded(session, settings, tenant, dataset, content, source_format=fmt,
                                          target_name=target, tags=tags, description=description)
            body = to_out(row).model_dump(mode="json")
            headers = {"Location": f"/v1/datasets/{row.id}"}
            idem.finish(201, body, headers, session=session)
        return JSONResponse(body, status_code=201, headers=headers)

    return idem.respond(_fingerprint(parsed), store)


def _register_reference(spec: DatasetReference, idem: IdempotentRequest, tenant: str, settings: Settings) -> Response:
    """Read the objects' footers and statistics (no copy), then store the dataset row: nothing if any check fails."""
    try:
        row = dataset_refs.describe(settings, tenant, spec)
    except UriRefusedError as exc:
        raise invalid_field("uri", str(exc)) from exc
    with session_scope(settings.resolved_database_url) as session:
        datasets.add(session, row, list(spec.tags))
        body = to_out(row).model_dump(mode="json")
        headers = {"Location": f"/v1/datasets/{row.id}"}
        idem.finish(201, body, headers, session=session)
    return JSONResponse(body, status_code=201, headers=headers)


@router.post(
    "",
    operation_id="upload_dataset",
    status_code=201,
    response_model=DatasetOut,
    openapi_extra=_UPLOAD_BODY,
    responses={
        201: created_headers("dataset"),
        **problems(
            (403, "the tenant's `max_stored_bytes` quota would be exceeded (`quota-exceeded`)"),
            (409, "Idempotency-Key in use by a request still in flight"),
            (413, "upload larger than LIPSPLINE_MAX_UPLOAD_BYTES (streamed bytes, or a file's declared contents)"),
            (415, "neither multipart/form-data nor application/json"),
            (
                422,
                "invalid data (`row`, `column` and `problem` name it), a limit exceeded, or an Idempotency-Key "
                "reused with another body",
            ),
        ),
    },
)
async def create_dataset(
    request: Request,
    tenant: TrainTenant,
    settings: AppSettings,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Upload a dataset; it is validated in full before anything is stored."""
    idem = IdempotentRequest(settings.resolved_database_url, tenant, UPLOAD_ROUTE, idempotency_key)
    content_type = request.headers.get("content-type", "").lower()  # media types are case-insensitive
    if content_type.startswith("multipart/form-data"):
        parsed = await _multipart_request(request, settings)
    elif content_type.startswith("application/json"):
        parsed = await _json_request(request)
    else:
        raise ProblemError(415, "Unsupported Media Type", "Content-Type must be multipart/form-data or "
                           "application/json", kind="unsupported-media-type")
    # parsing and the database work are CPU/blocking: keep them off the event loop
    return await run_in_threadpool(_create, parsed, idem, tenant, settings)


@router.get("", response_model=DatasetList, responses={200: LINK_HEADER})
def list_datasets(
    session: DbSession,
    tenant: ReadTenant,
    page: Page,
    name: Annotated[
        str | None, Query(min_length=1, max_length=200, description="only datasets of exactly this name")
    ] = None,
    task: Annotated[Literal["classification", "regression"] | None, Query(description="only this task")] = None,
    tag: labels.TagFilter = None,
) -> DatasetList:
    """The tenant's datasets, newest first, a page at a time (``next_cursor``), filtered."""
    listed = paged(page, lambda window: datasets.list_datasets(session, tenant, window, task=task, name=name, tags=tag))
    return DatasetList(items=[to_out(r) for r in listed.rows], next_cursor=listed.next_cursor)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=problems(404))
def get_dataset(dataset_id: str, session: DbSession, tenant: ReadTenant) -> DatasetOut:
    return to_out(_get(session, dataset_id, tenant))


@router.patch("/{dataset_id}", operation_id="update_dataset", response_model=DatasetOut,
              responses=labels.PATCH_RESPONSES)
def update_dataset(dataset_id: str, body: LabelsPatch, session: DbSession, tenant: TrainTenant) -> DatasetOut:
    """Rename, retag or redescribe a dataset (JSON merge semantics: a member left out is unchanged, ``null``
    clears it (the name goes back to ``dataset``), ``tags`` replaces the list)."""
    row = _get(session, dataset_id, tenant, lock=True)
    labels.patch(session, "dataset", row, body)
    return to_out(row)


@router.get("/{dataset_id}/preview", response_model=DatasetPreview, responses=problems(404))
def preview_dataset(
    dataset_id: str,
    session: DbSession,
    tenant: ReadTenant,
    settings: AppSettings,
    rows: Annotated[int, Query(ge=1, le=MAX_PREVIEW_ROWS, description="how many of the first rows")] = 20,
) -> DatasetPreview:
    """The first rows (features, then the target) and each feature's range over every row."""
    row = _get(session, dataset_id, tenant)
    if row.uri is not None:
        return _reference_preview(row, rows, settings)
    dataset = dataset_from_row(row, settings)
    shown = min(rows, dataset.n_samples)
    targets = dataset.y[:shown].tolist()  # labels keep their JSON type (int, float or str)
    return DatasetPreview(
        id=dataset_id,
        columns=[*dataset.feature_names, "target"],
        rows=[[*features, target] for features, target in zip(dataset.X[:shown].tolist(), targets, strict=True)],
        n_samples=dataset.n_samples,
        feature_ranges=[FeatureRange(min=float(lo), max=float(hi))
                        for lo, hi in zip(dataset.X.min(axis=0), dataset.X.max(axis=0), strict=True)],
    )


def _reference_preview(row: DatasetRow, rows: int, settings: Settings) -> DatasetPreview:
    """The first rows of the first object, and the ranges recorded at registration (nothing else is read)."""
    try:
        first = dataset_refs.first_rows(settings, row, rows)
    except DatasetError as exc:
        raise ProblemError(409, "Conflict", str(exc), kind="data-changed") from exc
    statistics = row.statistics or {}
    return DatasetPreview(
        id=row.id, columns=[*row.feature_names, "target"], rows=first, n_samples=row.n_samples,
        feature_ranges=[FeatureRange(min=lo, max=hi)
                        for lo, hi in zip(statistics["minimum"], statistics["maximum"], strict=True)],
    )


@router.delete("/{dataset_id}", status_code=204, responses=problems(404, (409, "used by a queued or running job")))
def delete_dataset(dataset_id: str, session: DbSession, tenant: TrainTenant, settings: AppSettings) -> Response:
    """Delete a dataset unless a queued or running job still needs it (finished jobs keep their history)."""
    row = _get(session, dataset_id, tenant, lock=True)
    active = datasets.active_job_ids(session, dataset_id)
    if active:
        raise ProblemError(
            409,
            "Conflict",
            f"dataset {dataset_id!r} is used by active jobs: {', '.join(active)}",
            kind="dataset-in-use",
            jobs=list(active),
        )
    datasets.delete(session, settings, row)  # the row, then its stored object
    return Response(status_code=204)
