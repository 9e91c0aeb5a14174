"""The SDK's objects: datasets, jobs (with live progress), models (predict with the certificate), webhooks.

Each call is built once as a :class:`~lipspline.client.transport.Request` plus a function
that turns the answer into a typed ``api_schemas`` model. A *runner* sends it: the sync
client's runner returns the result, the async client's returns an awaitable of it, so the
same resource classes serve :class:`~lipspline.client.Client` and
:class:`~lipspline.client.AsyncClient` (only waiting on a job's events differs).
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
from lipspline.client import sse
from lipspline.client.errors import JobFailedError, LipSplineError
from lipspline.client.transport import RETRY_ERRORS, AsyncTransport, Request, SyncTransport

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
        """Every page of a paginated list, following ``next_cursor`` (service/pagination.py)."""
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
    """The query string of a list: the filters that were given, with the largest page size."""
    return {"limit": LIST_PAGE_SIZE, **{key: value for key, value in values.items() if value is not None}}


def _rows(X: Any) -> list[list[float]]:
    """A 2-D list of floats from a numpy array, a pandas DataFrame or nested lists (one row: a vector)."""
    values = X.to_numpy() if hasattr(X, "to_numpy") else X
    array = np.asarray(values, dtype=np.float64)
    return (array.reshape(1, -1) if array.ndim == 1 else array).tolist()


# ---- datasets ---------------------------------------------------------------------------------------
def upload_request(source: Any, target: str | None, name: str | None, task: str | None) -> Request:
    """A file path (CSV, .npz, Parquet, JSON), a pandas DataFrame (with ``target``), or ``(X, y)``."""
    fields = {k: v for k, v in {"target": target, "name": name, "task": task}.items() if v is not None}
    if isinstance(source, tuple):
        X, y = source
        body = {"name": name or "dataset", "inputs": np.asarray(X).tolist(), "targets": np.asarray(y).tolist()}
        if task:
            body["task"] = task
        return Request("POST", "/v1/datasets", json=body)
    if hasattr(source, "to_csv"):  # a pandas DataFrame: sent as CSV, its column names kept
        if target is None:
            raise ValueError("a DataFrame upload needs target= (the label column)")
        content = source.to_csv(index=False).encode()
        return Request("POST", "/v1/datasets", files={"file": (f"{name or 'dataframe'}.csv", content, "text/csv")},
                       data=fields)  # fmt: skip
    path = Path(source)
    return Request("POST", "/v1/datasets", files={"file": (path.name, path.read_bytes())}, data=fields)


class Datasets:
    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def upload(self, source: Any, *, target: str | None = None, name: str | None = None, task: str | None = None):
        """Upload a file, a DataFrame or ``(X, y)``; the stored dataset (``DatasetOut``)."""
        return self._runner.run(upload_request(source, target, name, task), _as(DatasetOut))

    def list(self, *, name: str | None = None, task: str | None = None):
        """Every dataset of the tenant (all pages), newest first; ``name`` / ``task`` filter."""
        return self._runner.run_all(Request("GET", "/v1/datasets", params=_filters(name=name, task=task)), DatasetList)

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


class Job:
    """A training job: ``info`` is its last known state (``JobOut``; just after submit, ``JobAccepted``)."""

    def __init__(self, runner: Any, info: JobOut | JobAccepted) -> None:
        self._runner, self.info = runner, info

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, status={self.status!r})"

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def status(self) -> JobStatus:
        return self.info.status

    @property
    def model_id(self) -> str | None:
        return getattr(self.info, "model_id", None)

    def _keep(self, response: httpx.Response) -> Job:
        self.info = JobOut.model_validate_json(response.content)
        return self

    def refresh(self):
        return self._runner.run(Request("GET", f"/v1/jobs/{self.id}"), self._keep)

    def cancel(self):
        """Queued: cancelled at once; running: stops within one epoch."""
        return self._runner.run(Request("POST", f"/v1/jobs/{self.id}/cancel"), self._keep)

    def metrics(self):
        """The per-epoch history as a pandas DataFrame (index: epoch)."""
        return self._runner.run(Request("GET", f"/v1/jobs/{self.id}/metrics"),
                                lambda r: metrics_frame(JobMetrics.model_validate_json(r.content)))  # fmt: skip

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
    from lipspline.client.progress import JobProgress

    return JobProgress(job.id, getattr(job.info, "progress", {}).get("epochs"))


class AsyncJob(Job):
    """A :class:`Job` of the :class:`~lipspline.client.AsyncClient`: every method is awaited."""

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
               notify_url: str | None = None):  # fmt: skip
        """Submit a training job (202 at once); the :class:`Job`, queued."""
        dataset_id = dataset.id if isinstance(dataset, DatasetOut) else dataset
        body: dict[str, Any] = {"dataset_id": dataset_id, "config": _config_json(config)}
        if notify_url is not None:
            body["notify_url"] = notify_url
        # the 202 holds the id and status; refresh() (or wait()) reads the rest
        accepted = _as(JobAccepted)
        return self._runner.run(Request("POST", "/v1/jobs", json=body), lambda r: self._job(self._runner, accepted(r)))

    def get(self, job_id: str):
        return self._runner.run(Request("GET", f"/v1/jobs/{quote(job_id, safe='')}"),
                                lambda r: self._job(self._runner, JobOut.model_validate_json(r.content)))  # fmt: skip

    def list(self, status: str | None = None, *, dataset_id: str | None = None):
        """Every job of the tenant (all pages), newest first; ``status`` / ``dataset_id`` filter."""
        params = _filters(status=status or None, dataset_id=dataset_id)
        return self._runner.run_all(Request("GET", "/v1/jobs", params=params), JobList)


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

    @classmethod
    def from_response(cls, response: httpx.Response) -> Prediction:
        body = PredictResponse.model_validate_json(response.content)

        def maybe(values: list[float] | None) -> np.ndarray | None:
            return None if values is None else np.asarray(values, dtype=np.float64)

        return cls(np.asarray(body.predictions), np.asarray(body.outputs, dtype=np.float64), body.lipschitz_bound,
                   np.asarray(body.rounding_bound, dtype=np.float64), maybe(body.certified_radius),
                   body.output_bound, maybe(body.output_bounds), body.epsilon, body)  # fmt: skip


def _write(path: Path | None) -> Callable[[httpx.Response], bytes | Path]:
    def write(response: httpx.Response) -> bytes | Path:
        if path is None:
            return response.content
        path.write_bytes(response.content)
        return path

    return write


class ModelHandle:
    """A trained model: ``info`` (``ModelOut``: metrics, certificate summary, sparsity) and its calls."""

    def __init__(self, runner: Any, info: ModelOut) -> None:
        self._runner, self.info = runner, info

    def __repr__(self) -> str:
        return f"Model(id={self.id!r}, task={self.info.task!r}, lipschitz={self.info.lipschitz.certified})"

    @property
    def id(self) -> str:
        return self.info.id

    def predict(self, X: Any, epsilon: float | None = None):
        """Outputs, predictions and the certificate for each row of ``X`` (:class:`Prediction`)."""
        body: dict[str, Any] = {"inputs": _rows(X)}
        if epsilon is not None:
            body["epsilon"] = epsilon
        return self._runner.run(Request("POST", f"/v1/models/{self.id}/predict", json=body), Prediction.from_response)

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
        """A model by id (or, once the registry exists, ``name@alias``: the reference is sent URL-encoded)."""
        model = _as(ModelOut)
        return self._runner.run(Request("GET", f"/v1/models/{quote(ref, safe='')}"),
                                lambda r: self._handle(self._runner, model(r)))  # fmt: skip

    def list(self, *, dataset_id: str | None = None, task: str | None = None):
        """Every model of the tenant (all pages), newest first; ``dataset_id`` / ``task`` filter."""
        params = _filters(dataset_id=dataset_id, task=task)
        return self._runner.run_all(Request("GET", "/v1/models", params=params), ModelList)


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
