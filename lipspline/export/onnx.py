"""The served map as a standard ONNX graph: raw float64 inputs -> outputs, certificate in the metadata.

What the graph computes. Exactly the function ``ServedMap`` evaluates
(``certificates/served_map.py``), built from the very arrays that object
multiplies by, so the certificate in the file is about the graph's function:

* ``d = input - input_mean`` (float64, nothing rounded before standardising);
* when the view could not densify the convolutions, ``d * input_fold`` and each
  convolution as an im2col ``Gather`` followed by a ``MatMul`` (onnxruntime has
  no float64 ``Conv``); otherwise the first weight already holds
  ``W_1 diag(1 / input_scale)`` and densified convolutions are plain matrices;
* each affine layer ``MatMul`` + ``Add`` with the served weights (the proven,
  normalised weights of 1-Lipschitz layers, ``layers.served_weight``); the last
  one has the target scale folded in and the target mean added to its bias;
* activations: ``Relu``, ``Abs``; GroupSort as ``Max``/``Min`` of the pairs the
  view defines; every other element-wise activation (deep splines, leaky ReLU,
  PReLU) as the view's continuous piecewise-linear function: knots ``t``, values
  ``v``, one slope per cell, the end slopes continued beyond the grid. Its cell
  (``t[j-1] <= h < t[j]``) is found by a binary search over the knots
  (``Gather`` + ``GreaterOrEqual`` per halving), the same cell the served map
  takes, and the value is ``v[anchor] + slope[cell] * (h - t[anchor])`` with the
  served map's tables. A ``Floor((h - t_0) / delta)`` index would be one op
  shorter but can land one cell off when the quotient rounds at a knot.

Precision. Inputs, outputs and every intermediate are float64 (``tensor(double)``),
as the service serves: float32 would round raw features before standardising,
which is exactly the error ``served_map.py`` exists to avoid (a feature of 1e6
with 1e-3 of signal). Measured against ``TrainedModel.outputs`` the graph agrees
to a few float64 ulps; only the summation order of the matrix products differs.

Only ops of the default ONNX domain at opset 17, all of which onnxruntime runs in
float64 on CPU; the IR version is pinned for older runtimes.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from api_schemas.version import __version__
from lipspline.certificates import ARITHMETIC, CertificateReport, ServedMap, certify_global
from lipspline.certificates.served_map import ConvAffine, DenseAffine
from lipspline.certificates.view import GroupSortView, PiecewiseView
from lipspline.export.onnx_metadata import OnnxMetadata, set_metadata
from lipspline.nn.model import TrainedModel
from lipspline.nn.serialization import model_to_parts

#: names of the graph's one input ([batch, n_features]) and one output ([batch, n_outputs])
INPUT_NAME = "input"
OUTPUT_NAME = "output"
#: opset of the default domain; every op used here exists there with float64 support in onnxruntime
OPSET = 17
#: the IR version that goes with opset 17 (onnx 1.12), so runtimes of that age load the file
IR_VERSION = 8
#: the symbolic batch dimension
BATCH = "batch"


class _Graph:
    """Nodes and constants of the graph under construction, with fresh names for every value."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: dict[str, int] = {}

    def _fresh(self, hint: str) -> str:
        count = self._names.get(hint, 0)
        self._names[hint] = count + 1
        return f"{hint}_{count}"

    def constant(self, hint: str, array: np.ndarray) -> str:
        name = self._fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        """Add one node with one output; returns the output's name."""
        out = self._fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self._fresh(f"node_{op_type}"), **attrs))
        return out


# ---- affine layers ---------------------------------------------------------------------------
def _dense(graph: _Graph, a: str, affine: DenseAffine, layer: int) -> str:
    """``a @ W^T + b`` with the served map's own (n_in, n_out) array ``weight_t``."""
    product = graph.op("MatMul", [a, graph.constant(f"layer{layer}_weight_t", affine.weight_t)], f"layer{layer}_mm")
    return graph.op("Add", [product, graph.constant(f"layer{layer}_bias", affine.bias)], f"layer{layer}_affine")


def _im2col_indices(conv: ConvAffine) -> np.ndarray:
    """(output pixels, C*kh*kw) indices into a flattened (C, H, W) row; ``C*H*W`` marks zero padding."""
    channels, height, width = conv.in_shape
    _, out_h, out_w = conv.out_shape
    kh, kw = conv.weight.shape[2:]
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    oy, ox = np.meshgrid(np.arange(out_h), np.arange(out_w), indexing="ij")
    c, i, j = np.meshgrid(np.arange(channels), np.arange(kh), np.arange(kw), indexing="ij")
    rows = oy.reshape(-1, 1) * sh - ph + i.reshape(1, -1) * dh
    cols = ox.reshape(-1, 1) * sw - pw + j.reshape(1, -1) * dw
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    flat = c.reshape(1, -1) * height * width + rows * width + cols
    return np.where(inside, flat, channels * height * width).astype(np.int64)


