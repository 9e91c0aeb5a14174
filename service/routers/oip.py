"""``/v2``: the Open Inference Protocol (KServe v2 / Triton REST), with the certificate as output tensors.

Which model ``/v2/models/{name}[/versions/{version}]`` means (``service/model_refs.resolve_oip``):
a registered name serves its ``production`` alias, or its latest version when no
``production`` alias is set; ``{version}`` is a version number of that name; a model id
(or ``name@alias``) is accepted as ``{name}`` too. Resolved per request, like ``/v1``.

Auth: the model routes need the same Bearer key as ``/v1`` and see only the key's tenant.
``GET /v2``, ``/v2/health/live`` and ``/v2/health/ready`` answer without a key: they are what
a platform's probes call, and they say nothing about any tenant's models.

An inference answer names the model that gave it as ``/v1`` does: ``model_version`` (the
protocol's member), ``parameters.model_id``, ``parameters.registered_name`` and
``parameters.version``, and the ``X-LipSpline-Model-*`` headers.

Errors are ``{"error": "..."}`` (``service/http/problems.py`` renders every error under ``/v2``
that way): 400 for a malformed request or tensor, 401 without a valid key, 404 for a model
that does not resolve, 409 for a model whose stored weights fail their check.

These routes are not in ``/openapi.json``: the OIP is specified by KServe, and its error
shape is not the problem+json that document promises for every route.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api_schemas.oip import (
    HEADER_LENGTH,
    INPUT_NAME,
    OUTPUT_DATATYPES,
    InferenceRequest,
    ModelMetadata,
    ServerMetadata,
    TensorMetadata,
)
from lipspline.certificates import ARITHMETIC
from lipspline_platform import registry
from lipspline_platform.db.engine import database_answers, session_scope
from service.http.oip_tensors import (
    OutputTensor,
    bad_request,
    encode_response,
    finite_parameter,
    input_rows,
    parse_request,
)
from service.http.problems import ProblemError
from service.inference import answers as inference
from service.inference.model_cache import LoadedModel, ModelCache
from service.inference.model_refs import Resolved, resolve_oip, served_by_headers
from service.security.deps import AppSettings, PredictTenant, ReadTenant
from service.security.ownership import is_id

router = APIRouter(prefix="/v2", tags=["oip"], include_in_schema=False)
PLATFORM = "lipspline"
#: extensions announced by GET /v2 (Triton's names)
EXTENSIONS = ["binary_tensor_data", "lipspline_certificate"]


def _package_version() -> str:
    try:
        return version("lipspline")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "0"


# ---- server ------------------------------------------------------------------------------------
@router.get("", response_model=ServerMetadata)
def server_metadata() -> ServerMetadata:
    return ServerMetadata(name=PLATFORM, version=_package_version(), extensions=EXTENSIONS)


@router.get("/health/live")
def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
def ready(settings: AppSettings) -> JSONResponse:
    """Ready when the database answers: inference needs the registry and the stored models, not the broker."""
    if not database_answers(settings.resolved_database_url):
        return JSONResponse({"error": "the database is unreachable"}, status_code=503)
    return JSONResponse({"ready": True})


# ---- models ------------------------------------------------------------------------------------
def _resolved(request: Request, tenant: str, name: str, model_version: str | None) -> Resolved:
    if not model_version and is_id(name):
        # a model id costs no query: the model cache checks it (and the tenant) as /v1 does, same 404
        return Resolved(name)
    with session_scope(request.app.state.settings.resolved_database_url) as session:
        return resolve_oip(session, tenant, name, model_version)


def _versions(request: Request, tenant: str, name: str) -> list[str]:
    with session_scope(request.app.state.settings.resolved_database_url) as session:
        registered = registry.find_name(session, tenant, name)
        return [] if registered is None else [str(v.version) for v in registry.versions_of(session, registered)]


def _cache(request: Request) -> ModelCache:
    return request.app.state.model_cache


Cache = Annotated[ModelCache, Depends(_cache)]


def _output_names(loaded: LoadedModel) -> list[str]:
    classifier = loaded.model.task == "classification"
    names = ["output", "label"] if classifier else ["output"]
    names += ["lipschitz_bound", "rounding_bound"]
    return names + (["certified_radius"] if classifier else []) + ["output_bound"]


def _label_datatype(loaded: LoadedModel) -> str:
    classes = loaded.model.classes or []
    return "INT64" if all(isinstance(c, int) and not isinstance(c, bool) for c in classes) else "BYTES"


def _metadata(loaded: LoadedModel, name: str, versions: list[str]) -> ModelMetadata:
    n_outputs = loaded.model.network.n_outputs
    shapes = {"output": ("FP64", [-1, n_outputs]), "label": (_label_datatype(loaded), [-1]),
              "lipschitz_bound": ("FP64", [1]), "rounding_bound": ("FP64", [-1]),
              "certified_radius": ("FP64", [-1]), "output_bound": ("FP64", [-1])}
    return ModelMetadata(
        name=name,
        versions=versions,
        platform=PLATFORM,
        inputs=[TensorMetadata(name=INPUT_NAME, datatype="FP64", shape=[-1, loaded.model.n_features])],
        outputs=[TensorMetadata(name=n, datatype=shapes[n][0], shape=shapes[n][1]) for n in _output_names(loaded)],
        parameters={"model_id": loaded.id, "task": loaded.model.task, "classes": loaded.model.classes,
                    "lipschitz_bound": loaded.certified, "arithmetic": ARITHMETIC,
                    "input_datatypes": ["FP32", "FP64"]},
    )


def _model_metadata(request: Request, tenant: str, cache: ModelCache, name: str, model_version: str | None) -> dict:
    resolved = _resolved(request, tenant, name, model_version)
    loaded = cache.get(resolved.model_id, tenant)
    versions = [model_version] if model_version else _versions(request, tenant, name)
    return _metadata(loaded, name, versions).model_dump()


@router.get("/models/{name}")
def model_metadata(name: str, request: Request, tenant: ReadTenant, cache: Cache) -> dict:
    return _model_metadata(request, tenant, cache, name, None)


@router.get("/models/{name}/versions/{model_version}")
def model_version_metadata(name: str, model_version: str, request: Request, tenant: ReadTenant, cache: Cache) -> dict:
    return _model_metadata(request, tenant, cache, name, model_version)


def _model_ready(request: Request, tenant: str, cache: ModelCache, name: str, model_version: str | None) -> dict:
    cache.get(_resolved(request, tenant, name, model_version).model_id, tenant)  # loaded and checked: ready
    return {"name": name, "ready": True}


@router.get("/models/{name}/ready")
def model_ready(name: str, request: Request, tenant: ReadTenant, cache: Cache) -> dict:
    return _model_ready(request, tenant, cache, name, None)


@router.get("/models/{name}/versions/{model_version}/ready")
def model_version_ready(name: str, model_version: str, request: Request, tenant: ReadTenant, cache: Cache) -> dict:
    return _model_ready(request, tenant, cache, name, model_version)


# ---- inference ---------------------------------------------------------------------------------
@router.post("/models/{name}/infer")
async def infer(name: str, request: Request, tenant: PredictTenant, cache: Cache, settings: AppSettings) -> Response:
    return await _infer(request, tenant, cache, settings.max_predict_rows, name, None)


@router.post("/models/{name}/versions/{model_version}/infer")
async def infer_version(
    name: str, model_version: str, request: Request, tenant: PredictTenant, cache: Cache, settings: AppSettings
) -> Response:
    return await _infer(request, tenant, cache, settings.max_predict_rows, name, model_version)


async def _infer(
    request: Request, tenant: str, cache: ModelCache, max_rows: int, name: str, model_version: str | None
) -> Response:
    body = await request.body()
    parsed, binary = parse_request(body, request.headers.get(HEADER_LENGTH))
    if len(parsed.inputs) != 1 or parsed.inputs[0].name != INPUT_NAME:
        names = [tensor.name for tensor in parsed.inputs]
        raise bad_request(f"inputs: expected one tensor named {INPUT_NAME!r}, got {names}")

    def run() -> tuple[Resolved, LoadedModel, list[OutputTensor]]:
        # one trip to the threadpool for the blocking part: registry lookup, model load, the served map
        resolved = _resolved(request, tenant, name, model_version)
        loaded = cache.get(resolved.model_id, tenant)
        x = input_rows(parsed.inputs[0], binary, loaded.model.n_features, max_rows)
        return resolved, loaded, _outputs(loaded, parsed, x.rows)

    resolved, loaded, outputs = await run_in_threadpool(run)
    head = {
        "model_name": name,
        "model_version": str(resolved.version) if resolved.version is not None else "",
        "id": parsed.id,
        "parameters": {"model_id": resolved.model_id, "lipschitz_bound": loaded.certified, "arithmetic": ARITHMETIC,
                       "epsilon": finite_parameter(parsed.parameters, "epsilon")},
    }
    if resolved.name is not None:  # OIP parameter values are strings, numbers or booleans: absent, not null
        head["parameters"].update(registered_name=resolved.name, version=resolved.version)
    if parsed.id is None:
        del head["id"]
    content, headers = encode_response(head, outputs)
    media_type = "application/octet-stream" if headers else "application/json"
    return Response(content, media_type=media_type, headers={**headers, **served_by_headers(resolved)})


#: OIP output datatype -> the answer's output dtype
_DTYPES = {"FP64": np.float64, "FP32": np.float32}


def _overflow(row: int, dtype: str) -> ProblemError:
    """The ``/v2`` wording of ``inference.answer``'s refusal of a row that overflows."""
    if dtype == "float32":
        return bad_request(f"parameters.output_datatype: row {row}: the outputs overflow FP32")
    return bad_request(f"input {INPUT_NAME!r}: row {row}: the model's outputs or their rounding bound overflow")


