"""The SDK's objects: datasets, jobs (with live progress), models (predict with the certificate),
sweeps (many jobs over a search space, and the model they select), webhooks, the model registry.

Each call is built once as a :class:`~lipspline_client.transport.Request` plus a function
that turns the answer into a typed ``api_schemas`` model. A *runner* sends it: the sync
client's runner returns the result, the async client's returns an awaitable of it, so the
same resource classes serve :class:`~lipspline_client.Client` and
:class:`~lipspline_client.AsyncClient` (only waiting differs: on a job's events, or by polling a sweep).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
import numpy as np
from pydantic import BaseModel

from api_schemas import TERMINAL_STATES, JobStatus, TrainingConfig
from api_schemas.dataset_refs import StorageCredentialsOut
from api_schemas.http import (
    CertifyResponse,
    DatasetList,
    DatasetOut,
    DeliveryList,
    JobAccepted,
    JobEvent,
    JobList,
    JobMetrics,
    JobOut,
    ModelList,
    ModelOut,
    PredictResponse,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookSecretOut,
)
from api_schemas.registry import (
    AliasEventList,
    AliasList,
    AliasOut,
    RegisteredModelList,
    RegisteredModelOut,
    VersionList,
    VersionOut,
)
from api_schemas.sweeps import (
    Budget,
    HalvingSpec,
    RangeSpec,
    SelectKnee,
    SelectMaxAccuracy,
    SelectMaxCertifiedAccuracy,
    SweepAccepted,
    SweepCreate,
    SweepList,
    SweepOut,
    SweepStatus,
)
from lipspline_client import sse
from lipspline_client.errors import JobFailedError, LipSplineError
from lipspline_client.transport import RETRY_ERRORS, AsyncTransport, Request, SyncTransport

T = TypeVar("T")
#: records per request when the SDK reads a whole list (the service's largest page)
LIST_PAGE_SIZE = 200
Model = TypeVar("Model", bound=BaseModel)


def _as(model: type[Model]) -> Callable[[httpx.Response], Model]:
    return lambda response: model.model_validate_json(response.content)


def _nothing(_response: httpx.Response) -> None:
    return None


def _page(request: Request, cursor: str | None) -> Request:
    """The request for the page after ``cursor`` (the list's filters kept)."""
    params = dict(request.params or {})
    if cursor is not None:
        params["cursor"] = cursor
    return Request(request.method, request.path, params=params, headers=dict(request.headers))


def _merged(model: type[Model], pages: list[Any]) -> Model:
    """One list model holding the items of every page (``next_cursor`` null: nothing is left)."""
    return model.model_validate({"items": [item for page in pages for item in page.items], "next_cursor": None})


class SyncRunner:
    def __init__(self, transport: SyncTransport) -> None:
        self.transport = transport

    def run(self, request: Request, parse: Callable[[httpx.Response], T]) -> T:
        return parse(self.transport.send(request))

    def run_all(self, request: Request, model: type[Model]) -> Model:
        """Every page of a paginated list, following ``next_cursor`` (service/http/pagination.py)."""
        pages = [self.run(_page(request, None), _as(model))]
        while pages[-1].next_cursor is not None:
            pages.append(self.run(_page(request, pages[-1].next_cursor), _as(model)))
        return _merged(model, pages)


class AsyncRunner:
    def __init__(self, transport: AsyncTransport) -> None:
        self.transport = transport

    async def run(self, request: Request, parse: Callable[[httpx.Response], T]) -> T:
        return parse(await self.transport.send(request))

    async def run_all(self, request: Request, model: type[Model]) -> Model:
        pages = [await self.run(_page(request, None), _as(model))]
        while pages[-1].next_cursor is not None:
            pages.append(await self.run(_page(request, pages[-1].next_cursor), _as(model)))
        return _merged(model, pages)


def _filters(**values: Any) -> dict[str, Any]:
    """The query string of a list: the filters that were given, with the largest page size
    (a list value is sent as a repeated parameter: ``tag=a&tag=b``)."""
    return {"limit": LIST_PAGE_SIZE, **{key: value for key, value in values.items() if value not in (None, [], ())}}


class _Unset:
    """Not given (``None`` means "clear it" in a PATCH body)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def _labels(name: Any = UNSET, tags: Any = UNSET, description: Any = UNSET) -> dict[str, Any]:
    """The name / tags / description members that were given (a creation body's or a PATCH's)."""
    given = {"name": name, "tags": None if tags is None else (list(tags) if tags is not UNSET else UNSET),
             "description": description}
    return {key: value for key, value in given.items() if value is not UNSET}


def _creation_labels(name: str | None, tags: Any, description: str | None) -> dict[str, Any]:
    """In a creation body: only what was given (None: not given)."""
    return {key: value for key, value in _labels(name, tags, description).items() if value not in (None, [])}


def _patch(path: str, model: type[Model], name: Any, tags: Any, description: Any) -> tuple[Request, Any]:
    """``PATCH {path}`` with ``{name?, tags?, description?}``: ``UNSET`` leaves a member as it is, None clears it."""
    return Request("PATCH", path, json=_labels(name, tags, description)), _as(model)


def _rows(X: Any) -> list[list[float]]:
    """A 2-D list of floats from a numpy array, a pandas DataFrame or nested lists (one row: a vector)."""
    values = X.to_numpy() if hasattr(X, "to_numpy") else X
    array = np.asarray(values, dtype=np.float64)
    return (array.reshape(1, -1) if array.ndim == 1 else array).tolist()


# ---- datasets ---------------------------------------------------------------------------------------
def upload_request(source: Any, target: str | None, name: str | None, task: str | None,
                   tags: Any = None, description: str | None = None) -> Request:
    """A file path (CSV, .npz, Parquet, JSON), a pandas DataFrame (with ``target``), or ``(X, y)``.

    ``tags`` go in a form upload as one comma-separated field (a tag holds no comma)."""
    labels = _creation_labels(None, tags, description)
    fields = {k: v for k, v in {"target": target, "name": name, "task": task}.items() if v is not None}
    fields.update({k: ",".join(v) if k == "tags" else v for k, v in labels.items()})
    if isinstance(source, tuple):
        X, y = source
        body = {"name": name or "dataset", "inputs": np.asarray(X).tolist(), "targets": np.asarray(y).tolist()}
        if task:
            body["task"] = task
        body.update(labels)
        return Request("POST", "/v1/datasets", json=body)
    if hasattr(source, "to_csv"):  # a pandas DataFrame: sent as CSV, its column names kept
        if target is None:
            raise ValueError("a DataFrame upload needs target= (the label column)")
        content = source.to_csv(index=False).encode()
        return Request("POST", "/v1/datasets", files={"file": (f"{name or 'dataframe'}.csv", content, "text/csv")},
                       data=fields)
    path = Path(source)
    return Request("POST", "/v1/datasets", files={"file": (path.name, path.read_bytes())}, data=fields)


def reference_request(uri: str, target: str, features: list[str] | None, task: str | None, name: str | None,
                      tags: Any = None, description: str | None = None) -> Request:
    """``POST /v1/datasets`` with a ``uri``: Parquet objects registered where they lie, not uploaded."""
    body: dict[str, Any] = {"uri": uri, "target": target, **_creation_labels(name, tags, description)}
    body.update({k: v for k, v in {"features": features, "task": task}.items() if v is not None})
    return Request("POST", "/v1/datasets", json=body)


class Datasets:
    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def upload(self, source: Any, *, target: str | None = None, name: str | None = None, task: str | None = None,
               tags: list[str] | None = None, description: str | None = None):
        """Upload a file, a DataFrame or ``(X, y)``; the stored dataset (``DatasetOut``)."""
        return self._runner.run(upload_request(source, target, name, task, tags, description), _as(DatasetOut))

    def register(self, uri: str, *, target: str, features: list[str] | None = None, task: str | None = None,
                 name: str | None = None, tags: list[str] | None = None, description: str | None = None):
        """Register Parquet objects where they lie as a dataset, without uploading them (``DatasetOut``).

        ``uri``: ``s3://bucket/prefix/*.parquet``, ``gs://…``, ``az://…`` or ``file:///shared/…`` (a
        directory the service shares); read with the tenant's own keys when it stored some
        (:meth:`Storage.set_s3_credentials`), else the service's.
        """
        return self._runner.run(reference_request(uri, target, features, task, name, tags, description),
                                _as(DatasetOut))

    def list(self, *, name: str | None = None, task: str | None = None, tags: list[str] | None = None):
        """Every dataset of the tenant (all pages), newest first; ``name`` / ``task`` / ``tags`` (every one) filter."""
        params = _filters(name=name, task=task, tag=tags)
        return self._runner.run_all(Request("GET", "/v1/datasets", params=params), DatasetList)

    def update(self, dataset_id: str, *, name: Any = UNSET, tags: Any = UNSET, description: Any = UNSET):
        """Rename, retag or describe a dataset (``PATCH``): members left out stay, None clears one."""
        return self._runner.run(*_patch(f"/v1/datasets/{quote(dataset_id, safe='')}", DatasetOut, name, tags,
                                        description))

    def get(self, dataset_id: str):
        return self._runner.run(Request("GET", f"/v1/datasets/{quote(dataset_id, safe='')}"), _as(DatasetOut))

    def delete(self, dataset_id: str):
        return self._runner.run(Request("DELETE", f"/v1/datasets/{quote(dataset_id, safe='')}"), _nothing)


# ---- jobs -------------------------------------------------------------------------------------------
def _config_json(config: TrainingConfig | dict | None) -> dict:
    if config is None:
        return {}
    if isinstance(config, TrainingConfig):
        return config.to_json()
    return TrainingConfig.model_validate(config).to_json()  # checked here: a typo fails before any request


def _base_config_json(config: TrainingConfig | dict) -> dict:
    """A sweep's base as the fields it was given (checked here like ``_config_json``): spelled out, every
    field would count as chosen, and a trial's ``robustness.target_radius`` could not fill the rest."""
    return TrainingConfig.model_validate(config).explicit_json()