def _conv(graph: _Graph, a: str, conv: ConvAffine, layer: int) -> str:
    """A convolution on flattened (C, H, W) rows: pad one zero, gather patches, one MatMul, back to (C, H, W)."""
    if conv.groups != 1:
        raise NotImplementedError("ONNX export supports convolutions with groups=1 only")
    out_channels = conv.weight.shape[0]
    pads = graph.constant(f"layer{layer}_pads", np.array([0, 0, 0, 1], dtype=np.int64))
    padded = graph.op("Pad", [a, pads], f"layer{layer}_padded", mode="constant")  # column C*H*W is the zero
    patches = graph.op("Gather", [padded, graph.constant(f"layer{layer}_im2col", _im2col_indices(conv))], axis=1)
    kernel = conv.weight.numpy().reshape(out_channels, -1).T  # (C*kh*kw, out channels), tap order as the indices
    product = graph.op("MatMul", [patches, graph.constant(f"layer{layer}_kernel", kernel)])  # (N, pixels, out)
    biased = graph.op("Add", [product, graph.constant(f"layer{layer}_bias", conv.bias.numpy())])
    channels_first = graph.op("Transpose", [biased], perm=[0, 2, 1])
    flat = graph.constant(f"layer{layer}_flat_shape", np.array([0, -1], dtype=np.int64))
    return graph.op("Reshape", [channels_first, flat], f"layer{layer}_affine")


# ---- activations -----------------------------------------------------------------------------
def _cells(graph: _Graph, h: str, knots: np.ndarray, layer: int) -> str:
    """Per entry, the number of knots <= h (int64): the cell the served map evaluates, by binary search.

    ``padded[k] = t[k-1]`` for ``1 <= k <= m`` and NaN beyond (``h >= NaN`` is false), so
    ``cell`` climbs by halving steps to the largest k with ``t[k-1] <= h``; a NaN ``h``
    stays in cell 0 and its value is NaN, as in the served map.
    """
    m = knots.size
    rounds = max(1, math.ceil(math.log2(m + 1)))
    padded = np.full(2**rounds + 1, np.nan)
    padded[1 : m + 1] = knots
    table = graph.constant(f"act{layer}_search_knots", padded)
    cell = None
    for power in range(rounds - 1, -1, -1):
        step = graph.constant(f"act{layer}_step", np.array(2**power, dtype=np.int64))
        candidate = step if cell is None else graph.op("Add", [cell, step])
        knot = graph.op("Gather", [table, candidate], axis=0)
        climb = graph.op("GreaterOrEqual", [h, knot])
        stay = cell if cell is not None else graph.constant(f"act{layer}_zero", np.array(0, dtype=np.int64))
        cell = graph.op("Where", [climb, candidate, stay], f"act{layer}_cell")
    assert cell is not None
    return cell


def _piecewise(graph: _Graph, h: str, view: PiecewiseView, layer: int) -> str:
    """``v[a] + s[j] (h - t[a])``, ``a = max(j - 1, 0)``, with j the cell of h: the served map's formula."""
    m = view.t.size
    units = view.v.shape[0]
    anchor = np.maximum(np.arange(m + 1) - 1, 0)
    cell = _cells(graph, h, view.t, layer)
    index = graph.op("Add", [cell, graph.constant(f"act{layer}_unit_offsets", np.arange(units) * (m + 1))])
    values = graph.constant(f"act{layer}_anchor_values", view.v[:, anchor].ravel())
    slopes = graph.constant(f"act{layer}_slopes", view.s.ravel())
    anchor_knots = graph.constant(f"act{layer}_anchor_knots", view.t[anchor])
    base = graph.op("Gather", [values, index], axis=0)
    slope = graph.op("Gather", [slopes, index], axis=0)
    offset = graph.op("Sub", [h, graph.op("Gather", [anchor_knots, cell], axis=0)])
    return graph.op("Add", [base, graph.op("Mul", [slope, offset])], f"act{layer}_out")


def _groupsort(graph: _Graph, h: str, view: GroupSortView, layer: int) -> str:
    """MaxMin of the view's pairs: the max goes to the first member's place, the min to the second's."""
    first, second = view.pairs()
    a = graph.op("Gather", [h, graph.constant(f"act{layer}_first", first)], axis=1)
    b = graph.op("Gather", [h, graph.constant(f"act{layer}_second", second)], axis=1)
    stacked = graph.op("Concat", [graph.op("Max", [a, b]), graph.op("Min", [a, b])], axis=1)
    placement = np.empty(view.n_units, dtype=np.int64)
    placement[np.concatenate([first, second])] = np.arange(view.n_units)
    return graph.op("Gather", [stacked, graph.constant(f"act{layer}_placement", placement)], f"act{layer}_out", axis=1)


