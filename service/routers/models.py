"""``/v1/models``: list, get, predict (with certificate), certify (local bounds), activations, download (zip, ONNX).

Every ``/v1/models/{model_id}`` route takes a model id or a registry reference (``NAME``,
``NAME@ALIAS``, ``NAME/versions/N``), resolved by ``service/inference/model_refs.py``, the resolver the
``/v2`` routes use too; predict answers say which model and version answered.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from api_schemas.http import (
    ActivationsOut,
    CertifyRequest,
    CertifyResponse,
    LabelsPatch,
    LipschitzSummary,
    LocalBoundOut,
    ModelList,
    ModelOut,
    ModelRegistration,
    PredictRequest,
    PredictResponse,
)
from lipspline.certificates import ARITHMETIC, CertificateReport, local_bounds, served_radius
from lipspline.export import onnx_bytes
from lipspline_platform import models, registry
from lipspline_platform.db.dataset_blob import dataset_from_row
from lipspline_platform.db.engine import Session
from lipspline_platform.db.tables import ModelRow
from lipspline_platform.settings import Settings
from lipspline_platform.storage import artifacts
from service import labels
from service.http.metrics import CERTIFY_DURATION, PREDICT_ROWS
from service.http.openapi_docs import json_body, problems
from service.http.pagination import LINK_HEADER, Page, paged
from service.http.predict_body import parse_predict_body
from service.http.problems import bad_artifact, invalid_field
from service.inference import answers as inference
from service.inference.activation_curves import CURVE_POINTS, activation_curves
from service.inference.compute_placement import ComputePlacement
from service.inference.model_cache import LoadedModel, ModelCache, check_stored_weights
from service.inference.model_refs import (
    SERVED_BY_HEADERS,
    PredictTarget,
    Resolved,
    ResolvedModelId,
    served_by_fields,
    served_by_headers,
)
from service.security.deps import AppSettings, DbSession, PredictTenant, ReadTenant, TrainTenant
from service.security.ownership import found

router = APIRouter(prefix="/v1/models", tags=["models"])
#: routes that load (or send) the stored weights, which are checked against their sha256 first
_BAD_ARTIFACT = (409, "the stored weights fail their sha256 check or cannot be read (`bad-artifact`)")
_USES_WEIGHTS = problems(404, _BAD_ARTIFACT)
_NO_CERTIFICATE = _BAD_ARTIFACT[1] + ", or the model has no finite certificate (`no-certificate`)"
PREDICT_ROWS_JSON, PREDICT_ROWS_NPY = PREDICT_ROWS.labels("json"), PREDICT_ROWS.labels("npy")


# plain attribute reads: async, so FastAPI calls them on the event loop instead of a thread
async def cache_of(request: Request) -> ModelCache:
    return request.app.state.model_cache


def lipschitz_summary(certificate: CertificateReport) -> LipschitzSummary:
    return LipschitzSummary(
        certified=certificate.certified,
        certified_by=certificate.certified_by,
        bounds=certificate.bounds,
        empirical_lower=certificate.lower_bounds.empirical,
        jacobian_lower=certificate.lower_bounds.jacobian,
        best_lower=certificate.best_lower_bound,
        tightness=certificate.tightness,
        skipped=certificate.skipped,
    )


def to_out(row: ModelRow, registrations: Sequence[tuple[str, int, list[str]]] = ()) -> ModelOut:
    """The API's view of a stored model; ``registrations`` from ``registry.registrations_of``."""
    document = row.document
    return ModelOut(
        id=row.id,
        job_id=row.job_id,
        dataset_id=row.dataset_id,
        task=row.task,
        config=document["config"],
        classes=document.get("classes"),
        feature_names=document.get("feature_names", []),
        metrics=row.metrics,
        lipschitz=lipschitz_summary(CertificateReport.model_validate(row.certificate)),
        # models stored before certified accuracy existed have neither entry: null
        certified_accuracy=row.metrics.get("certified_accuracy"),
        certified_tolerance=row.metrics.get("certified_tolerance"),
        sparsity=row.sparsity,
        parameter_count=row.parameter_count,
        weights_sha256=row.weights_sha256,
        created_at=row.created_at,
        name=row.name,
        tags=row.tags or [],
        description=row.description,
        registrations=[ModelRegistration(name=name, version=version, aliases=aliases,
                                         reference=f"{name}/versions/{version}")
                       for name, version, aliases in registrations],
    )


