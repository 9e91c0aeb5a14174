"""The certificate and model facts that travel inside an exported ONNX file, as ``metadata_props``.

Why in the file: a platform that deploys the ONNX graph on its own runtime no
longer talks to this service, so the guarantee has to go with the artifact. ONNX
has one place for free-form facts, ``ModelProto.metadata_props`` (string keys,
string values; ``onnxruntime`` exposes them as ``get_modelmeta().custom_metadata_map``).

Every key is ``lipspline.<field>`` for a field of :class:`OnnxMetadata`. Identifiers
and names are stored as plain text (``lipspline.weights_sha256`` is the 64 hex
digits); numbers, lists and the full certificate report as JSON, so that
``lipspline.lipschitz_bound`` reads as a number literal (``null`` when the model has no
finite bound). Optional text fields that are unset are left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import onnx

from lipspline.certificates import CertificateReport

#: prefix of every key this module writes
PREFIX = "lipspline."
#: what ``lipspline.format`` holds, and the layout version of these keys
FORMAT = "lipspline-onnx"
FORMAT_VERSION = 1


class OnnxMetadataError(ValueError):
    """An ONNX file whose metadata is not (or not readable as) LipSpline's."""


@dataclass(frozen=True)
class OnnxMetadata:
    """What an exported file says about the function it computes and the guarantee on it."""

    #: the certified global l2 Lipschitz bound of the graph's function (None: no finite bound)
    lipschitz_bound: float | None
    #: which bound gave it (a key of ``certificate.bounds``, e.g. ``liplt``)
    certified_by: str | None
    #: the norm the bound is about, on inputs and outputs (``l2``)
    topology: str
    #: sha256 of the served map's arrays the graph was built from (``ServedMap.fingerprint``)
    served_map_sha256: str
    #: the arithmetic of the graph and of the service (``float64``)
    arithmetic: str
    #: ``stored``: the service's certificate of this very map; ``recomputed``: certified at export
    certificate_source: str
    #: the whole certificate report: every bound by name, lower bounds, tightness
    certificate: CertificateReport
    lipspline_version: str
    #: sha256 of the model's safetensors weights (as stored by the service)
    weights_sha256: str
    task: str
    #: class labels in output order (classifiers); None for regression
    classes: list | None
    feature_names: list[str]
    n_features: int
    n_outputs: int
    #: the service's id of the model, when exported by the service
    model_id: str | None = None


#: fields stored as plain text; every other field is JSON
_TEXT_FIELDS = frozenset(
    {
        "certified_by",
        "topology",
        "served_map_sha256",
        "arithmetic",
        "certificate_source",
        "lipspline_version",
        "weights_sha256",
        "task",
        "model_id",
    }
)
#: text fields that may be unset (then absent from the file)
_OPTIONAL_FIELDS = frozenset({"certified_by", "model_id"})


def metadata_props(metadata: OnnxMetadata) -> dict[str, str]:
    """The ``metadata_props`` entries (key -> string value) that describe ``metadata``."""
    props = {PREFIX + "format": FORMAT, PREFIX + "format_version": str(FORMAT_VERSION)}
    for item in fields(OnnxMetadata):
        value = getattr(metadata, item.name)
        if item.name in _TEXT_FIELDS:
            if value is None:
                continue
            props[PREFIX + item.name] = str(value)
        elif isinstance(value, CertificateReport):
            props[PREFIX + item.name] = json.dumps(value.to_json(), sort_keys=True)
        else:
            # allow_nan=False: the certificate writes infinite bounds as null, and so do we
            props[PREFIX + item.name] = json.dumps(value, allow_nan=False)
    return props


def set_metadata(model: onnx.ModelProto, metadata: OnnxMetadata) -> None:
    """Write ``metadata`` into the model's ``metadata_props`` (replacing any LipSpline keys already there)."""
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    onnx.helper.set_model_props(model, dict(kept) | metadata_props(metadata))


def read_onnx_metadata(source: onnx.ModelProto | bytes | str | Path | BinaryIO) -> OnnxMetadata:
    """The LipSpline metadata of an exported ONNX model (a loaded model, its bytes, a path or a file)."""
    if isinstance(source, onnx.ModelProto):
        model = source
    elif isinstance(source, bytes):
        model = onnx.load_model_from_string(source)
    else:
        model = onnx.load_model(source)
    return metadata_from_props({p.key: p.value for p in model.metadata_props})


def metadata_from_props(props: dict[str, str]) -> OnnxMetadata:
    """Parse ``metadata_props`` (e.g. onnxruntime's ``custom_metadata_map``) back into :class:`OnnxMetadata`."""
    if props.get(PREFIX + "format") != FORMAT:
        raise OnnxMetadataError(f"not a LipSpline ONNX export: {PREFIX}format is {props.get(PREFIX + 'format')!r}")
    if props.get(PREFIX + "format_version") != str(FORMAT_VERSION):
        raise OnnxMetadataError(f"unsupported {PREFIX}format_version {props.get(PREFIX + 'format_version')!r}")
    values: dict[str, Any] = {}
    for item in fields(OnnxMetadata):
        raw = props.get(PREFIX + item.name)
        if raw is None:
            if item.name in _OPTIONAL_FIELDS:
                values[item.name] = None
                continue
            raise OnnxMetadataError(f"missing metadata key {PREFIX + item.name}")
        if item.name in _TEXT_FIELDS:
            values[item.name] = raw
            continue
        try:
            decoded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise OnnxMetadataError(f"metadata key {PREFIX + item.name} is not JSON: {exc}") from exc
        values[item.name] = CertificateReport.model_validate(decoded) if item.name == "certificate" else decoded
    return OnnxMetadata(**values)
