"""service/http/limits.py on its own: each limit refused with its own problem, the exact parameter count,
and the body-size middleware as a bare ASGI app (declared and streamed bytes)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest
import torch

from api_schemas import TrainingConfig
from lipspline.nn.networks import SplineNetwork
from lipspline_platform.settings import Settings
from service.http.limits import (
    MULTIPART_OVERHEAD,
    BodySizeLimit,
    check_dataset,
    check_network,
    limit_exceeded,
    parameter_count,
    too_large,
)
from service.http.problems import PROBLEM_BASE, ProblemError

SETTINGS = Settings(max_rows=100, max_features=4, max_classes=3, max_width=16, max_depth=2, max_knots=21,
                    max_parameters=2000, max_epochs=50, reconcile_every_s=0)


@dataclass
class Shape:
    """What the checks read of a dataset (or of its database row)."""

    n_samples: int = 10
    n_features: int = 2
    classes: list | None = None
    task: str = "regression"


def config(**sections: dict) -> TrainingConfig:
    return TrainingConfig.model_validate({"training": {"epochs": 5}, "architecture": {"hidden": [4]},
                                          "spline": {"knots": 11}, **sections})


def refused(call, *args) -> ProblemError:
    with pytest.raises(ProblemError) as caught:
        call(*args)
    return caught.value


# ---- datasets
def test_a_dataset_at_every_limit_passes() -> None:
    check_dataset(Shape(n_samples=100, n_features=4, classes=["a", "b", "c"], task="classification"), SETTINGS)
    check_dataset(Shape(n_samples=1, n_features=1), SETTINGS)


@pytest.mark.parametrize(("shape", "limit", "value", "words"), [
    (Shape(n_samples=101), "max_rows", 100, "101 rows exceed the limit of 100"),
    (Shape(n_features=5), "max_features", 4, "5 features exceed the limit of 4"),
    (Shape(classes=[0, 1, 2, 3], task="classification"), "max_classes", 3, "4 classes exceed the limit of 3"),
])
def test_dataset_limits(shape: Shape, limit: str, value: int, words: str) -> None:
    error = refused(check_dataset, shape, SETTINGS)
    assert (error.status, error.kind, error.title) == (422, "limit-exceeded", "Limit Exceeded")
    assert error.detail == f"file: {words}"
    assert error.extra == {"errors": [{"field": "file", "message": words}], "limit": limit, "limit_value": value}


def test_rows_are_checked_before_features() -> None:
    assert refused(check_dataset, Shape(n_samples=1000, n_features=1000), SETTINGS).extra["limit"] == "max_rows"


# ---- networks
def test_a_network_at_every_limit_passes() -> None:
    at_limit = config(training={"epochs": 50}, architecture={"hidden": [16, 16]}, spline={"knots": 21})
    assert parameter_count(at_limit, 2, 1) <= 2000
    check_network(at_limit, Shape(), SETTINGS)


@pytest.mark.parametrize(("sections", "limit", "value", "field", "words"), [
    ({"training": {"epochs": 51}}, "max_epochs", 50, "config.training.epochs", "51 exceeds the limit of 50"),
    ({"architecture": {"hidden": [2, 2, 2]}}, "max_depth", 2, "config.architecture.hidden",
     "3 hidden layers exceed the limit of 2"),
    ({"architecture": {"hidden": [4, 17]}}, "max_width", 16, "config.architecture.hidden.1",
     "width 17 exceeds the limit of 16"),
    ({"spline": {"knots": 23}}, "max_knots", 21, "config.spline.knots", "23 knots exceed the limit of 21"),
    ({"architecture": {"hidden": [16, 16]}, "spline": {"knots": 21}, "training": {"epochs": 5}}, None, None, None,
     None),
])
def test_network_limits(sections: dict, limit: str | None, value: int | None, field: str | None,
                        words: str | None) -> None:
    if limit is None:  # the control: the same kind of config, within every limit
        check_network(config(**sections), Shape(), SETTINGS)
        return
    error = refused(check_network, config(**sections), Shape(), SETTINGS)
    assert (error.status, error.kind) == (422, "limit-exceeded")
    assert error.detail == f"{field}: {words}"
    assert error.extra == {"errors": [{"field": field, "message": words}], "limit": limit, "limit_value": value}


def test_parameter_limit_counts_the_real_network() -> None:
    wide = config(architecture={"hidden": [16, 16]}, spline={"knots": 21})
    count = parameter_count(wide, 4, 3)
    small = Settings(max_parameters=count - 1, reconcile_every_s=0)
    error = refused(check_network, wide, Shape(n_features=4, classes=[0, 1, 2], task="classification"), small)
    assert error.extra["limit"] == "max_parameters" and error.extra["errors"][0]["field"] == "config.architecture"
    assert f"the network has {count} parameters" in error.detail
    check_network(wide, Shape(n_features=4, classes=[0, 1, 2], task="classification"),
                  Settings(max_parameters=count, reconcile_every_s=0))


def test_knots_limit_applies_only_to_spline_activations() -> None:
    relu = config(architecture={"hidden": [4], "activation": "relu"}, spline={"knots": 1001})
    check_network(relu, Shape(), SETTINGS)


def test_conv_channel_width_is_limited_and_named() -> None:
    cnn = config(architecture={"kind": "cnn", "hidden": [4], "conv_channels": [4, 32], "input_shape": [1, 8, 8]})
    error = refused(check_network, cnn, Shape(n_features=64), SETTINGS)
    assert error.extra["limit"] == "max_width"
    assert error.extra["errors"][0]["field"] == "config.architecture.conv_channels"


def test_an_architecture_that_does_not_fit_the_data_is_named() -> None:
    cnn = config(architecture={"kind": "cnn", "hidden": [4], "conv_channels": [2], "input_shape": [1, 8, 8]})
    error = refused(check_network, cnn, Shape(n_features=10), SETTINGS)  # 10 features are not 1x8x8
    assert error.status == 422 and error.extra["errors"][0]["field"] == "config.architecture"


@pytest.mark.parametrize(("hidden", "n_features", "n_outputs", "knots"), [
    ([2], 2, 1, 11), ([16, 16], 4, 3, 21), ([5, 3, 7], 10, 1, 5),
])
def test_parameter_count_is_exact(hidden: list[int], n_features: int, n_outputs: int, knots: int) -> None:
    cfg = config(architecture={"hidden": hidden}, spline={"knots": knots})
    built = SplineNetwork(cfg, n_features, n_outputs)
    assert parameter_count(cfg, n_features, n_outputs) == built.parameter_count()
    if hidden == [2]:
        assert built.parameter_count() == 31  # 2*2+2 + 2*1+1 weights and biases, 2 splines of 11 knots


def test_parameter_count_allocates_nothing() -> None:
    huge = config(architecture={"hidden": [4096] * 16}, spline={"knots": 257})
    assert parameter_count(huge, 10_000, 1000) > 200_000_000  # 800 MB of float32 if it were allocated
    assert torch.empty(0).device.type == "cpu"  # the meta device did not leak out as the default


def test_problem_shapes() -> None:
    error = limit_exceeded("config.x", "too big", "max_x", 7)
    assert (error.status, error.title, error.detail, error.kind) == (422, "Limit Exceeded", "config.x: too big",
                                                                     "limit-exceeded")
    assert error.extra == {"errors": [{"field": "config.x", "message": "too big"}], "limit": "max_x", "limit_value": 7}
    big = too_large(1000)
    assert (big.status, big.kind) == (413, "content-too-large")
    assert big.extra == {"limit": "max_upload_bytes", "limit_value": 1000} and "1000 bytes" in big.detail


# ---- the body-size middleware, as a bare ASGI app
class Recorder:
    """An inner ASGI app that reads the whole body, and what was sent back."""

    def __init__(self) -> None:
        self.called = False
        self.body = b""
        self.sent: list[dict] = []

    async def __call__(self, scope: dict, receive, send) -> None:
        self.called = True
        while True:
            message = await receive()
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break

    async def send(self, message: dict) -> None:
        self.sent.append(message)


def run(limit: int, headers: list[tuple[bytes, bytes]], chunks: list[bytes], scope_type: str = "http") -> Recorder:
    inner = Recorder()
    middleware = BodySizeLimit(inner, limit=limit)
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict:
        return messages.pop(0)

    scope = {"type": scope_type, "path": "/v1/datasets", "headers": headers}
    asyncio.run(middleware(scope, receive, inner.send))
    return inner


def test_declared_length_over_the_limit_is_refused_without_calling_the_app() -> None:
    wire_limit = 100 + MULTIPART_OVERHEAD
    inner = run(100, [(b"content-length", str(wire_limit + 1).encode())], [b"x"])
    assert not inner.called
    start, body = inner.sent
    assert start["status"] == 413
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/problem+json" and headers[b"connection"] == b"close"
    problem = json.loads(body["body"])
    assert int(headers[b"content-length"]) == len(body["body"])
    assert problem["type"] == PROBLEM_BASE + "content-too-large" and problem["status"] == 413
    assert problem["limit"] == "max_upload_bytes" and problem["limit_value"] == 100
    assert problem["instance"] == "/v1/datasets" and "Content-Length" in problem["detail"]


def test_declared_length_at_the_limit_goes_through() -> None:
    wire_limit = 100 + MULTIPART_OVERHEAD
    inner = run(100, [(b"content-length", str(wire_limit).encode())], [b"x" * wire_limit])
    assert inner.called and len(inner.body) == wire_limit and inner.sent == []


def test_streamed_bytes_are_counted_whatever_the_header_says() -> None:
    wire_limit = 100 + MULTIPART_OVERHEAD
    chunk = b"x" * 1024
    with pytest.raises(ProblemError) as caught:  # no Content-Length (chunked)
        run(100, [], [chunk] * (wire_limit // len(chunk) + 1))
    assert caught.value.status == 413 and caught.value.extra["limit_value"] == 100
    with pytest.raises(ProblemError):  # a Content-Length that lies
        run(100, [(b"content-length", b"10")], [chunk] * (wire_limit // len(chunk) + 1))
    with pytest.raises(ProblemError):  # a Content-Length that is not a number is ignored, the bytes still count
        run(100, [(b"content-length", b"lots")], [chunk] * (wire_limit // len(chunk) + 1))
    exact = run(100, [], [b"x" * wire_limit])
    assert len(exact.body) == wire_limit


def test_other_scopes_pass_through() -> None:
    inner = Recorder()
    middleware = BodySizeLimit(inner, limit=1)

    async def receive() -> dict:
        return {"type": "lifespan.startup"}

    asyncio.run(middleware({"type": "lifespan"}, receive, inner.send))
    assert inner.called