def metrics_frame(metrics: JobMetrics) -> Any:
    """The per-epoch history as a pandas DataFrame: one row per epoch, loss terms and metrics flattened."""
    import pandas as pd

    rows = []
    for entry in metrics.history:
        report = entry.model_dump()
        row = {k: v for k, v in report.items() if not isinstance(v, dict | list)}
        for group in ("losses", "train_metrics", "validation_metrics"):
            prefix = {"losses": "loss_", "train_metrics": "train_", "validation_metrics": "val_"}[group]
            row.update({prefix + k: v for k, v in (report.get(group) or {}).items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("epoch") if rows else pd.DataFrame()


class _Handle:
    """What a job and a sweep handle share: their last known state (``info``), kept fresh from the
    answers of ``GET {collection}/{id}`` and ``POST {collection}/{id}/cancel``."""

    #: the resource's collection path and the contract its answers are read as (set by each handle)
    collection: str
    contract: type[BaseModel]

    def __init__(self, runner: Any, info: Any) -> None:
        self._runner, self.info = runner, info

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, status={self.status!r})"

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def status(self) -> Any:
        return self.info.status

    def _keep(self, response: httpx.Response) -> Any:
        self.info = self.contract.model_validate_json(response.content)
        return self

    def refresh(self):
        return self._runner.run(Request("GET", f"{self.collection}/{self.id}"), self._keep)

    def _cancel(self):
        return self._runner.run(Request("POST", f"{self.collection}/{self.id}/cancel"), self._keep)


class Job(_Handle):
    """A training job: ``info`` is its last known state (``JobOut``; just after submit, ``JobAccepted``)."""

    collection, contract = "/v1/jobs", JobOut
    info: JobOut | JobAccepted

    @property
    def status(self) -> JobStatus:
        return self.info.status

    @property
    def model_id(self) -> str | None:
        return getattr(self.info, "model_id", None)

    def cancel(self):
        """Queued: cancelled at once; running: stops within one epoch."""
        return self._cancel()

    def metrics(self):
        """The per-epoch history as a pandas DataFrame (index: epoch)."""
        return self._runner.run(Request("GET", f"/v1/jobs/{self.id}/metrics"),
                                lambda r: metrics_frame(JobMetrics.model_validate_json(r.content)))

    def metrics_history(self):
        """The per-epoch history as the service stores it: a list of dicts, one per epoch (no pandas)."""
        def rows(response: httpx.Response) -> list[dict]:
            return [row.model_dump() for row in JobMetrics.model_validate_json(response.content).history]

        return self._runner.run(Request("GET", f"/v1/jobs/{self.id}/metrics"), rows)

    def deliveries(self) -> DeliveryList:
        return self._runner.run(Request("GET", f"/v1/jobs/{self.id}/deliveries"), _as(DeliveryList))

    def events(self, after: int = 0) -> Iterator[JobEvent]:
        """The job's events from the server (SSE) until its final one, reconnecting after network errors
        with ``Last-Event-ID``, so none is missed and none repeated."""
        transport: SyncTransport = self._runner.transport
        while True:
            request = Request("GET", f"/v1/jobs/{self.id}/events", headers={"Last-Event-ID": str(after)})
            try:
                response = transport.send(request, stream=True)
                try:
                    for message in sse.parse(response.iter_lines()):
                        event = JobEvent.model_validate_json(message.data)
                        after = event.seq
                        yield event
                        if event.type == "final":
                            return
                finally:
                    response.close()
            except RETRY_ERRORS:
                time.sleep(transport.retry.backoff_s)
                continue
            if self.refresh().status in TERMINAL_STATES:
                return  # the stream ended without a final event (a job older than the event log)

    def events_so_far(self) -> list[JobEvent]:
        """The events stored up to now, without waiting for more (the stream, read in one poll)."""
        transport: SyncTransport = self._runner.transport
        request = Request("GET", f"/v1/jobs/{self.id}/events", params={"until_now": "true"})
        response = transport.send(request, stream=True)
        try:
            return [JobEvent.model_validate_json(m.data) for m in sse.parse(response.iter_lines())]
        finally:
            response.close()

    def wait(self, progress: bool = False, *, raise_on_failure: bool = True) -> Job:
        """Follow the job's events until it ends; ``progress=True`` draws a live progress bar.

        Raises :class:`JobFailedError` when it ends failed or cancelled (unless ``raise_on_failure=False``).
        """
        view = _progress_view(self, progress)
        with view:
            for event in self.events():
                view.update(event)
        self.refresh()
        return _finished(self, raise_on_failure)

    def model(self) -> ModelHandle:
        if self.model_id is None:
            raise LipSplineError(f"job {self.id} has no model (status {self.status})")
        return Models(self._runner).get(self.model_id)


def _finished(job: Job, raise_on_failure: bool) -> Job:
    if raise_on_failure and job.status != JobStatus.succeeded:
        error = getattr(job.info, "error", None) or "no error recorded"
        raise JobFailedError(f"job {job.id} {job.status}: {error}", job.info)
    return job


class _NoView:
    def __enter__(self) -> _NoView:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, event: JobEvent) -> None:
        return None


