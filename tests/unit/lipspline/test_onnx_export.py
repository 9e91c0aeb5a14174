"""The exported ONNX graph computes the served map, with the certificate in its metadata.

Each exported file is run by onnxruntime (no mock) and compared with
``TrainedModel.outputs``, the function the service serves and the certificate
bounds, for every activation kind, MLP and CNN (densified convolutions and the
opaque conv prefix), untrained networks with perturbed parameters:

* random raw inputs around the training distribution;
* inputs far outside the spline grid (standardised values up to 1e4 x the range),
  where the splines continue with their end slopes;
* inputs that standardise exactly onto the knots, and networks whose first
  activation receives exactly its knots (and one ulp to either side), where a
  one-cell slip in the graph's cell search would show.

The required agreement is 1e-5 relative / 1e-6 absolute; the graph is float64, so
the assertion is much tighter (1e-12 of the output magnitude), and the measured
worst differences are printed after the module.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from collections.abc import Iterator

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import lipspline.certificates.view as view_module
from lipspline import __version__
from lipspline.certificates import ARITHMETIC, CertificateReport, certify_global
from lipspline.certificates.view import GroupSortView
from lipspline.export import OnnxMetadata, onnx_bytes, onnx_model, read_onnx_metadata, to_onnx
from lipspline.export.onnx import INPUT_NAME, OUTPUT_NAME
from lipspline.export.onnx_metadata import OnnxMetadataError, metadata_from_props
from lipspline.nn.layers import served_weight
from lipspline.nn.model import TrainedModel
from lipspline.nn.serialization import model_to_parts
from tests.unit.lipspline.certificates.networks import ACTIVATIONS, JITTER, Scaling, network_config, random_network

#: mlp, cnn with densified convolutions, cnn whose convolutions stay convolutions (the opaque prefix)
ARCHITECTURES = ["mlp", "cnn", "cnn_opaque"]
#: required by the issue: 1e-5 relative and 1e-6 absolute; float64 allows far less
RELATIVE = 1e-12
KNOTS = 9
RANGE = 2.0
HIDDEN = [6, 4]
#: the CNN's extra architecture: 2 x 5 x 5 images, two strided convolutions
CNN = {"kind": "cnn", "input_shape": [2, 5, 5], "conv_channels": [4, 2], "kernel_size": 3, "conv_stride": 2}
#: measured worst difference per activation kind, printed after the module: absolute, relative to
#: each entry, and relative to the batch's largest output (float64's natural scale for a sum)
WORST: dict[str, tuple[float, float, float]] = {}


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    print("\nONNX vs served map: worst |difference| per activation (absolute, per entry, per batch max |output|)")
    for name in sorted(WORST):
        absolute, relative, scaled = WORST[name]
        print(f"  {name}: {absolute:.3g} abs, {relative:.3g} rel, {scaled:.3g} of max|output|")


def make_model(
    activation: str, architecture: str = "mlp", mode: str = "bv2", task: str = "regression", seed: int = 0
) -> TrainedModel:
    """A small untrained model with perturbed parameters, scaling and (regression) target scaling."""
    structure = {
        "mode": mode,
        "knots": KNOTS,
        "spline_range": RANGE,
        "architecture": CNN if architecture != "mlp" else None,
    }
    n_features = 50 if architecture != "mlp" else 5
    n_outputs = 3 if task == "classification" else 1
    rng = np.random.default_rng(seed)
    scaling = Scaling(
        input_mean=torch.from_numpy(rng.normal(size=n_features) * 100.0),
        input_scale=torch.from_numpy(rng.uniform(0.1, 20.0, n_features)),
        target_mean=float(rng.normal() * 50) if task == "regression" else 0.0,
        target_scale=float(rng.uniform(0.5, 8.0)) if task == "regression" else 1.0,
    )
    # the initial parameters come from the seed, the global RNG is left untouched
    network = random_network(
        activation, HIDDEN, n_in=n_features, n_out=n_outputs, seed=seed, **structure, scaling=scaling, draw=JITTER
    )
    config = network_config(activation, HIDDEN, **structure)
    classes = ["setosa", "versicolor", "virginica"] if task == "classification" else None
    return TrainedModel(network.eval(), config, task, classes, [f"feature {i}" for i in range(n_features)])


def export(model: TrainedModel, architecture: str, monkeypatch: pytest.MonkeyPatch, **options) -> bytes:
    """The ONNX bytes; ``cnn_opaque`` forbids densifying convolutions, as for large images."""
    if architecture == "cnn_opaque":
        monkeypatch.setattr(view_module, "DENSE_CONV_LIMIT", 0)
    model._served = None  # the served map is rebuilt under the patched limit
    data = onnx_bytes(model, **options)
    if architecture == "cnn_opaque":
        assert model.served_map().prefix_fold is not None, "the opaque conv prefix was not exercised"
    return data


def run(data: bytes, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def assert_matches(graph: np.ndarray, served: np.ndarray, kind: str) -> None:
    assert graph.dtype == np.float64 and graph.shape == served.shape
    scale = max(1.0, float(np.abs(served).max()))
    difference = np.abs(graph - served)
    relative = difference / np.maximum(np.abs(served), 1e-300)
    measured = (float(difference.max()), float(relative[served != 0].max(initial=0)), float(difference.max()) / scale)
    WORST[kind] = tuple(max(a, b) for a, b in zip(WORST.get(kind, (0.0, 0.0, 0.0)), measured, strict=True))
    np.testing.assert_allclose(graph, served, rtol=RELATIVE, atol=RELATIVE * scale)


def raw_inputs(model: TrainedModel, standardized: np.ndarray) -> np.ndarray:
    """Raw rows whose standardised values are ``standardized``."""
    network = model.network
    return network.input_mean.numpy() + standardized * network.input_scale.numpy()


# ---- parity --------------------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_graph_equals_served_map(activation: str, architecture: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(activation, architecture, seed=ACTIVATIONS.index(activation))
    data = export(model, architecture, monkeypatch)
    rng = np.random.default_rng(7)
    n = model.n_features
    near = raw_inputs(model, rng.normal(size=(64, n)) * 1.5)
    far = raw_inputs(model, rng.choice([-1.0, 1.0], size=(32, n)) * rng.uniform(50, 1e4, size=(32, n)) * RANGE)
    on_knots = raw_inputs(model, rng.choice(np.linspace(-RANGE, RANGE, KNOTS), size=(32, n)))
    for x in (near, far, on_knots, near[:1]):  # near[:1]: a batch of one (the batch axis is dynamic)
        assert_matches(run(data, x), model.outputs(x).numpy(), activation)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_graph_equals_the_pytorch_model(activation: str, architecture: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's check against the PyTorch forward (in float64): 1e-5 relative, 1e-6 of the output scale.

    The PyTorch forward is not the served map: the view folds the input scales in rounded
    to 29 bits and the target scale rounded to 24 bits (``view.py``), so the two differ by
    up to ~6e-8 of the outputs' magnitude (1.4e-5 on outputs of 150 for PReLU here) and an
    output near zero can miss a per-entry 1e-6. The absolute tolerance is therefore 1e-6
    times the batch's largest output; the graph matches the served map itself far tighter.
    """
    model = make_model(activation, architecture, seed=20 + ACTIVATIONS.index(activation))
    data = export(model, architecture, monkeypatch)
    torch_model = copy.deepcopy(model.network).double().eval()
    rng = np.random.default_rng(9)
    n = model.n_features
    for standardized in (
        rng.normal(size=(32, n)),
        rng.choice([-1.0, 1.0], size=(16, n)) * rng.uniform(50, 1e4, size=(16, n)) * RANGE,
        rng.choice(np.linspace(-RANGE, RANGE, KNOTS), size=(16, n)),
    ):
        x = raw_inputs(model, standardized)
        with torch.no_grad():
            expected = torch_model(torch.from_numpy(x)).numpy()
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(run(data, x), expected, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_one_lipschitz_layers_export_their_served_weights(
    activation: str, architecture: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Normalised weights: the graph holds ``served_weight`` (proven norm <= 1), not the raw parameters."""
    model = make_model(activation, architecture, mode="one_lipschitz", task="classification", seed=3)
    with torch.no_grad():
        for layer in model.network.layers:
            layer.weight.mul_(5.0)  # every stored parameter has norm > 1: normalising changes it
    data = export(model, architecture, monkeypatch)
    x = raw_inputs(model, np.random.default_rng(8).normal(size=(64, model.n_features)) * 3)
    assert_matches(run(data, x), model.outputs(x).numpy(), f"{activation} (1-Lipschitz)")
    last = model.network.layers[-1]
    arrays = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load_model_from_string(data).graph.initializer}
    exported = arrays[f"layer{len(model.network.layers) - 1}_weight_t_0"].T  # classifier: no target scale
    assert np.array_equal(exported, served_weight(last).double().numpy())
    assert np.linalg.norm(exported, 2) <= 1.0 < np.linalg.norm(last.weight.detach().double().numpy(), 2)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_first_activation_exactly_on_its_knots(activation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first layer is the identity and the scaling trivial, so the first activation sees every knot exactly."""
    model = make_model(activation, "mlp", seed=5)
    network = model.network
    units = network.layers[0].weight.shape[0]
    with torch.no_grad():
        network.layers[0].weight.copy_(torch.eye(units, network.n_features))
        network.layers[0].bias.zero_()
        network.input_mean.zero_()
        network.input_scale.fill_(1.0)
    model._served = None
    view = model.served_map().view.activations[0]
    knots = np.linspace(-RANGE, RANGE, KNOTS) if isinstance(view, GroupSortView) else view.t
    points = np.concatenate([knots, np.nextafter(knots, -np.inf), np.nextafter(knots, np.inf)])
    standardized = np.stack([np.roll(points, shift) for shift in range(network.n_features)], axis=1)
    x = raw_inputs(model, standardized)
    first = model.served_map().preactivations(x)[0]
    assert np.isin(first[:, 0], points).all(), "the construction did not hit the knots exactly"
    assert_matches(run(export(model, "mlp", monkeypatch), x), model.outputs(x).numpy(), activation)


# ---- the file itself -----------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_checker_passes_and_only_standard_ops(architecture: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model("deepspline", architecture)
    proto = onnx.load_model_from_string(export(model, architecture, monkeypatch))
    onnx.checker.check_model(proto, full_check=True)
    assert {opset.domain for opset in proto.opset_import} == {""}
    assert {node.domain for node in proto.graph.node} == {""}
    (graph_input,) = proto.graph.input
    (graph_output,) = proto.graph.output
    assert graph_input.name == INPUT_NAME and graph_output.name == OUTPUT_NAME
    for value, width in ((graph_input, model.n_features), (graph_output, 1)):
        tensor = value.type.tensor_type
        assert tensor.elem_type == onnx.TensorProto.DOUBLE
        assert tensor.shape.dim[0].dim_param and tensor.shape.dim[1].dim_value == width


def test_to_onnx_writes_paths_and_files(tmp_path) -> None:
    model = make_model("deepspline")
    stored = _report_of(model)  # a fresh certificate would differ in its timings
    to_onnx(model, tmp_path / "model.onnx", certificate=stored)
    buffer = io.BytesIO()
    to_onnx(model, buffer, certificate=stored)
    assert (tmp_path / "model.onnx").read_bytes() == buffer.getvalue() == onnx_bytes(model, certificate=stored)


# ---- metadata ------------------------------------------------------------------------------------
def _report_of(model: TrainedModel, **changes) -> CertificateReport:
    fresh = certify_global(model.network).to_json()
    fields = {"served_map_sha256": model.served_map().fingerprint, "arithmetic": ARITHMETIC} | changes
    return CertificateReport(**(fresh | fields))


def test_metadata_round_trips_a_stored_certificate() -> None:
    model = make_model("prelu", task="classification")
    stored = _report_of(model, best_lower_bound=0.5, notes=["stored by the worker"])
    data = onnx_bytes(model, certificate=stored, weights_sha256="ab" * 32, model_id="model-123")
    expected = OnnxMetadata(
        lipschitz_bound=stored.certified,
        certified_by=stored.certified_by,
        topology="l2",
        served_map_sha256=model.served_map().fingerprint,
        arithmetic="float64",
        certificate_source="stored",
        certificate=stored,
        lipspline_version=__version__,
        weights_sha256="ab" * 32,
        task="classification",
        classes=["setosa", "versicolor", "virginica"],
        feature_names=[f"feature {i}" for i in range(5)],
        n_features=5,
        n_outputs=3,
        model_id="model-123",
    )
    assert read_onnx_metadata(data) == expected
    # what a platform sees through onnxruntime reads back the same
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    assert metadata_from_props(props) == expected
    assert float(props["lipspline.lipschitz_bound"]) == stored.certified
    assert props["lipspline.weights_sha256"] == "ab" * 32
    assert json.loads(props["lipspline.classes"]) == ["setosa", "versicolor", "virginica"]


def test_a_certificate_of_another_map_is_not_exported() -> None:
    """A stored report about a different function (another fingerprint) is replaced by a fresh certificate."""
    model = make_model("deepspline")
    foreign = _report_of(model, served_map_sha256="0" * 64, certified=1e-9, certified_by="forged")
    metadata = read_onnx_metadata(onnx_bytes(model, certificate=foreign))
    assert metadata.certificate_source == "recomputed"
    assert metadata.lipschitz_bound == certify_global(model.network).certified != 1e-9
    assert metadata.certificate.served_map_sha256 == model.served_map().fingerprint
    _, weights = model_to_parts(model)
    assert metadata.weights_sha256 == hashlib.sha256(weights).hexdigest()
    assert metadata.model_id is None and metadata.classes is None


def test_the_exported_bound_bounds_the_graph() -> None:
    """Difference quotients of the ONNX outputs stay below the bound in the file (a sanity check of pairing)."""
    model = make_model("deepspline", seed=11)
    data = onnx_bytes(model)
    bound = read_onnx_metadata(data).lipschitz_bound
    rng = np.random.default_rng(2)
    x = raw_inputs(model, rng.normal(size=(200, model.n_features)))
    y = x + rng.normal(size=x.shape) * 1e-3
    quotients = np.linalg.norm(run(data, x) - run(data, y), axis=1) / np.linalg.norm(x - y, axis=1)
    assert bound is not None and quotients.max() <= bound


def test_reading_a_foreign_onnx_file_fails_clearly() -> None:
    proto = onnx_model(make_model("relu"))
    del proto.metadata_props[:]
    with pytest.raises(OnnxMetadataError, match="not a LipSpline ONNX export"):
        read_onnx_metadata(proto)
