"""The one outputs -> label rule (``lipspline.nn.label_rule.label_of``) and the one inference answer
(``service/inference/answers.py``).

Real networks, real served maps and certificates: the answer's fields are checked against the
certificate functions applied to the served map by hand, for a classifier and a regressor, in
float64 and float32; the refusals (no certificate, outputs that overflow) are the problems the
routes answer with.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from api_schemas import TrainingConfig
from lipspline.certificates import (
    ARITHMETIC,
    CertificateReport,
    certify_global,
    served_output_bound,
    served_radius,
)
from lipspline.nn.label_rule import label_of
from lipspline.nn.model import TrainedModel, classes_of
from lipspline.nn.networks import SplineNetwork
from service.http.problems import ProblemError
from service.inference import answers as inference
from service.inference.model_cache import LoadedModel

CLASSES = ["setosa", "versicolor", "virginica"]


# ---- label_of --------------------------------------------------------------------------------------
def test_label_of_one_logit_is_class_one_only_above_zero() -> None:
    outputs = np.array([[2.5], [-0.1], [0.0], [1e-300], [-0.0]])
    labels = label_of(outputs)
    assert labels.dtype == np.int64
    assert labels.tolist() == [1, 0, 0, 1, 0]


def test_label_of_several_outputs_is_the_largest_the_first_on_a_tie() -> None:
    outputs = np.array([[0.1, 0.3, -2.0], [5.0, 5.0, 1.0], [-3.0, -2.0, -1.0], [0.0, 0.0, 0.0]])
    assert label_of(outputs).tolist() == [1, 0, 2, 0]


def test_label_of_torch_gives_the_same_labels_as_numpy() -> None:
    rng = np.random.default_rng(0)
    for width in (1, 2, 5):
        outputs = rng.normal(size=(64, width))
        from_torch = label_of(torch.from_numpy(outputs))
        assert isinstance(from_torch, torch.Tensor) and from_torch.dtype == torch.long
        assert from_torch.tolist() == label_of(outputs).tolist()


def test_predictions_are_the_classes_label_of_names() -> None:
    model = _model("classification")
    outputs = np.array([[0.0, 1.0, -1.0], [3.0, 2.0, 1.0], [-1.0, -1.0, 0.5]])
    assert model.predictions_from_outputs(outputs) == ["versicolor", "setosa", "virginica"]
    assert classes_of(label_of(outputs), [7, 8, 9]) == [8, 7, 9]  # integer classes stay integers


# ---- the inference answer --------------------------------------------------------------------------
def _model(task: str, seed: int = 0) -> TrainedModel:
    config = TrainingConfig.model_validate({"architecture": {"hidden": [6, 4], "activation": "deepspline"},
                                            "spline": {"knots": 11, "range": 2.0}})
    n_outputs = 3 if task == "classification" else 1
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        network = SplineNetwork(config, 4, n_outputs, target_mean=0.0, target_scale=1.0)
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.add_(0.5 * torch.randn(parameter.shape))
    classes = CLASSES if task == "classification" else None
    return TrainedModel(network.eval(), config, task, classes, [f"x{i}" for i in range(4)])


def _loaded(task: str, *, certified: bool = True) -> LoadedModel:
    model = _model(task)
    report = certify_global(model.network).to_json()
    certificate = CertificateReport(**(report | {"served_map_sha256": model.served_map().fingerprint,
                                                 "arithmetic": ARITHMETIC}))
    bound = float(certificate.certified) if certified else None
    return LoadedModel("m" * 32, "tenant", model, certificate, threading.Lock(), bound)


@pytest.fixture(scope="module")
def classifier() -> LoadedModel:
    return _loaded("classification")


@pytest.fixture(scope="module")
def regressor() -> LoadedModel:
    return _loaded("regression")


ROWS = np.random.default_rng(1).normal(size=(32, 4)) * 3.0


def test_classifier_answer_is_the_served_map_and_its_certificate(classifier: LoadedModel) -> None:
    found = inference.answer(classifier, ROWS, 0.25)
    served = classifier.served_map.evaluate(ROWS)
    lipschitz = classifier.certified
    assert found.classifier and found.lipschitz_bound == lipschitz and found.epsilon == 0.25
    assert found.outputs.dtype == np.float64
    np.testing.assert_array_equal(found.outputs, served.outputs)
    np.testing.assert_array_equal(found.rounding, served.rounding)
    np.testing.assert_array_equal(found.labels, label_of(served.outputs))
    radius = served_radius(served, lipschitz)
    np.testing.assert_array_equal(found.certified_radius, np.where(np.isfinite(radius), radius, 0.0))
    np.testing.assert_array_equal(found.output_bounds, served_output_bound(served, lipschitz, 0.25))
    assert found.predictions() == classifier.model.predictions_from_outputs(served.outputs)
    assert set(found.predictions()) <= set(CLASSES)
    assert found.radius_source is None


def test_without_epsilon_there_is_no_output_bound(classifier: LoadedModel) -> None:
    found = inference.answer(classifier, ROWS)
    assert found.output_bounds is None and found.finite_output_bounds is None and found.epsilon is None


def test_regressor_answer_has_values_and_no_labels(regressor: LoadedModel) -> None:
    found = inference.answer(regressor, ROWS, 1.0)
    served = regressor.served_map.evaluate(ROWS)
    assert not found.classifier
    assert found.labels is None and found.certified_radius is None
    assert found.outputs.shape == (len(ROWS), 1)
    assert found.predictions() == served.outputs[:, 0].tolist()
    np.testing.assert_array_equal(found.output_bounds, served_output_bound(served, regressor.certified, 1.0))
    np.testing.assert_array_equal(found.finite_output_bounds, found.output_bounds)


def test_float32_answer_covers_the_cast(classifier: LoadedModel) -> None:
    wide = inference.answer(classifier, ROWS, 0.25)
    narrow = inference.answer(classifier, ROWS, 0.25, output_dtype=np.float32)
    assert narrow.outputs.dtype == np.float32
    np.testing.assert_array_equal(narrow.outputs, wide.outputs.astype(np.float32))
    # the cast is one more error: every bound widens, no radius grows
    assert (narrow.rounding > wide.rounding).all()
    assert (narrow.output_bounds > wide.output_bounds).all()
    assert (narrow.certified_radius <= wide.certified_radius).all()
    np.testing.assert_array_equal(narrow.labels, label_of(narrow.outputs.astype(np.float64)))
    with pytest.raises(ValueError, match="float64 or float32"):
        inference.answer(classifier, ROWS, output_dtype=np.float16)


def test_a_model_without_a_certificate_is_the_409_no_certificate() -> None:
    uncertified = _loaded("classification", certified=False)
    with pytest.raises(ProblemError) as caught:
        inference.answer(uncertified, ROWS)
    assert caught.value.status == 409 and caught.value.kind == "no-certificate"


def test_rows_that_overflow_are_refused_naming_the_first(classifier: LoadedModel) -> None:
    rows = ROWS[:3].copy()
    rows[2] = 1e308  # finite input whose outputs (or their rounding bound) overflow float64
    with pytest.raises(ProblemError) as caught:
        inference.answer(classifier, rows)
    assert caught.value.status == 422
    assert "inputs.2" in caught.value.detail and "overflow float64" in caught.value.detail

    seen: list[tuple[int, str]] = []

    def refuse(row: int, dtype: str) -> Exception:
        seen.append((row, dtype))
        return ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        inference.answer(classifier, rows, on_overflow=refuse)
    assert seen == [(2, "float64")]


def test_outputs_beyond_float32_are_refused_as_float32(regressor: LoadedModel) -> None:
    # rows along a ray, far enough that some outputs pass float32's range (~3.4e38) while float64
    # still holds them and their rounding bound
    rows = np.vstack([ROWS[:1], np.ones((1, 4)) * np.logspace(30, 200, 60)[:, None], -ROWS[:1]])
    served = regressor.served_map.evaluate(rows)
    finite = np.isfinite(served.outputs[:, 0]) & np.isfinite(served.rounding)
    beyond = np.flatnonzero(finite & (np.abs(served.outputs[:, 0]) > np.finfo(np.float32).max))
    assert beyond.size, "no row of the ray has outputs beyond float32 and finite in float64"
    rows = np.vstack([rows[:1], rows[beyond[:1]]])  # row 1 is the first beyond float32
    assert np.isfinite(inference.answer(regressor, rows).outputs).all()  # float64: answered
    seen: list[tuple[int, str]] = []

    def refuse(row: int, dtype: str) -> Exception:
        seen.append((row, dtype))
        return ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        inference.answer(regressor, rows, output_dtype=np.float32, on_overflow=refuse)
    assert seen == [(1, "float32")]