def _progress_view(job: Job, progress: bool) -> Any:
    if not progress:
        return _NoView()
    from lipspline_client.progress import JobProgress

    progress = getattr(job.info, "progress", None)  # a JobProgress once refreshed; absent on a JobAccepted
    return JobProgress(job.id, getattr(progress, "epochs", None))


class AsyncJob(Job):
    """A :class:`Job` of the :class:`~lipspline_client.AsyncClient`: every method is awaited."""

    async def events(self, after: int = 0) -> AsyncIterator[JobEvent]:  # type: ignore[override]
        import asyncio

        transport: AsyncTransport = self._runner.transport
        while True:
            request = Request("GET", f"/v1/jobs/{self.id}/events", headers={"Last-Event-ID": str(after)})
            try:
                response = await transport.send(request, stream=True)
                try:
                    async for message in sse.aparse(response.aiter_lines()):
                        event = JobEvent.model_validate_json(message.data)
                        after = event.seq
                        yield event
                        if event.type == "final":
                            return
                finally:
                    await response.aclose()
            except RETRY_ERRORS:
                await asyncio.sleep(transport.retry.backoff_s)
                continue
            if (await self.refresh()).status in TERMINAL_STATES:
                return

    async def wait(self, progress: bool = False, *, raise_on_failure: bool = True) -> AsyncJob:  # type: ignore[override]
        view = _progress_view(self, progress)
        with view:
            async for event in self.events():
                view.update(event)
        await self.refresh()
        return _finished(self, raise_on_failure)  # type: ignore[return-value]

    async def model(self) -> AsyncModelHandle:  # type: ignore[override]
        if self.model_id is None:
            raise LipSplineError(f"job {self.id} has no model (status {self.status})")
        return await Models(self._runner, AsyncModelHandle).get(self.model_id)


