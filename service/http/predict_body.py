"""The JSON body of ``predict``, parsed once into a float64 array: the hot path of every JSON prediction.

FastAPI's own body handling costs more than a small model does: the stdlib parser builds
a Python float per element, pydantic checks each one, and a finiteness check and the
conversion to numpy walk them again in Python. Here a plain body (numbers only, the two
known keys) is parsed by orjson and handed to numpy in one C call, with no Python loop
over the elements.

Anything else (a string, a boolean or ``null`` anywhere, a ragged or empty ``inputs``,
an unknown key, a number orjson refuses such as ``NaN`` or ``1e400``, bytes that are
not JSON) takes the slow path: the body is validated by :class:`PredictRequest` exactly
as FastAPI would, so every error keeps its status, field path and wording. The fast path
only accepts bodies that path would accept with the same values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api_schemas.http import PredictRequest

#: the keys the fast path reads; anything else (``local_ball`` included) takes the validated path
_KEYS = ("inputs", "epsilon")
#: the bytes of JSON numbers, arrays and separators: what a plain body is made of, besides its keys
_NUMBER_BYTES = b"0123456789.eE+-[], \n\t\r"
_EPSILON_RANGE = (0.0, 1e12)  # PredictRequest.epsilon's bounds


def _plain_residues() -> frozenset[bytes]:
    """What is left of a plain body once the number bytes are deleted: its braces, quotes and keys."""
    layouts = [("inputs",), ("inputs", "epsilon"), ("epsilon", "inputs")]
    return frozenset(
        ("{" + "".join(f'"{key}":' for key in keys) + "}").encode().translate(None, _NUMBER_BYTES) for keys in layouts
    )


_PLAIN_RESIDUES = _plain_residues()


def _in_epsilon_range(epsilon: float) -> bool:
    return _EPSILON_RANGE[0] <= epsilon <= _EPSILON_RANGE[1]


@dataclass(frozen=True)
class PredictBody:
    """A parsed predict request: the rows as one C-contiguous float64 array, epsilon, and the local ball."""

    inputs: np.ndarray
    epsilon: float | None
    local_ball: float | None = None


def parse_predict_body(raw: bytes, content_type: str | None) -> PredictBody:
    """The rows and epsilon of a JSON predict body; invalid bodies raise FastAPI's validation error.

    As FastAPI does for a body parameter: no ``Content-Type`` means JSON, an empty body is a
    missing body, and a body declared as something other than JSON is not an object (422).
    """
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    if content_type and not _is_json(content_type):
        raise RequestValidationError([{"type": "model_attributes_type", "loc": ("body",), "input": None,
                                       "msg": f"expected a JSON object (Content-Type: application/json), "
                                              f"got Content-Type {content_type!r}"}])
    fast = _fast_path(raw)
    return fast if fast is not None else _validated(raw)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _fast_path(raw: bytes) -> PredictBody | None:
    """The body parsed without touching its numbers from Python, or None when it needs the slow path."""
    # One C pass proves the body holds nothing but numbers, brackets, separators and the known
    # keys, each once: no string value, no true/false/null (pydantic's lax mode reads true as 1.0).
    if raw.translate(None, _NUMBER_BYTES) not in _PLAIN_RESIDUES:
        return None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    # the residue allows keys with e/E added ("epsilone"): the parsed keys must be the known ones
    if not isinstance(document, dict) or not document.keys() <= set(_KEYS):
        return None
    epsilon = document.get("epsilon")
    if epsilon is not None and not (isinstance(epsilon, int | float) and _in_epsilon_range(epsilon)):
        return None
    try:
        rows = np.array(document.get("inputs"), dtype=np.float64)
    except (ValueError, TypeError):  # ragged, nested deeper, or missing
        return None
    if rows.ndim != 2 or rows.shape[0] == 0 or not np.isfinite(rows).all():
        return None
    return PredictBody(rows, None if epsilon is None else float(epsilon))


def _validated(raw: bytes) -> PredictBody:
    """What FastAPI does with a body parameter: stdlib JSON, then pydantic; errors located under ``body``."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, too many digits, a nesting bomb
        error = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": str(exc)}}]) from exc
    try:
        request = PredictRequest.model_validate(document)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc
    rows = np.array(request.inputs, dtype=np.float64)
    if rows.ndim != 2:  # rows of no values: [[]] (the width check names the row)
        rows = rows.reshape(len(request.inputs), -1)
    return PredictBody(rows, request.epsilon, request.local_ball)
