"""The LipSpline Python SDK: ``Client`` (sync) and ``AsyncClient`` over the v1 HTTP API.

    from lipspline_client import Client
    with Client() as client:                      # LIPSPLINE_URL, LIPSPLINE_API_KEY
        dataset = client.datasets.upload("circle.csv", target="inside")
        job = client.jobs.submit(dataset, {"training": {"epochs": 40}}).wait(progress=True)
        sweep = client.sweeps.create(dataset, space={"objective.lambda": [1e-6, 1e-3]},
                                     budget={"max_trials": 2}).wait()
        sweep.trials_frame(), sweep.selected_model()
        prediction = client.models.get(job.model_id).predict([[0.0, 0.0]], epsilon=0.05)
        prediction.predictions, prediction.certified_radius, prediction.output_bounds
        client.registry.create("circle")                           # a name (409 if it exists)
        client.registry.register("circle", job.model_id)           # its version 1
        client.registry.set_alias("circle", "production", 1)
        client.models.get("circle@production").predict([[0.0, 0.0]])   # also "circle", "circle/versions/1"

Light to import: httpx, numpy, pydantic and the ``api_schemas`` contracts; never torch, and
nothing of the service (``tests/unit/repository/test_layering.py`` and ``tests/routes/test_sdk_routes.py`` check both).
"""

from __future__ import annotations

from typing import Any

from lipspline_client.errors import JobFailedError, LipSplineError
from lipspline_client.resources import (
    AsyncJob,
    AsyncModelHandle,
    AsyncRunner,
    AsyncSweep,
    Datasets,
    Job,
    Jobs,
    ModelHandle,
    Models,
    Prediction,
    Registry,
    Storage,
    Sweep,
    Sweeps,
    SyncRunner,
    Webhooks,
)
from lipspline_client.transport import (
    AsyncTransport,
    RetryPolicy,
    SyncTransport,
    default_api_key,
    default_url,
)
from lipspline_client.webhook_verification import verify_webhook


class Client:
    """The service at ``url`` (default ``$LIPSPLINE_URL``, else http://127.0.0.1:8000), with ``api_key``
    (default ``$LIPSPLINE_API_KEY``, else the key file ``lipspline serve`` wrote in ``$LIPSPLINE_DATA_DIR``)."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout_s: float = 60.0,
                 retry: RetryPolicy | None = None, http: Any = None) -> None:
        self.url = (url or default_url()).rstrip("/")
        self.transport = SyncTransport(self.url, api_key or default_api_key(), timeout_s, retry or RetryPolicy(), http)
        runner = SyncRunner(self.transport)
        self.datasets, self.jobs, self.models = Datasets(runner), Jobs(runner), Models(runner)
        self.sweeps, self.webhooks, self.registry = Sweeps(runner), Webhooks(runner), Registry(runner)
        self.storage = Storage(runner)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()


class AsyncClient:
    """:class:`Client` for asyncio: the same resources, every call awaited."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout_s: float = 60.0,
                 retry: RetryPolicy | None = None, http: Any = None) -> None:
        self.url = (url or default_url()).rstrip("/")
        self.transport = AsyncTransport(self.url, api_key or default_api_key(), timeout_s, retry or RetryPolicy(), http)
        runner = AsyncRunner(self.transport)
        self.datasets, self.jobs = Datasets(runner), Jobs(runner, AsyncJob)
        self.models, self.webhooks = Models(runner, AsyncModelHandle), Webhooks(runner)
        self.sweeps, self.registry = Sweeps(runner, AsyncSweep), Registry(runner)
        self.storage = Storage(runner)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()


__all__ = ["AsyncClient", "AsyncJob", "AsyncSweep", "Client", "Job", "JobFailedError", "LipSplineError",
           "ModelHandle", "Prediction", "Registry", "RetryPolicy", "Sweep", "verify_webhook"]