class Jobs:
    def __init__(self, runner: Any, job_class: type[Job] = Job) -> None:
        self._runner, self._job = runner, job_class

    def submit(self, dataset: str | DatasetOut, config: TrainingConfig | dict | None = None, *,
               notify_url: str | None = None, register_as: str | None = None, name: str | None = None,
               tags: list[str] | None = None, description: str | None = None):
        """Submit a training job (202 at once); the :class:`Job`, queued. ``register_as``: a registered
        model's name; the job's model becomes its next version when the job succeeds."""
        dataset_id = dataset.id if isinstance(dataset, DatasetOut) else dataset
        body: dict[str, Any] = {"dataset_id": dataset_id, "config": _config_json(config),
                                **_creation_labels(name, tags, description)}
        if notify_url is not None:
            body["notify_url"] = notify_url
        if register_as is not None:
            body["register_as"] = register_as
        # the 202 holds the id and status; refresh() (or wait()) reads the rest
        accepted = _as(JobAccepted)
        return self._runner.run(Request("POST", "/v1/jobs", json=body), lambda r: self._job(self._runner, accepted(r)))

    def get(self, job_id: str):
        return self._runner.run(Request("GET", f"/v1/jobs/{quote(job_id, safe='')}"),
                                lambda r: self._job(self._runner, JobOut.model_validate_json(r.content)))

    def list(self, status: str | None = None, *, dataset_id: str | None = None, name: str | None = None,
             tags: list[str] | None = None):
        """Every job of the tenant (all pages), newest first; ``status`` / ``dataset_id`` / ``name`` / ``tags``
        (every one) filter."""
        params = _filters(status=status or None, dataset_id=dataset_id, name=name, tag=tags)
        return self._runner.run_all(Request("GET", "/v1/jobs", params=params), JobList)

    def update(self, job_id: str, *, name: Any = UNSET, tags: Any = UNSET, description: Any = UNSET):
        """Rename, retag or describe a job (``PATCH``): members left out stay, None clears one; the ``JobOut``."""
        return self._runner.run(*_patch(f"/v1/jobs/{quote(job_id, safe='')}", JobOut, name, tags, description))


# ---- models -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """A prediction with its certificate, as numpy arrays (see the README's "Certificate fields").

    ``lipschitz_bound``: proven l2 bound of input -> outputs for the whole served map;
    ``rounding_bound``: per input, the proven floating-point error of these outputs;
    ``certified_radius``: per input (classifiers), the l2 radius in which the label cannot change;
    ``output_bounds`` (with ``epsilon``): per input, how far the outputs can move if it moves by epsilon.
    """

    predictions: np.ndarray
    outputs: np.ndarray
    lipschitz_bound: float
    rounding_bound: np.ndarray
    certified_radius: np.ndarray | None
    output_bound: float | None
    output_bounds: np.ndarray | None
    epsilon: float | None
    response: PredictResponse
    #: which model answered: its id, and the registered name and version when it was reached through one
    model_id: str | None = None
    registered_name: str | None = None
    version: int | None = None

    @classmethod
    def from_response(cls, response: httpx.Response, fallback_model_id: str | None = None) -> Prediction:
        body = PredictResponse.model_validate_json(response.content)

        def maybe(values: list[float] | None) -> np.ndarray | None:
            return None if values is None else np.asarray(values, dtype=np.float64)

        answered = answered_by(response)
        return cls(np.asarray(body.predictions), np.asarray(body.outputs, dtype=np.float64), body.lipschitz_bound,
                   np.asarray(body.rounding_bound, dtype=np.float64), maybe(body.certified_radius),
                   body.output_bound, maybe(body.output_bounds), body.epsilon, body,
                   answered["model_id"] or fallback_model_id, answered["registered_name"],
                   answered["version"])


def answered_by(response: httpx.Response) -> dict[str, Any]:
    """Which model answered a predict call: ``model_id``, ``registered_name``, ``version`` from the response's
    body, else its ``X-LipSpline-Model-*`` headers; None for what neither says (an older service)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("x-lipspline-model")}

    def header(*suffixes: str) -> str | None:
        return next((headers[f"x-lipspline-model{s}"] for s in suffixes if f"x-lipspline-model{s}" in headers), None)

    model_id = body.get("model_id") or header("-id", "")
    name = body.get("registered_name") or header("-name", "-registered-name")
    version = body.get("version") if body.get("version") is not None else header("-version")
    try:
        version = int(version) if version is not None else None
    except (TypeError, ValueError):
        version = None
    return {"model_id": model_id, "registered_name": name, "version": version}