def to_outs(session: Session, rows: list[ModelRow]) -> list[ModelOut]:
    """Models with their registry entries: two registry queries for all of them, not one per model."""
    found = registry.registrations_of(session, [row.id for row in rows])
    return [to_out(row, found.get(row.id, [])) for row in rows]


@router.get("", response_model=ModelList, responses={200: LINK_HEADER})
def list_models(
    session: DbSession,
    tenant: ReadTenant,
    page: Page,
    dataset_id: Annotated[str | None, Query(max_length=64, description="only models trained on this dataset")] = None,
    job_id: Annotated[str | None, Query(max_length=64, description="only the model of this job")] = None,
    task: Annotated[Literal["classification", "regression"] | None, Query(description="only this task")] = None,
    name: labels.NameFilter = None,
    tag: labels.TagFilter = None,
) -> ModelList:
    """The tenant's models, newest first, a page at a time (``next_cursor``), filtered."""
    listed = paged(page, lambda window: models.list_models(session, tenant, window, dataset_id=dataset_id,
                                                            job_id=job_id, task=task, name=name, tags=tag))
    return ModelList(items=to_outs(session, listed.rows), next_cursor=listed.next_cursor)


@router.patch("/{model_id:path}", operation_id="update_model", response_model=ModelOut,
              responses=labels.PATCH_RESPONSES)
def update_model(model_id: ResolvedModelId, body: LabelsPatch, session: DbSession, tenant: TrainTenant) -> ModelOut:
    """Rename, retag or redescribe a model (JSON merge semantics: a member left out is unchanged, ``null``
    clears it, ``tags`` replaces the list). A model starts with its job's labels, copied when it was stored."""
    row = found(models.find(session, tenant, model_id, lock=True), "model", model_id)
    labels.patch(session, "model", row, body)
    return to_outs(session, [row])[0]


def _checked_rows(loaded: LoadedModel, rows: np.ndarray, limit: int) -> np.ndarray:
    """The rows' count and width against the limit and the model (the body's validator made every row as wide)."""
    if rows.shape[0] > limit:
        raise invalid_field("inputs", f"{rows.shape[0]} rows exceed the limit of {limit} per request")
    expected = loaded.model.n_features
    if rows.shape[1] != expected:
        raise invalid_field("inputs.0", f"has {rows.shape[1]} features, the model expects {expected}")
    return rows


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@router.post(
    "/{model_id:path}/predict",
    response_model=PredictResponse,
    openapi_extra=json_body(PredictRequest),
    responses={200: SERVED_BY_HEADERS, **problems(404, (409, _NO_CERTIFICATE))},
)
async def predict(target: PredictTarget, request: Request) -> Response:
    """Outputs, predictions, the certified Lipschitz bound, and what follows from it, rounding included.

    The hot path of the service: the body (a ``PredictRequest``) becomes one float64 array
    without a Python loop over its numbers (``service/http/predict_body.py``), a loaded model is
    used without leaving the event loop, large bodies take turns so they cannot starve small
    ones, and heavy work leaves the loop for a thread (``service/inference/compute_placement.py``); the answer is built
    from numpy arrays and serialised once by orjson (no re-validation of what was just
    computed); ``PredictResponse`` documents it and the route tests check it. The answer names the
    model that gave it (``model_id``, ``registered_name``, ``version``, and the ``X-LipSpline-Model-*`` headers).
    """
    # (the docstring is the OpenAPI description.) The answer is ``service/inference/answers.py``'s; one dependency
    # (key, scope, rate bucket, reference: ``PredictTarget``), the app's state read directly, not injected.
    state = request.app.state
    placement: ComputePlacement = state.compute_placement
    raw = await request.body()
    resolved = await target.resolved(request)
    async with placement.turn(len(raw)):
        body = parse_predict_body(raw, request.headers.get("content-type"))
        loaded = await state.model_cache.get_async(resolved.model_id, target.tenant)
        x = _checked_rows(loaded, body.inputs, state.settings.max_predict_rows)
        PREDICT_ROWS_JSON.observe(x.shape[0])
        inference.certified_bound(loaded)  # the 409 before any work, as the npy route
        content = await placement.run(inference.work_of(loaded, x.shape[0], body.local_ball), _predict_content,
                                      loaded, x, body.epsilon, body.local_ball, resolved)
    return Response(content, media_type="application/json", headers=served_by_headers(resolved))


