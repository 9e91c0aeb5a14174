"""Contracts of the Open Inference Protocol (KServe "v2", as Triton serves it) under ``/v2``.

The shapes follow the REST protocol (https://kserve.github.io/website/docs/concepts/architecture/
data-plane/v2-protocol and Triton's binary tensor data extension) so that stock clients
(``tritonclient.http``, KServe's) can call LipSpline. Tensor data travels as plain lists
(JSON) or raw little-endian bytes (binary extension); the certificate travels as extra output
tensors named in :data:`CERTIFICATE_OUTPUTS`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: the one input tensor of every LipSpline model: raw feature rows, shape [rows, n_features]
INPUT_NAME = "input"
#: input datatypes accepted (FP32 is widened to float64 exactly); outputs are FP64 unless FP32 is asked for
INPUT_DATATYPES = {"FP32": "<f4", "FP64": "<f8"}
OUTPUT_DATATYPES = ("FP64", "FP32")
#: output tensors: the model's, then the certificate's (what each holds: docs in README "Open Inference Protocol")
MODEL_OUTPUTS = ("output", "label")
CERTIFICATE_OUTPUTS = ("lipschitz_bound", "rounding_bound", "certified_radius", "output_bound")
#: the header of the binary tensor data extension: the length of the JSON part of a body
HEADER_LENGTH = "Inference-Header-Content-Length"


class _Open(BaseModel):
    # OIP messages may carry members this server does not use; they are ignored, as the protocol asks
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Open):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict, description="`binary_data_size` for binary data")
    data: Any = Field(None, description="row-major values, flat or nested; absent when sent as binary")


class RequestOutput(_Open):
    name: str
    parameters: dict[str, Any] = Field(default_factory=dict, description="`binary_data`: true for raw bytes")


class InferenceRequest(_Open):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP64", "data": [0.1, -0.3, 0.9, 0.8]}],
                    "parameters": {"epsilon": 0.05},
                }
            ]
        }
    )

    id: str | None = None
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="`epsilon` (adds `output_bound`), `output_datatype` (FP64 or FP32), `binary_data_output`",
    )
    inputs: list[RequestInput] = Field(..., min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str = Field(description="the model name as the request's path gave it")
    model_version: str | None = Field(
        None, description="the registry version that answered, as a string; empty when the model was named by its id"
    )
    id: str | None = None
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="`model_id` (the model that answered; also `X-LipSpline-Model-Id`), `registered_name` and "
        "`version` (the registry entry the name resolved to, an integer; both absent when the model was named by "
        "its id; also `X-LipSpline-Model-Name` and `X-LipSpline-Model-Version`), `lipschitz_bound`, `arithmetic`, "
        "`epsilon`",
    )
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(default_factory=dict, description="model_id, task, classes, lipschitz_bound")


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class OipError(BaseModel):
    """The error body of every ``/v2`` response (the OIP shape, not problem+json)."""

    error: str