def _write(path: Path | None) -> Callable[[httpx.Response], bytes | Path]:
    def write(response: httpx.Response) -> bytes | Path:
        if path is None:
            return response.content
        path.write_bytes(response.content)
        return path

    return write


def model_path(ref: str) -> str:
    """``/v1/models/{ref}`` with the reference as one path segment: an id, ``name``, ``name@alias`` or
    ``name/versions/N`` (its ``/`` sent as ``%2F``, its ``@`` as ``%40``; the service decodes them)."""
    return f"/v1/models/{quote(ref, safe='')}"


class ModelHandle:
    """A trained model: ``info`` (``ModelOut``: metrics, certificate summary, sparsity) and its calls.

    ``ref`` is the reference it was fetched by (an id, ``name@alias``, ``name/versions/N``): ``predict``
    goes through it, so a prediction through an alias is answered by the version the alias names at
    that moment, and says which (``Prediction.model_id``, ``registered_name``, ``version``).
    """

    def __init__(self, runner: Any, info: ModelOut, ref: str | None = None) -> None:
        self._runner, self.info = runner, info
        self.ref = ref or info.id

    def __repr__(self) -> str:
        return f"Model(id={self.id!r}, task={self.info.task!r}, lipschitz={self.info.lipschitz.certified})"

    @property
    def id(self) -> str:
        return self.info.id

    def predict(self, X: Any, epsilon: float | None = None, local_ball: float | None = None):
        """Outputs, predictions and the certificate for each row of ``X`` (:class:`Prediction`).

        ``local_ball``: also try a local proof in that l2 ball around each row; a row's
        ``certified_radius`` is then the larger of the global and the local radius
        (``response.radius_source`` says which). Slower: one local bound per row.
        """
        body: dict[str, Any] = {"inputs": _rows(X)}
        if epsilon is not None:
            body["epsilon"] = epsilon
        if local_ball is not None:
            body["local_ball"] = local_ball
        return self._runner.run(Request("POST", f"{model_path(self.ref)}/predict", json=body),
                                lambda r: Prediction.from_response(r, self.id))

    def certify(self, X: Any = None, epsilon: float = 0.1, norm: Literal["l2", "linf"] = "l2"):
        """Global bounds, and a local bound and radius (at most ``epsilon``) around each row of ``X``."""
        body: dict[str, Any] = {"epsilon": epsilon, "norm": norm}
        if X is not None:
            body["inputs"] = _rows(X)
        return self._runner.run(Request("POST", f"/v1/models/{self.id}/certify", json=body), _as(CertifyResponse))

    def download(self, path: str | Path | None = None, format: Literal["zip", "onnx"] = "zip"):  # noqa: A002
        """The model file (``zip``: model.json + safetensors; ``onnx``): written to ``path``, or returned as bytes."""
        request = Request("GET", f"/v1/models/{self.id}/download", params={"format": format})
        return self._runner.run(request, _write(None if path is None else Path(path)))


class AsyncModelHandle(ModelHandle):
    """A :class:`ModelHandle` of the async client: ``predict``, ``certify`` and ``download`` are awaited."""


class Models:
    def __init__(self, runner: Any, handle: type[ModelHandle] = ModelHandle) -> None:
        self._runner, self._handle = runner, handle

    def get(self, ref: str):
        """A model by reference: its id, a registered ``name`` (its ``production`` alias, else its latest
        version), ``name@alias`` or
        ``name/versions/N`` (sent URL-encoded as one path segment, resolved by the service)."""
        model = _as(ModelOut)
        return self._runner.run(Request("GET", model_path(ref)),
                                lambda r: self._handle(self._runner, model(r), ref))

    def list(self, *, dataset_id: str | None = None, task: str | None = None, name: str | None = None,
             tags: list[str] | None = None):
        """Every model of the tenant (all pages), newest first; ``dataset_id`` / ``task`` / ``name`` / ``tags``
        (every one) filter."""
        params = _filters(dataset_id=dataset_id, task=task, name=name, tag=tags)
        return self._runner.run_all(Request("GET", "/v1/models", params=params), ModelList)

    def update(self, ref: str, *, name: Any = UNSET, tags: Any = UNSET, description: Any = UNSET):
        """Rename, retag or describe a model (``PATCH``): members left out stay, None clears one; the ``ModelOut``."""
        return self._runner.run(*_patch(model_path(ref), ModelOut, name, tags, description))


# ---- sweeps -----------------------------------------------------------------------------------------
#: a sweep's selection rule, as the service takes it (``select`` of ``SweepCreate``)
SelectRule = SelectMaxAccuracy | SelectMaxCertifiedAccuracy | SelectKnee
#: what a space gives one config path: the values to try, or a range (``RangeSpec`` or its dict)
SpaceValues = list[Any] | RangeSpec | dict[str, Any]