def _predict_content(
    loaded: LoadedModel, x: np.ndarray, epsilon: float | None, local_ball: float | None, resolved: Resolved
) -> bytes:
    """The JSON answer of ``predict``: the inference answer, encoded."""
    found = inference.answer(loaded, x, epsilon, local_ball=local_ball)
    bounds = found.finite_output_bounds  # a model whose bound overflows float64 states none
    content: dict[str, Any] = {
        "predictions": found.predictions(),
        "outputs": found.outputs,
        "lipschitz_bound": found.lipschitz_bound,
        "rounding_bound": found.rounding,
        "arithmetic": ARITHMETIC,
        "certified_radius": found.certified_radius,
        "output_bound": None if bounds is None else float(bounds.max()),
        "output_bounds": bounds,
        "epsilon": epsilon,
    }
    if found.radius_source is not None:
        content["radius_source"] = found.radius_source
    content.update(served_by_fields(resolved))
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


NPY = "application/x-npy"


#: integers up to 2^53 in magnitude are exact in float64; beyond, the cast would round silently
_EXACT_INTEGER = 2**53


def _check_exact_in_float64(array: np.ndarray) -> None:
    """Refuse what float64 cannot hold exactly: a wider float (long double), or integers beyond 2^53."""
    if array.dtype.kind == "f" and array.dtype.itemsize > 8:
        raise invalid_field("body", f"{array.dtype} values do not convert to float64 exactly; send float64 or float32")
    if array.dtype.kind in "iu" and array.size:
        largest = max(abs(int(array.max())), abs(int(array.min())))
        if largest > _EXACT_INTEGER:
            raise invalid_field("body", f"integer {largest} is beyond 2^53: it would be rounded as float64; "
                                "send floats")


def _npy_rows(raw: bytes, loaded: LoadedModel, limit: int) -> np.ndarray:
    """The rows of an ``application/x-npy`` body, checked as the JSON inputs are (same fields, same errors)."""
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a body that is not an .npy file
        raise invalid_field("body", f"not a readable .npy array ({type(exc).__name__}: {exc})") from exc
    if array.ndim != 2 or array.dtype.kind not in "fiu":
        raise invalid_field("body", f"expected a 2-D numeric array, got shape {array.shape} of {array.dtype}")
    _check_exact_in_float64(array)
    if array.shape[0] == 0:
        raise invalid_field("inputs", "needs at least one row")
    if array.shape[0] > limit:
        raise invalid_field("inputs", f"{array.shape[0]} rows exceed the limit of {limit} per request")
    expected = loaded.model.n_features
    if array.shape[1] != expected:
        raise invalid_field("inputs.0", f"has {array.shape[1]} features, the model expects {expected}")
    x = array.astype(np.float64, copy=False)
    bad = ~np.isfinite(x)
    if bad.any():
        row, column = (int(v) for v in np.argwhere(bad)[0])
        raise invalid_field(f"inputs.{row}", f"row {row}, column {column}: value is not finite ({x[row, column]})")
    return x


@router.post(
    "/{model_id:path}/predict/npy",
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                NPY: {
                    "schema": {"type": "string", "format": "binary"},
                    # binary bodies have no JSON example; this says how to make one
                    "example": "the bytes numpy.save writes for numpy.array([[0.1, -0.3], [0.9, 0.8]])",
                }
            },
            "description": "a 2-D .npy array (rows x features; float or int, no pickle)",
        }
    },
    responses={
        200: {
            **SERVED_BY_HEADERS,
            "content": {NPY: {"schema": {"type": "string", "format": "binary"}}},
            "description": "a structured .npy array, one record per input: `output` (the outputs), "
            "`rounding_bound`, and `label` (class index into `X-Classes`) and `certified_radius` for "
            "classifiers, `output_bound` with epsilon. Headers: `X-Lipschitz-Bound`, `X-Arithmetic`, `X-Classes`, "
            "and the model that answered: `X-LipSpline-Model-Id`, with `X-LipSpline-Model-Name` and "
            "`X-LipSpline-Model-Version` when the reference went through the registry.",
        },
        **problems(404, (409, _BAD_ARTIFACT[1] + ", or the model has no finite certificate (`no-certificate`)")),
    },
)
async def predict_npy(
    target: PredictTarget,
    request: Request,
    epsilon: Annotated[float | None, Query(ge=0, le=1e12, description="input change (l2) for output_bound")] = None,
) -> Response:
    """``predict`` for large batches: binary rows in, binary records out, the same checks and guarantees.

    No JSON on either side: the rows are one ``np.load`` (no pickle) and the answer one
    ``np.save`` of a structured array, so a batch costs what the model costs.
    """
    state = request.app.state
    placement: ComputePlacement = state.compute_placement
    raw = await request.body()
    resolved = await target.resolved(request)
    async with placement.turn(len(raw)):
        loaded = await state.model_cache.get_async(resolved.model_id, target.tenant)
        x = _npy_rows(raw, loaded, state.settings.max_predict_rows)
        PREDICT_ROWS_NPY.observe(x.shape[0])
        certified = inference.certified_bound(loaded)
        content = await placement.run(inference.work_of(loaded, x.shape[0]), _npy_content, loaded, x, epsilon)
    headers = {
        "X-Lipschitz-Bound": repr(float(certified)),
        "X-Arithmetic": ARITHMETIC,
        "X-Classes": json.dumps(loaded.model.classes),
        **served_by_headers(resolved),
    }
    return Response(content, media_type=NPY, headers=headers)


