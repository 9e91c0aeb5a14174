"""Configurable limits, each refused with its own clear 4xx.

* request bodies: counted on the bytes actually streamed in (a client can lie in
  Content-Length or send chunked), 413 as soon as the limit is passed;
* datasets: rows, features, classes (422 naming the limit);
* jobs: hidden widths, depth, knots, parameter count, epochs (422 naming the config field);
* predict batch size (in the models router); request rate per key (``rate_limit.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from api_schemas import TrainingConfig
from lipspline.data import Dataset
from lipspline.nn.networks import SplineNetwork, output_width
from lipspline.training.config_checks import config_problems
from lipspline_platform.settings import Settings
from service.http.metrics import count_problem
from service.http.problems import PROBLEM_JSON, ProblemError, invalid_field, problem_body

#: room for multipart framing and form fields around an upload of the maximum size
MULTIPART_OVERHEAD = 64 * 1024


def limit_exceeded(field: str, message: str, limit_name: str, limit: int | float, status: int = 422) -> ProblemError:
    return ProblemError(status, "Limit Exceeded", f"{field}: {message}", kind="limit-exceeded",
                        errors=[{"field": field, "message": message}], limit=limit_name, limit_value=limit)


def too_large(limit: int) -> ProblemError:
    return ProblemError(413, "Content Too Large", f"body: the request exceeds the limit of {limit} bytes",
                        kind="content-too-large", limit="max_upload_bytes", limit_value=limit)


class BodySizeLimit:
    """ASGI middleware: 413 when the declared or the streamed body exceeds the limit."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit + MULTIPART_OVERHEAD

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        received = 0
        refused = False

        async def counted_receive() -> dict:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Answer 413 here: whoever reads the body (FastAPI's own parser turns any error
                    # while reading into a 400) gets an exception that stops the request, and
                    # whatever it tries to send after that is dropped by ``guarded_send``.
                    error = too_large(self.limit - MULTIPART_OVERHEAD)
                    if not refused:
                        refused = True
                        await self._refuse(scope, send, error.detail)
                    raise error
            return message

        async def guarded_send(message: dict) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted_receive, guarded_send)

    async def _refuse(self, scope: dict, send: Any, detail: str | None = None) -> None:
        limit = self.limit - MULTIPART_OVERHEAD
        detail = detail or f"body: Content-Length exceeds the limit of {limit} bytes"
        body = json.dumps(problem_body(413, "Content Too Large", detail,
                                       "content-too-large", scope.get("path", ""),
                                       limit="max_upload_bytes", limit_value=limit)).encode()
        headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        count_problem(413, "content-too-large")
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def check_dataset(dataset: Dataset, settings: Settings) -> None:
    if dataset.n_samples > settings.max_rows:
        raise limit_exceeded("file", f"{dataset.n_samples} rows exceed the limit of {settings.max_rows}",
                             "max_rows", settings.max_rows)
    if dataset.n_features > settings.max_features:
        raise limit_exceeded("file", f"{dataset.n_features} features exceed the limit of {settings.max_features}",
                             "max_features", settings.max_features)
    if dataset.classes is not None and len(dataset.classes) > settings.max_classes:
        raise limit_exceeded("file", f"{len(dataset.classes)} classes exceed the limit of {settings.max_classes}",
                             "max_classes", settings.max_classes)


def parameter_count(config: TrainingConfig, n_features: int, n_outputs: int) -> int:
    """Exact parameter count, from a network built on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        network = SplineNetwork(config, n_features, n_outputs)
    return network.parameter_count()


def config_field(path: str) -> str:
    """A job's request field for a config path: ``config.<path>``."""
    return f"config.{path}"


def check_network(
    config: TrainingConfig, dataset_row: Any, settings: Settings, field_of: Callable[[str], str] = config_field
) -> None:
    """422 when the config cannot train on this dataset: a limit exceeded, or a choice its task refuses.

    ``field_of`` names the request field that holds a config path (a sweep's trial: its space or its base).
    """
    problems = config_problems(config, dataset_row.task)
    if problems:
        raise invalid_field(field_of(problems[0].field), problems[0].message)
    arch = config.architecture
    # epochs unset: the step-budget rule plans them, and the worker caps that plan at max_epochs
    epochs = config.training.epochs
    if epochs is not None and epochs > settings.max_epochs:
        raise limit_exceeded(field_of("training.epochs"), f"{epochs} exceeds the limit of {settings.max_epochs}",
                             "max_epochs", settings.max_epochs)
    if len(arch.hidden) > settings.max_depth:
        raise limit_exceeded(field_of("architecture.hidden"), f"{len(arch.hidden)} hidden layers exceed the limit of "
                             f"{settings.max_depth}", "max_depth", settings.max_depth)
    for i, width in enumerate([*arch.hidden, *(arch.conv_channels if arch.kind == "cnn" else [])]):
        if width > settings.max_width:
            field = field_of(f"architecture.hidden.{i}" if i < len(arch.hidden) else "architecture.conv_channels")
            raise limit_exceeded(field, f"width {width} exceeds the limit of {settings.max_width}",
                                 "max_width", settings.max_width)
    if arch.activation == "deepspline" and config.spline.knots > settings.max_knots:
        raise limit_exceeded(field_of("spline.knots"), f"{config.spline.knots} knots exceed the limit of "
                             f"{settings.max_knots}", "max_knots", settings.max_knots)
    n_classes = len(dataset_row.classes) if dataset_row.classes is not None else None
    try:
        count = parameter_count(config, dataset_row.n_features, output_width(dataset_row.task, n_classes))
    except ValueError as exc:  # e.g. input_shape does not match the data
        raise limit_exceeded(field_of("architecture"), str(exc), "architecture", 0) from exc
    if count > settings.max_parameters:
        raise limit_exceeded(field_of("architecture"), f"the network has {count} parameters, above the limit of "
                             f"{settings.max_parameters}", "max_parameters", settings.max_parameters)