def _given(value: Any) -> Any:
    """A contract model as JSON without its empty members (the service fills in its defaults); else as is."""
    return value.model_dump(mode="json", exclude_none=True) if isinstance(value, BaseModel) else value


def sweep_request(dataset: str | DatasetOut, base_config: TrainingConfig | dict | None, space: dict[str, SpaceValues],
                  strategy: str | None, budget: Budget | dict, **options: Any) -> Request:
    """``POST /v1/sweeps`` with only the members the caller gave (``options``: the other ``SweepCreate``
    members, None meaning "not given"), its shape checked against ``SweepCreate`` before anything is sent.

    Why check here: a typo in a rule name or a range fails at once, like ``_config_json`` does for a
    config, instead of as a 422 after the round trip. What only the engine knows (is ``spline.knots`` a
    config path, is the value in its field's range) is still the service's 422, naming the path.
    """
    members = {"base_config": None if base_config is None else _base_config_json(base_config),
               "strategy": strategy, "budget": budget, **options}
    body: dict[str, Any] = {
        "dataset_id": dataset.id if isinstance(dataset, DatasetOut) else dataset,
        "space": {path: _given(values) for path, values in space.items()},
        **{name: _given(value) for name, value in members.items() if value is not None},
    }
    checked = SweepCreate.model_validate(body)
    unbounded = [path for path, values in checked.space.items()
                 if isinstance(values, RangeSpec) and values.count is None]
    if checked.strategy == "grid" and unbounded:
        raise ValueError(f"space: {', '.join(unbounded)} is a range without a count, which makes the grid "
                         "unbounded: give it a count (grid points), or strategy='random' or 'halving' "
                         "(budget.max_trials draws)")
    return Request("POST", "/v1/sweeps", json=body)


def trials_frame(sweep: SweepOut) -> Any:
    """A sweep's trials as a pandas DataFrame, one row per trial (index: ``trial``).

    Columns: one per swept config path (``objective.lambda``; always dotted, so never equal to the
    others), then ``status`` (``stopped`` when halving stopped it), ``job_status``, ``epochs``,
    ``stopped_at_epoch``, ``score`` (validation accuracy, or -RMSE), ``certified_lipschitz``,
    ``model_id``, ``job_id``, ``worker_host``, and three flags: ``on_lipschitz_front``,
    ``on_certified_accuracy_front`` and ``selected`` (all False until the sweep has finished).
    """
    import pandas as pd

    front = sweep.front
    lipschitz_front = {point.trial for point in front.lipschitz} if front else set()
    robust_front = {point.trial for point in front.certified_accuracy} if front else set()
    selected_trial = sweep.selected.trial if sweep.selected else None
    rows = [{"trial": t.trial, **t.params, "status": t.status, "job_status": t.job_status, "epochs": t.epochs,
             "stopped_at_epoch": t.stopped_at_epoch, "score": t.score, "certified_lipschitz": t.certified_lipschitz,
             "model_id": t.model_id, "job_id": t.job_id, "worker_host": t.worker_host,
             "on_lipschitz_front": t.trial in lipschitz_front, "on_certified_accuracy_front": t.trial in robust_front,
             "selected": t.trial == selected_trial} for t in sweep.trials]
    return pd.DataFrame(rows).set_index("trial") if rows else pd.DataFrame()


def _selected_model_id(sweep: Sweep) -> str:
    """The selected model's id, or a LipSplineError that says why there is none (the sweep's ``note``)."""
    selected = getattr(sweep.info, "selected", None)
    if selected is not None and selected.model_id is not None:
        return selected.model_id
    if sweep.status == "running":
        why = "it is still running (wait() for it)"
    else:
        why = getattr(sweep.info, "note", None) or "no reason recorded"
    raise LipSplineError(f"sweep {sweep.id} ({sweep.status}) selected no model: {why}")