def _outputs(loaded: LoadedModel, request: InferenceRequest, x: np.ndarray) -> list[OutputTensor]:
    """The requested outputs (all, by default) of one inference answer, as OIP tensors."""
    inference.certified_bound(loaded)  # the 409 first, before the request's parameters are judged
    parameters = request.parameters
    datatype = parameters.get("output_datatype", "FP64")
    if datatype not in OUTPUT_DATATYPES:
        raise bad_request(f"parameters.output_datatype: {datatype!r} is not one of {list(OUTPUT_DATATYPES)}")
    epsilon = finite_parameter(parameters, "epsilon")
    available = _output_names(loaded)
    if epsilon is None:
        available.remove("output_bound")
    wanted = request.outputs or []
    for output in wanted:
        if output.name not in available:
            why = " (send parameters.epsilon for output_bound)" if output.name == "output_bound" else ""
            raise bad_request(f"outputs: {output.name!r} is not an output of this request{why}; available: {available}")
    all_binary = parameters.get("binary_data_output") is True
    binary = {o.name: o.parameters.get("binary_data", all_binary) is True for o in wanted}
    names = [o.name for o in wanted] or available

    found = inference.answer(loaded, x, epsilon, output_dtype=_DTYPES[datatype], on_overflow=_overflow)
    rows = x.shape[0]
    label_datatype = _label_datatype(loaded)
    tensors = {
        "output": lambda: (found.outputs, datatype, list(found.outputs.shape)),
        "label": lambda: (np.asarray(found.predictions()) if label_datatype == "INT64" else found.predictions(),
                          label_datatype, [rows]),
        "lipschitz_bound": lambda: (np.array([found.lipschitz_bound]), "FP64", [1]),
        "rounding_bound": lambda: (found.rounding, "FP64", [rows]),
        "certified_radius": lambda: (found.certified_radius, "FP64", [rows]),
        "output_bound": lambda: (found.output_bounds, "FP64", [rows]),
    }
    return [OutputTensor(name, *tensors[name](), binary.get(name, all_binary)) for name in names]
