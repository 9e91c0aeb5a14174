"""The predict body's fast path accepts exactly what pydantic accepts, with the same values; errors are pydantic's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError

from api_schemas.http import PredictRequest
from service.http.predict_body import _fast_path, parse_predict_body

JSON = "application/json"


def _pydantic(raw: bytes) -> tuple[np.ndarray, float | None]:
    request = PredictRequest.model_validate(json.loads(raw))
    return np.array(request.inputs, dtype=np.float64), request.epsilon


@pytest.mark.parametrize("seed", range(20))
def test_plain_bodies_take_the_fast_path_with_pydantics_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, width = int(rng.integers(1, 50)), int(rng.integers(1, 9))
    values = rng.normal(size=(rows, width)) * 10.0 ** rng.integers(-300, 300, size=(rows, width))
    inputs = values.tolist()
    inputs[0][0] = int(rng.integers(-(2**62), 2**62))  # integers are numbers too
    body: dict = {"inputs": inputs}
    if seed % 2:
        body["epsilon"] = float(rng.uniform(0, 5))
    raw = json.dumps(body).encode()
    fast = _fast_path(raw)
    assert fast is not None
    expected_rows, expected_epsilon = _pydantic(raw)
    # bit for bit: both parsers round each decimal to the nearest float64
    assert fast.inputs.dtype == np.float64 and fast.inputs.flags.c_contiguous
    assert np.array_equal(fast.inputs.view(np.int64), expected_rows.view(np.int64))
    assert fast.epsilon == expected_epsilon


@pytest.mark.parametrize(
    "raw",
    [
        b'{"inputs": [[true, 1.0]]}',  # pydantic's lax mode reads true as 1.0: only it decides
        b'{"inputs": [["1.5", 2]]}',
        b'{"inputs": [[1.0, 2.0]], "epsilon": null}',
        b'{"inputs": [[0.1, NaN]]}',
        b'{"inputs": [[1e400, 0.0]]}',
        b'{"inputs": [[1.0, 2.0], [3.0]]}',
        b'{"inputs": []}',
        b'{"inputs": [[[1.0]]]}',
        b'{"inputs": [[1.0]], "model": "x"}',
        b'{"inputs": [[1.0]], "epsilone": 1}',  # made of number bytes and known keys, but an unknown key
        b'{"einputs": [[1.0]]}',
        b'{"inputs": [[1.0]], "epsilon": [1]}',
        b'{"inputs": [[1.0]], "inputs": [[2.0]]}',
        b'{"inputs": [[1.0]], "epsilon": 1e-5, "Epsilon": 1}',
        b'{"inputs": [[1.0]], "epsilon": -1}',
        b'{"inputs": [[1.0]], "epsilon": 1e13}',
        b'{"inputs": {"a": 1.0}}',
        b"[[1.0, 2.0]]",
        b"{}",
    ],
)
def test_anything_unusual_takes_pydantics_path(raw: bytes) -> None:
    assert _fast_path(raw) is None
    try:
        expected = _pydantic(raw)
    except Exception as pydantic_error:  # noqa: BLE001 - compared with what the route raises
        with pytest.raises(RequestValidationError) as raised:
            parse_predict_body(raw, JSON)
        if hasattr(pydantic_error, "errors"):
            assert [e["loc"][1:] for e in raised.value.errors()] == [e["loc"] for e in pydantic_error.errors()]
    else:
        parsed = parse_predict_body(raw, JSON)
        assert np.array_equal(parsed.inputs, expected[0]) and parsed.epsilon == expected[1]


@pytest.mark.parametrize(
    ("raw", "content_type", "error_type"),
    [
        (b"{not json", JSON, "json_invalid"),
        (b'{"inputs": [[' + b"9" * 5000 + b", 0.0]]}", JSON, "json_invalid"),
        (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", JSON, "json_invalid"),
        (b"", JSON, "missing"),
        (b'{"inputs": [[1.0]]}', "text/plain", "model_attributes_type"),
    ],
)
def test_bodies_that_are_not_json_objects_are_refused_as_fastapi_would(
    raw: bytes, content_type: str, error_type: str
) -> None:
    with pytest.raises(RequestValidationError) as raised:
        parse_predict_body(raw, content_type)
    assert raised.value.errors()[0]["type"] == error_type


def test_no_content_type_and_json_suffixes_mean_json() -> None:
    for content_type in (None, "application/json; charset=utf-8", "application/vnd.api+json", "Application/JSON"):
        assert parse_predict_body(b'{"inputs": [[1, 2]]}', content_type).inputs.tolist() == [[1.0, 2.0]]