def _npy_content(loaded: LoadedModel, x: np.ndarray, epsilon: float | None) -> bytes:
    """The ``.npy`` answer of ``predict/npy``: the inference answer as one structured record per row."""
    found = inference.answer(loaded, x, epsilon)
    outputs = found.outputs
    fields: list[tuple] = [("output", np.float64, (outputs.shape[1],)), ("rounding_bound", np.float64)]
    if found.classifier:
        fields += [("label", np.int64), ("certified_radius", np.float64)]
    if found.output_bounds is not None:
        fields.append(("output_bound", np.float64))
    records = np.empty(outputs.shape[0], dtype=fields)
    records["output"] = outputs
    records["rounding_bound"] = found.rounding
    if found.classifier:
        records["label"] = found.labels
        records["certified_radius"] = found.certified_radius
    if found.output_bounds is not None:
        records["output_bound"] = found.output_bounds
    buffer = io.BytesIO()
    np.save(buffer, records, allow_pickle=False)
    return buffer.getvalue()


@router.post("/{model_id:path}/certify", operation_id="certify", response_model=CertifyResponse,
             responses=_USES_WEIGHTS)
def certify(
    tenant: PredictTenant,  # first: the key's scope is checked before the reference is resolved
    model_id: ResolvedModelId,
    body: CertifyRequest,
    cache: Annotated[ModelCache, Depends(cache_of)],
    settings: AppSettings,
) -> CertifyResponse:
    """Every global bound with the lower bounds, and local bounds in a ball around each input."""
    with CERTIFY_DURATION.time():
        return _certify(model_id, tenant, body, cache, settings)


def _certify(
    model_id: str, tenant: str, body: CertifyRequest, cache: ModelCache, settings: Settings
) -> CertifyResponse:
    loaded = cache.get(model_id, tenant)
    result = CertifyResponse(lipschitz=lipschitz_summary(loaded.certificate), epsilon=body.epsilon, norm=body.norm)
    if body.inputs is None:
        return result
    x = _checked_rows(loaded, np.array(body.inputs, dtype=np.float64).reshape(len(body.inputs), -1),
                      settings.max_certify_rows)
    served = inference.served_rows(loaded, x)
    with loaded.lock:  # the analysis caches inside the certificate module are per network
        local = local_bounds(loaded.model.network, x, body.epsilon, body.norm)
    predictions = loaded.model.predictions_from_outputs(served.outputs)
    items = []
    stored_global = loaded.certified if loaded.certified is not None else math.inf
    for i, cert in enumerate(local):
        # The stored global certificate may be tighter than the one local_bounds caps with
        # (it can include the verified LipSDP value); it holds in every ball, so cap by it too.
        bound = min(cert.bound, stored_global)
        radius = None
        if loaded.model.task == "classification":
            # l2 radius inside the ball (an l2 ball of radius <= eps lies in the l-inf ball too)
            radius = float(served_radius(served.row(i), bound, cap=body.epsilon)[0])
        items.append(
            LocalBoundOut(
                bound=bound,
                bounds={k: _finite_or_none(v) for k, v in cert.bounds.items()},
                local_radius=radius,
                rounding_bound=float(served.rounding[i]),
                prediction=predictions[i],
            )
        )
    result.local = items
    return result


@router.get("/{model_id:path}/activations", operation_id="get_activations", response_model=ActivationsOut,
            responses=_USES_WEIGHTS)
