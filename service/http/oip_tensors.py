"""Tensors of the Open Inference Protocol in and out: JSON data and the binary tensor data extension.

A request body is JSON, or (binary extension) a JSON header of ``Inference-Header-Content-Length``
bytes followed by the raw bytes of the inputs that declare ``binary_data_size``, in input
order. A response is built the same way when any output is asked for as binary. Every
malformed tensor is a 400 whose ``error`` names the tensor and what is wrong with it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import orjson
from pydantic import ValidationError

from api_schemas.oip import HEADER_LENGTH, INPUT_DATATYPES, InferenceRequest, RequestInput
from service.http.problems import ProblemError


def bad_request(message: str) -> ProblemError:
    return ProblemError(400, "Bad Request", message, kind="bad-tensor")


def parse_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, bytes]:
    """The request's JSON part, validated, and the binary part that follows it (empty without the extension)."""
    split = len(body)
    if header_length is not None:
        if not header_length.strip().isdigit() or int(header_length) > len(body):
            raise bad_request(f"{HEADER_LENGTH}: {header_length!r} is not a length within the body ({len(body)} bytes)")
        split = int(header_length)
    try:
        document = orjson.loads(body[:split])
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the request is not valid JSON ({exc})") from exc
    try:
        request = InferenceRequest.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise bad_request(f"{where}: {first['msg']}") from exc
    return request, body[split:]


@dataclass(frozen=True)
class InputRows:
    """The rows of the input tensor as the served map takes them (float64), and the datatype they came in."""

    rows: np.ndarray
    datatype: str


def input_rows(tensor: RequestInput, binary: bytes, n_features: int, max_rows: int) -> InputRows:
    """The input tensor as a finite float64 [rows, n_features] array; 400 naming what is wrong.

    FP32 data is rounded to float32 first (that is the tensor's value, also for JSON data,
    whose numbers are decimal) and then widened to float64, which is exact.
    """
    name = tensor.name
    if tensor.datatype not in INPUT_DATATYPES:
        raise bad_request(f"input {name!r}: datatype {tensor.datatype!r} is not supported (FP32 or FP64)")
    shape = tensor.shape
    if len(shape) != 2 or shape[1] != n_features or shape[0] < 1:
        raise bad_request(f"input {name!r}: shape {shape} is not [rows, {n_features}] with rows >= 1")
    if shape[0] > max_rows:
        raise bad_request(f"input {name!r}: {shape[0]} rows exceed the limit of {max_rows} per request")
    count = shape[0] * shape[1]
    size = tensor.parameters.get("binary_data_size")
    if size is not None:
        if tensor.data is not None:
            raise bad_request(f"input {name!r}: has both data and binary_data_size")
        expected = count * np.dtype(INPUT_DATATYPES[tensor.datatype]).itemsize
        if size != expected or len(binary) != size:
            raise bad_request(f"input {name!r}: binary_data_size {size} with {len(binary)} bytes after the header; "
                              f"shape {shape} of {tensor.datatype} is {expected} bytes")
        values = np.frombuffer(binary, dtype=INPUT_DATATYPES[tensor.datatype]).astype(np.float64)
    else:
        if binary:
            raise bad_request(f"{len(binary)} bytes follow the JSON header but no input declares binary_data_size")
        if tensor.data is None:
            raise bad_request(f"input {name!r}: no data")
        try:
            array = np.array(tensor.data)
        except ValueError as exc:  # ragged nesting
            raise bad_request(f"input {name!r}: data is not a regular array ({exc})") from exc
        # numpy reads true/false among numbers as 1/0; /v1 refuses them, so /v2 does too. A numeric array
        # holds no strings, so "true"/"false" in its JSON can only be booleans (one C pass, no Python loop).
        if array.dtype.kind not in "fi" or any(word in orjson.dumps(tensor.data) for word in (b"true", b"false")):
            raise bad_request(f"input {name!r}: data must be JSON numbers (no strings, no booleans)")
        if array.size != count:
            raise bad_request(f"input {name!r}: data has {array.size} values, shape {shape} needs {count}")
        if tensor.datatype == "FP32":
            with np.errstate(over="ignore"):
                array = array.astype(np.float32)
        values = array.astype(np.float64).reshape(-1)
    rows = values.reshape(shape[0], shape[1])
    bad = ~np.isfinite(rows)
    if bad.any():
        row, column = (int(v) for v in np.argwhere(bad)[0])
        raise bad_request(f"input {name!r}: row {row}, column {column} is not finite ({rows[row, column]})")
    return InputRows(rows, tensor.datatype)


@dataclass(frozen=True)
class OutputTensor:
    """One output: its values (numeric array, or labels) and OIP datatype; ``binary`` sends raw bytes."""

    name: str
    values: np.ndarray | list
    datatype: str
    shape: list[int]
    binary: bool = False

    def raw(self) -> bytes:
        """Little-endian bytes per the binary extension (BYTES: a 4-byte length before each element)."""
        if self.datatype == "BYTES":
            parts = [str(v).encode() for v in self.values]
            return b"".join(struct.pack("<I", len(p)) + p for p in parts)
        dtype = {"FP64": "<f8", "FP32": "<f4", "INT64": "<i8"}[self.datatype]
        return np.ascontiguousarray(self.values, dtype=dtype).tobytes()

    def json_data(self) -> np.ndarray | list:
        """The values for a JSON body. FP32 values are written through float64: the shortest float32
        decimal (``0.1`` for float32(0.1)) read back as float64 is another number than the one the
        bounds are about; the float64 decimal of the same value reads back exactly, in either width."""
        if self.datatype == "BYTES":
            return [str(v) for v in self.values]
        values = np.asarray(self.values)
        if self.datatype == "FP32":
            values = values.astype(np.float64)
        return values.reshape(-1)


def encode_response(head: dict, outputs: list[OutputTensor]) -> tuple[bytes, dict[str, str]]:
    """The response body and its extra headers: plain JSON, or JSON + raw outputs with the length header."""
    tensors, blobs = [], []
    for output in outputs:
        tensor: dict = {"name": output.name, "datatype": output.datatype, "shape": output.shape}
        if output.binary:
            blob = output.raw()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = output.json_data()
        tensors.append(tensor)
    header = orjson.dumps({**head, "outputs": tensors}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, {}
    return header + b"".join(blobs), {HEADER_LENGTH: str(len(header))}


#: the largest epsilon, as on /v1 (PredictRequest.epsilon): beyond it the bounds overflow to nothing useful
MAX_EPSILON = 1e12


def finite_parameter(parameters: dict, key: str) -> float | None:
    """A non-negative finite number parameter (``epsilon``), or None when absent."""
    value = parameters.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 <= value <= MAX_EPSILON):
        raise bad_request(f"parameters.{key}: must be a number between 0 and {MAX_EPSILON:g}, got {value!r}")
    return float(value)