def _activation(graph: _Graph, h: str, view: PiecewiseView | GroupSortView, layer: int) -> str:
    if isinstance(view, GroupSortView):
        return _groupsort(graph, h, view, layer)
    if view.name == "relu":
        return graph.op("Relu", [h], f"act{layer}_out")
    if view.name == "abs":
        return graph.op("Abs", [h], f"act{layer}_out")
    return _piecewise(graph, h, view, layer)


# ---- the whole map ---------------------------------------------------------------------------
def served_map_graph(served: ServedMap, name: str = "lipspline_served_map") -> onnx.GraphProto:
    """The graph of ``served``: ``input`` (float64 [batch, n_features]) -> ``output`` (float64 [batch, n_outputs])."""
    graph = _Graph()
    a = graph.op("Sub", [INPUT_NAME, graph.constant("input_mean", served.input_mean)], "centered")
    if served.prefix_fold is not None:
        a = graph.op("Mul", [a, graph.constant("input_fold", served.prefix_fold)], "standardized")
    last = len(served.affines) - 1
    for layer, affine in enumerate(served.affines):
        if isinstance(affine, DenseAffine):
            h = _dense(graph, a, affine, layer)
        elif isinstance(affine, ConvAffine):
            h = _conv(graph, a, affine, layer)
        else:  # pragma: no cover - the served map has no other affine kind
            raise TypeError(f"cannot export the affine layer {type(affine).__name__}")
        a = h if layer == last else _activation(graph, h, served.activations[layer].view, layer)
    graph.nodes.append(helper.make_node("Identity", [a], [OUTPUT_NAME], name="served_output"))
    return helper.make_graph(
        graph.nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE, [BATCH, served.n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.DOUBLE, [BATCH, served.n_outputs])],
        graph.initializers,
    )


def exported_certificate(model: TrainedModel, stored: CertificateReport | None) -> tuple[CertificateReport, str]:
    """The certificate of the exported map, and where it came from (``stored`` or ``recomputed``).

    A stored report is used only if it was computed on this very served map (its
    ``served_map_sha256``); otherwise the map is certified now, as the service does
    when it loads a model whose stored certificate is about another map.
    """
    fingerprint = model.served_map().fingerprint
    if stored is not None and stored.served_map_sha256 == fingerprint:
        return stored, "stored"
    fresh = certify_global(model.network).to_json()
    return CertificateReport(**fresh, served_map_sha256=fingerprint, arithmetic=ARITHMETIC), "recomputed"


def onnx_model(
    model: TrainedModel,
    *,
    certificate: CertificateReport | None = None,
    weights_sha256: str | None = None,
    model_id: str | None = None,
) -> onnx.ModelProto:
    """The served map of ``model`` as an ONNX model with its certificate in ``metadata_props``.

    ``certificate``: the stored report (used if it certifies this map, see
    :func:`exported_certificate`); ``weights_sha256``: the hash the weights are
    stored under (computed from the model when omitted); ``model_id``: the service's id.
    """
    served = model.served_map()
    report, source = exported_certificate(model, certificate)
    if weights_sha256 is None:
        _, weights = model_to_parts(model)
        weights_sha256 = hashlib.sha256(weights).hexdigest()
    bound = report.certified if report.certified is not None and math.isfinite(report.certified) else None
    metadata = OnnxMetadata(
        lipschitz_bound=bound,
        certified_by=report.certified_by if bound is not None else None,
        topology=report.topology,
        served_map_sha256=served.fingerprint,
        arithmetic=ARITHMETIC,
        certificate_source=source,
        certificate=report,
        lipspline_version=__version__,
        weights_sha256=weights_sha256,
        task=model.task,
        classes=None if model.classes is None else list(model.classes),
        feature_names=list(model.feature_names),
        n_features=served.n_features,
        n_outputs=served.n_outputs,
        model_id=model_id,
    )
    proto = helper.make_model(
        served_map_graph(served),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="lipspline",
        producer_version=__version__,
        doc_string=(
            f"LipSpline served map ({model.task}), raw float64 inputs -> outputs"
            f"{' (logits)' if model.task == 'classification' else ' (target units)'}; "
            f"certified {report.topology} Lipschitz bound {bound} ({report.certified_by}); see metadata_props."
        ),
    )
    proto.ir_version = IR_VERSION
    set_metadata(proto, metadata)
    return proto


def onnx_bytes(model: TrainedModel, **options) -> bytes:
    """The serialised ONNX file of ``model`` (options as :func:`onnx_model`)."""
    return onnx_model(model, **options).SerializeToString()


def to_onnx(model: TrainedModel, path_or_file: str | Path | BinaryIO, **options) -> None:
    """Write the ONNX file of ``model`` to a path or a binary file object (options as :func:`onnx_model`)."""
    data = onnx_bytes(model, **options)
    if isinstance(path_or_file, str | Path):
        Path(path_or_file).write_bytes(data)
    else:
        path_or_file.write(data)