def activations(
    model_id: ResolvedModelId, session: DbSession, cache: Annotated[ModelCache, Depends(cache_of)], tenant: ReadTenant
) -> dict[str, Any]:
    """Sampled curves of every activation, per unit (x shared, one y list per unit), with the knots of
    learnable splines (positions, values, which are active) and each unit's training pre-activation range."""
    loaded = cache.get(model_id, tenant)
    row = found(models.find(session, tenant, model_id), "model", model_id)
    dataset_row = models.training_dataset(session, tenant, row)
    # a dataset by reference is not read for this: the curves then show no training range
    in_memory = dataset_row is not None and dataset_row.uri is None
    dataset = dataset_from_row(dataset_row, cache.settings) if in_memory else None
    with loaded.lock:  # the ranges are caught by forward hooks on the shared network
        layers = activation_curves(loaded.model, dataset)
    return {"model_id": model_id, "points": CURVE_POINTS, "layers": layers}


#: media types of the download formats. ONNX has no IANA-registered media type; ``application/onnx``
#: is the name the issue and ONNX tooling use, and it lets the OpenAPI document tell the two binary
#: bodies of this one operation apart (``application/octet-stream`` would say nothing about either).
DOWNLOAD_MEDIA_TYPES = {"zip": "application/zip", "onnx": "application/onnx"}
_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/{model_id:path}/download",
    operation_id="download_model",
    response_class=Response,
    responses={
        200: {
            "content": {media_type: _BINARY for media_type in DOWNLOAD_MEDIA_TYPES.values()},
            "description": "`format=zip`: model.json + weights.safetensors (`application/zip`); "
            "`format=onnx`: the served map as an ONNX graph, float64 `input` [batch, n_features] -> "
            "`output` [batch, n_outputs], the certificate in its `metadata_props` (`application/onnx`)",
        },
        **_USES_WEIGHTS,
    },
)
def download(
    tenant: ReadTenant,  # first: the key's scope is checked before the reference is resolved
    model_id: ResolvedModelId,
    session: DbSession,
    cache: Annotated[ModelCache, Depends(cache_of)],
    download_format: Annotated[
        Literal["zip", "onnx"], Query(alias="format", description="`zip` (the stored parts) or `onnx`")
    ] = "zip",
) -> Response:
    """The model as a zip of its document and safetensors weights, or as an ONNX file (``format=onnx``)."""
    row = found(models.find(session, tenant, model_id), "model", model_id)
    try:
        weights = artifacts.read(cache.settings, row.weights, row.weights_uri)
    except artifacts.ArtifactMissingError as exc:
        raise bad_artifact(model_id, f"cannot be downloaded: {exc}") from exc
    check_stored_weights(row.id, weights, row.document, row.weights_sha256, "downloaded")
    if download_format == "onnx":
        content = _onnx_file(cache.get(model_id, tenant), row.weights_sha256)
    else:
        content = _zip_file(row, weights)
    headers = {"Content-Disposition": f'attachment; filename="lipspline-model-{model_id}.{download_format}"'}
    return Response(content, media_type=DOWNLOAD_MEDIA_TYPES[download_format], headers=headers)


def _zip_file(row: ModelRow, weights: bytes) -> bytes:
    """The model document (config, task, classes, sha256, certificate) and its safetensors weights."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        document = dict(row.document, certificate=row.certificate, model_id=row.id)
        archive.writestr("model.json", json.dumps(document, indent=2, sort_keys=True))
        archive.writestr("weights.safetensors", weights)
    return buffer.getvalue()


def _onnx_file(loaded: LoadedModel, weights_sha256: str) -> bytes:
    """The served map as ONNX with the certificate this process serves it under (``lipspline.export``)."""
    with loaded.lock:  # a certificate recomputed at export fills the per-network analysis caches
        return onnx_bytes(
            loaded.model, certificate=loaded.certificate, weights_sha256=weights_sha256, model_id=loaded.id
        )


# Last: a {model_id:path} GET matches every GET under /v1/models, so the GETs above (activations, download) must
# be tried first. Through the same resolver, so NAME, NAME@ALIAS and NAME/versions/N work here as everywhere.
@router.get("/{model_id:path}", response_model=ModelOut, responses=problems(404))
def get_model(model_id: ResolvedModelId, session: DbSession, tenant: ReadTenant) -> ModelOut:
    """One model, by id or reference, with the registry entries it is registered under."""
    (out,) = to_outs(session, [found(models.find(session, tenant, model_id), "model", model_id)])
    return out