def _deadline(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else time.monotonic() + timeout_s


def _still_running(sweep: Sweep, deadline: float | None) -> bool:
    """Whether to poll again; past the deadline a LipSplineError (the sweep itself runs on)."""
    if sweep.status != "running":
        return False
    if deadline is not None and time.monotonic() >= deadline:
        progress = sweep.info.progress if isinstance(sweep.info, SweepOut) else None
        done = f": {progress.succeeded}/{progress.planned} trials succeeded" if progress else ""
        raise LipSplineError(f"sweep {sweep.id} still running when the wait timed out{done}")
    return True


class Sweep(_Handle):
    """A sweep: ``info`` is its last known state (``SweepOut``; just after create, ``SweepAccepted``).

    The service has no event stream for sweeps, so :meth:`wait` polls ``GET /v1/sweeps/{id}``.
    """

    collection, contract = "/v1/sweeps", SweepOut
    info: SweepOut | SweepAccepted

    @property
    def status(self) -> SweepStatus | str:
        return self.info.status

    def cancel(self):
        """Launch no more trials and cancel the active ones (running ones stop within one epoch); a
        finished sweep is a 409, a cancelled one is answered as it is."""
        return self._cancel()

    def wait(self, poll_s: float = 2.0, timeout_s: float | None = None, *, progress: bool = False) -> Sweep:
        """Poll until the sweep is no longer ``running`` (succeeded, failed or cancelled: read
        ``status`` and ``note``; nothing is raised for them). ``timeout_s``: give up with a
        :class:`LipSplineError` after about that long (checked between polls). ``progress=True``
        draws a live line: trials done/planned, how many run, the current front's size."""
        deadline = _deadline(timeout_s)
        with _sweep_view(self, progress) as view:
            while _still_running(self.refresh(), deadline):
                view.update(self.info)
                time.sleep(poll_s)
            view.update(self.info)
        return self

    def selected_model(self) -> ModelHandle:
        """The model the sweep's rule selected (from the last known state: ``wait()`` or ``refresh()``
        first); a :class:`LipSplineError` saying why when there is none."""
        return Models(self._runner).get(_selected_model_id(self))

    def trials_frame(self):
        """The trials as they are now (one request), as a pandas DataFrame: see :func:`trials_frame`."""
        return self._runner.run(Request("GET", f"/v1/sweeps/{self.id}"), lambda r: trials_frame(self._keep(r).info))


def _sweep_view(sweep: Sweep, progress: bool) -> Any:
    if not progress:
        return _NoView()
    from lipspline_client.progress import SweepProgress

    return SweepProgress(sweep.id, getattr(sweep.info, "trials", None) if isinstance(sweep.info, SweepAccepted)
                         else sweep.info.progress.planned)


class AsyncSweep(Sweep):
    """A :class:`Sweep` of the :class:`~lipspline_client.AsyncClient`: every method is awaited."""

    async def wait(self, poll_s: float = 2.0, timeout_s: float | None = None, *,  # type: ignore[override]
                   progress: bool = False) -> AsyncSweep:
        import asyncio

        deadline = _deadline(timeout_s)
        with _sweep_view(self, progress) as view:
            while _still_running(await self.refresh(), deadline):
                view.update(self.info)
                await asyncio.sleep(poll_s)
            view.update(self.info)
        return self

    async def selected_model(self) -> AsyncModelHandle:  # type: ignore[override]
        return await Models(self._runner, AsyncModelHandle).get(_selected_model_id(self))


class Sweeps:
    def __init__(self, runner: Any, sweep_class: type[Sweep] = Sweep) -> None:
        self._runner, self._sweep = runner, sweep_class

    def _handle(self, contract: type[SweepOut | SweepAccepted]) -> Callable[[httpx.Response], Sweep]:
        parse = _as(contract)
        return lambda response: self._sweep(self._runner, parse(response))

    def create(self, dataset: str | DatasetOut, base_config: TrainingConfig | dict | None = None, *,
               space: dict[str, SpaceValues], strategy: Literal["grid", "random", "halving"] | None = None,
               budget: Budget | dict, seed: int | None = None, halving: HalvingSpec | dict | None = None,
               select: SelectRule | dict | None = None, front_radius: float | None = None,
               register_as: str | None = None, name: str | None = None, tags: list[str] | None = None,
               description: str | None = None):
        """Start a sweep (202 at once): trials are ordinary jobs, launched ``budget.max_concurrent`` at a time.

        ``space``: per config path (``objective.lambda``) a list of values or a range
        (``RangeSpec``: ``low``, ``high``, ``scale``, ``count``). ``strategy``: unset, the service's
        default ``grid`` (every combination; a range then needs a ``count``); ``"random"`` draws
        ``max_trials`` points, ``"halving"`` also stops the weak ones early. ``budget`` (``max_trials``,
        ``max_concurrent``) has no default: the service requires it. Unset members keep the
        service's defaults (``select``: the most accurate model). Sent with an Idempotency-Key, so
        a retried create starts one sweep. The :class:`Sweep`, running.
        """
        request = sweep_request(dataset, base_config, space, strategy, budget, seed=seed, halving=halving,
                                select=select, front_radius=front_radius, register_as=register_as,
                                **_creation_labels(name, tags, description))
        return self._runner.run(request, self._handle(SweepAccepted))  # refresh() or wait() reads the rest

    def get(self, sweep_id: str):
        return self._runner.run(Request("GET", f"/v1/sweeps/{quote(sweep_id, safe='')}"), self._handle(SweepOut))

    def list(self, status: SweepStatus | None = None, *, dataset_id: str | None = None, name: str | None = None,
             tags: list[str] | None = None):
        """Every sweep of the tenant (all pages), newest first; ``status`` / ``dataset_id`` / ``name`` / ``tags``
        (every one) filter."""
        params = _filters(status=status or None, dataset_id=dataset_id, name=name, tag=tags)
        return self._runner.run_all(Request("GET", "/v1/sweeps", params=params), SweepList)

    def update(self, sweep_id: str, *, name: Any = UNSET, tags: Any = UNSET, description: Any = UNSET):
        """Rename, retag or describe a sweep (``PATCH``): members left out stay, None clears one; the ``SweepOut``."""
        return self._runner.run(*_patch(f"/v1/sweeps/{quote(sweep_id, safe='')}", SweepOut, name, tags, description))


# ---- webhooks ---------------------------------------------------------------------------------------
class Webhooks:
    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def create_secret(self):
        """Create (or rotate) the tenant's signing secret; the answer is the only time it is shown."""
        return self._runner.run(Request("POST", "/v1/webhooks/secret"), _as(WebhookSecretOut))

    def register(self, url: str):
        return self._runner.run(Request("POST", "/v1/webhooks", json={"url": url}), _as(WebhookEndpointOut))

    def list(self):
        """Every registered endpoint (all pages), newest first."""
        return self._runner.run_all(Request("GET", "/v1/webhooks", params=_filters()), WebhookEndpointList)

    def delete(self, endpoint_id: str):
        return self._runner.run(Request("DELETE", f"/v1/webhooks/{quote(endpoint_id, safe='')}"), _nothing)

    def deliveries(self, job_id: str):
        return self._runner.run(Request("GET", f"/v1/jobs/{quote(job_id, safe='')}/deliveries"), _as(DeliveryList))


class Storage:
    """The tenant's own object-store keys for its ``s3://`` dataset URIs (``/v1/storage/credentials``)."""

    ROUTE = "/v1/storage/credentials"

    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def set_s3_credentials(self, access_key_id: str, secret_access_key: str, *, session_token: str | None = None,
                           region: str | None = None):
        """Store (or replace) them; sealed by the service and never shown again (``StorageCredentialsOut``)."""
        keys = {"access_key_id": access_key_id, "secret_access_key": secret_access_key}
        keys.update({k: v for k, v in {"session_token": session_token, "region": region}.items() if v is not None})
        return self._runner.run(Request("PUT", self.ROUTE, json={"s3": keys}), _as(StorageCredentialsOut))

    def credentials(self):
        """Which keys are stored (the key id's last four characters), never the keys; 404 when none are."""
        return self._runner.run(Request("GET", self.ROUTE), _as(StorageCredentialsOut))

    def delete_credentials(self):
        """Forget them: the tenant's URIs are read with the service's credentials again."""
        return self._runner.run(Request("DELETE", self.ROUTE), _nothing)


# ---- registry ---------------------------------------------------------------------------------------
def registry_path(name: str, *rest: str | int) -> str:
    """``/v1/registered-models/{name}/...``, each segment URL-encoded."""
    return "/".join(["/v1/registered-models", *(quote(str(part), safe="") for part in (name, *rest))])


def _model_id(model: str | ModelHandle | ModelOut) -> str:
    return model if isinstance(model, str) else model.id


class Registry:
    """The model registry (``/v1/registered-models``): names, their numbered versions, aliases that
    name one version each (``production``, ``staging``) and the history of every alias move.

    A registered model is used anywhere a model is by reference: ``client.models.get("circle@production")``,
    ``"circle"`` (its ``production`` alias, else its latest version) or ``"circle/versions/2"``.
    """

    def __init__(self, runner: Any) -> None:
        self._runner = runner

    # names
    def list(self, *, name: str | None = None):
        """Every registered model of the tenant (all pages), newest first; ``name`` filters."""
        params = _filters(name=name)
        return self._runner.run_all(Request("GET", "/v1/registered-models", params=params), RegisteredModelList)

    def get(self, name: str):
        """One registered model: its latest version number and its aliases (``RegisteredModelOut``)."""
        return self._runner.run(Request("GET", registry_path(name)), _as(RegisteredModelOut))

    def create(self, name: str, description: str | None = None):
        """A new, empty name (409 ``name-taken`` when it exists); versions are added with :meth:`register`."""
        body = {"name": name, **({"description": description} if description is not None else {})}
        return self._runner.run(Request("POST", "/v1/registered-models", json=body), _as(RegisteredModelOut))

    def delete(self, name: str, *, force: bool = False):
        """Remove the name, its versions, aliases and their history (the models stay); ``force`` even while
        an alias points into it (409 ``aliased`` otherwise)."""
        params = {"force": "true"} if force else None
        return self._runner.run(Request("DELETE", registry_path(name), params=params), _nothing)

    # versions
    def register(self, name: str, model: str | ModelHandle | ModelOut):
        """Add a trained model (its id, or a model handle) as the name's next version (``VersionOut``)."""
        request = Request("POST", registry_path(name, "versions"), json={"model_id": _model_id(model)})
        return self._runner.run(request, _as(VersionOut))

    def versions(self, name: str):
        """The name's versions (all pages), newest (highest number) first, with their lineage."""
        return self._runner.run_all(Request("GET", registry_path(name, "versions"), params=_filters()), VersionList)

    def version(self, name: str, version: int):
        return self._runner.run(Request("GET", registry_path(name, "versions", int(version))), _as(VersionOut))

    # aliases
    def aliases(self, name: str):
        """Every alias of the name, with the version and model it names now (``AliasList``)."""
        return self._runner.run(Request("GET", registry_path(name, "aliases")), _as(AliasList))

    def set_alias(self, name: str, alias: str, version: int):
        """Point ``alias`` at ``version`` (created, or moved atomically); recorded in :meth:`alias_events`."""
        request = Request("PUT", registry_path(name, "aliases", alias), json={"version": int(version)})
        return self._runner.run(request, _as(AliasOut))

    def delete_alias(self, name: str, alias: str):
        return self._runner.run(Request("DELETE", registry_path(name, "aliases", alias)), _nothing)

    def alias_events(self, name: str, alias: str | None = None):
        """Every alias move under the name, oldest first: who, when, from which version to which."""
        params = {"alias": alias} if alias is not None else None
        return self._runner.run(Request("GET", registry_path(name, "alias-events"), params=params), _as(AliasEventList))
