"""Artifacts that run a trained model outside this service, certificate included.

``onnx``: the served map (raw input -> output, float64) as a standard ONNX graph, with
the certificate in the file's ``metadata_props``; ``onnx_metadata`` writes and reads
those properties.
"""

from __future__ import annotations

from lipspline.export.onnx import onnx_bytes, onnx_model, to_onnx
from lipspline.export.onnx_metadata import OnnxMetadata, read_onnx_metadata

__all__ = ["OnnxMetadata", "onnx_bytes", "onnx_model", "read_onnx_metadata", "to_onnx"]
