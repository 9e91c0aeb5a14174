"""The served map against exact rational arithmetic: rounding bounds, radii and output bounds hold.

The oracle evaluates F, the function the certificates bound, with ``fractions.Fraction``
from the very arrays of the certified chain (``build_view``): no rounding at all. It
shares no code with ``served_map.py``: its spline slopes are exact quotients of knot
differences, its GroupSort pairs come from the layout rule written out here.

Every test attacks one statement the endpoint makes about the numbers it returns:
``|g(x) - F(x)| <= e(x)``, the same over a ball, labels that cannot flip inside the
returned radius (nudged by float64 ulps, along the worst direction, at offsets up to
1e8 and spreads down to 1e-6), outputs that move by at most ``output_bound``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_schemas import TrainingConfig
from lipspline.certificates import (
    ServedMap,
    certify_global,
    exact_lipschitz_1d,
    jacobian_lower_bound,
    served_output_bound,
    served_radius,
)
from lipspline.certificates import served_map as served_map_module
from lipspline.certificates.view import GroupSortView, build_view
from lipspline.data import Dataset, train_validation_split
from lipspline.nn.networks import SplineNetwork
from lipspline.training.loop import fit
from tests.unit.lipspline.certificates.networks import ACTIVATIONS, JITTER, Scaling, random_network

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: what the suite saw: worst measured/bound ratio per statement, and how many checks it made
WORST: dict[str, float] = {}
CHECKS: dict[str, int] = {}


def _record(name: str, ratio: float, checks: int = 1) -> None:
    WORST[name] = max(WORST.get(name, 0.0), float(ratio))
    CHECKS[name] = CHECKS.get(name, 0) + checks


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    """After the module: print the worst ratio to each bound (every one is also asserted where measured)."""
    yield
    print("\nserved-map suite: worst measured ratio to each bound (checks)")
    for name in sorted(WORST):
        print(f"  {name}: {WORST[name]:.3g} ({CHECKS[name]})")


def random_net(
    seed: int, n_in: int, hidden: list[int], n_out: int, activation: str, offset: float, spread: float
) -> SplineNetwork:
    """The shared random network (jittered) whose inputs sit around ``offset`` with a tiny ``spread``."""
    rng = np.random.default_rng(seed)
    scaling = Scaling(
        input_mean=torch.from_numpy(offset * rng.uniform(-1, 1, n_in)),
        input_scale=torch.from_numpy(spread * rng.uniform(0.5, 2.0, n_in)),
        target_mean=float(rng.normal() * offset),
        target_scale=float(rng.uniform(0.1, 10.0)),
    )
    net = random_network(activation, hidden, n_in=n_in, n_out=n_out, seed=seed, scaling=scaling, draw=JITTER)
    return net.eval()


# ---- the exact oracle --------------------------------------------------------------------------
def _exact_activation(view, h: list[Fraction]) -> list[Fraction]:
    if isinstance(view, GroupSortView):
        out = list(h)
        for group in range(0, view.n_units, 2 * view.block):
            for j in range(view.block):
                a, b = group + j, group + j + view.block
                out[a], out[b] = max(h[a], h[b]), min(h[a], h[b])
        return out
    t = [Fraction(float(v)) for v in view.t]
    result = []
    for unit, x in enumerate(h):
        v = [Fraction(float(c)) for c in view.v[unit]]
        if len(t) == 1:  # ReLU family: two rays through (0, 0) with the view's exact slopes
            slope = Fraction(float(view.s[unit, 0] if x < t[0] else view.s[unit, 1]))
            result.append(v[0] + slope * (x - t[0]))
            continue
        k = sum(1 for knot in t if knot <= x)  # cell index: t[k-1] <= x < t[k]
        left = min(max(k - 1, 0), len(t) - 2)  # outer cells continue the end pieces
        slope = (v[left + 1] - v[left]) / (t[left + 1] - t[left])
        result.append(v[left] + slope * (x - t[left]))
    return result


def exact_outputs(net: SplineNetwork, x: np.ndarray) -> list[list[Fraction]]:
    """F(x) in exact rational arithmetic, row by row."""
    view = build_view(net)
    target_mean = Fraction(float(net.target_mean))
    rows = []
    for row in x:
        a = [Fraction(float(xi)) - Fraction(float(m)) for xi, m in zip(row, view.input_mean, strict=True)]
        for index, (w, b) in enumerate(zip(view.weights, view.biases, strict=True)):
            h = [
                sum((Fraction(float(wij)) * aj for wij, aj in zip(wi, a, strict=True)), Fraction(float(bi)))
                for wi, bi in zip(w, b, strict=True)
            ]
            a = _exact_activation(view.activations[index], h) if index < len(view.activations) else h
        rows.append([value + target_mean for value in a])
    return rows


def _excess(computed: np.ndarray, exact: list[list[Fraction]], bound: np.ndarray) -> float:
    """max over rows of ||computed - exact||_2 / bound, decided in exact arithmetic (must be <= 1)."""
    worst = 0.0
    for i, row in enumerate(exact):
        squared = sum((Fraction(float(computed[i, k])) - value) ** 2 for k, value in enumerate(row))
        limit = Fraction(float(bound[i])) ** 2
        if squared > limit:
            return math.inf
        if squared:
            worst = max(worst, math.sqrt(float(squared / limit)))
    return worst


nets = st.builds(
    random_net,
    seed=st.integers(0, 10_000),
    n_in=st.integers(1, 3),
    hidden=st.sampled_from([[], [4], [4, 6], [2, 2, 2]]),
    n_out=st.integers(1, 3),
    activation=st.sampled_from(ACTIVATIONS),
    offset=st.sampled_from([0.0, 1.0, 1e3, 1e6, 1e8]),
    spread=st.sampled_from([1e-6, 1e-3, 1.0, 1e3]),
)


@given(net=nets, seed=st.integers(0, 1000))
@SETTINGS
def test_rounding_bound_holds_at_the_point_and_over_the_ball(net: SplineNetwork, seed: int) -> None:
    served = ServedMap(net)
    rng = np.random.default_rng(seed)
    spread = net.input_scale.numpy()
    centres = net.input_mean.numpy() + spread * rng.normal(size=(3, net.n_features)) * 2
    result = served.evaluate(centres)
    excess = _excess(result.outputs, exact_outputs(net, centres), result.rounding)
    _record("||g(x) - F(x)|| / E(x)", excess)
    assert excess <= 1.0
    # every y of an l2 ball of radius rho: ||g(y) - F(y)|| <= E(x) + rho S
    for rho in (float(spread.min()) * 1e-3, float(spread.max())):
        for i, centre in enumerate(centres):
            direction = rng.normal(size=(4, net.n_features))
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            ys = centre + direction * rho * rng.uniform(0, 1, size=(4, 1))
            bound = np.full(len(ys), result.rounding[i] + rho * result.ball_slope)
            excess = _excess(served.outputs(ys), exact_outputs(net, ys), bound)
            _record("||g(y) - F(y)|| / (E(x) + rho S)", excess)
            assert excess <= 1.0


def _ulp_neighbours(x: np.ndarray, steps: int = 3) -> np.ndarray:
    """x nudged by 1..steps float64 ulps up and down in every coordinate, one coordinate at a time."""
    out = []
    for j in range(x.shape[0]):
        for k in range(1, steps + 1):
            for direction in (np.inf, -np.inf):
                y = x.copy()
                for _ in range(k):
                    y[j] = np.nextafter(y[j], direction)
                out.append(y)
    return np.array(out)


@given(net=nets, seed=st.integers(0, 1000))
@SETTINGS
def test_pairs_straddling_rounding_points_respect_the_bound_plus_rounding(net: SplineNetwork, seed: int) -> None:
    """||g(x) - g(y)|| <= L ||x - y|| + E(x) + E(y) for ulp neighbours and float32 rounding points."""
    lipschitz = certify_global(net).certified
    served = ServedMap(net)
    rng = np.random.default_rng(seed)
    spread = net.input_scale.numpy()
    x = net.input_mean.numpy() + spread * rng.normal(size=net.n_features)
    # float32 rounding points: where the old float32 endpoint jumped
    x32 = x.astype(np.float32).astype(np.float64)
    half = np.nextafter(x32.astype(np.float32), np.float32(np.inf)).astype(np.float64)
    points = np.vstack([x[None, :], _ulp_neighbours(x), x32[None, :], ((x32 + half) / 2)[None, :], half[None, :]])
    result = served.evaluate(points)
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            distance = float(np.linalg.norm(points[i] - points[j]))
            moved = float(np.linalg.norm(result.outputs[i] - result.outputs[j]))
            allowed = lipschitz * distance + result.rounding[i] + result.rounding[j]
            _record("pair move / (L d + E(x) + E(y))", moved / allowed)
            assert moved <= allowed


@given(
    seed=st.integers(0, 10_000),
    activation=st.sampled_from(ACTIVATIONS),
    n_out=st.sampled_from([1, 3]),
    offset=st.sampled_from([0.0, 1e6, 1e8]),
    spread=st.sampled_from([1e-6, 1e-3, 1.0]),
)
@SETTINGS
def test_labels_never_flip_inside_the_served_radius(
    seed: int, activation: str, n_out: int, offset: float, spread: float
) -> None:
    """Worst-direction and ulp-nudged points inside the returned radius keep the returned label."""
    net = random_net(seed, 2, [6, 6], n_out, activation, offset, spread)
    lipschitz = certify_global(net).certified
    served = ServedMap(net)
    rng = np.random.default_rng(seed)
    x = net.input_mean.numpy() + spread * rng.normal(size=(16, 2))
    result = served.evaluate(x)
    radius = served_radius(result, lipschitz)
    labels = _labels(result.outputs)
    jac = served.jacobians(x)
    for i in np.flatnonzero(radius > 0):
        # towards the decision boundary along the local gradient of the margin, to just inside r
        grad = jac[i, 0] if n_out == 1 else jac[i, labels[i]] - jac[i, np.argsort(result.outputs[i])[-2]]
        sign = -1.0 if (n_out > 1 or result.outputs[i, 0] > 0) else 1.0
        step = sign * grad / max(np.linalg.norm(grad), 1e-300)
        edge = x[i] + step * radius[i] * (1 - 1e-12)
        trials = np.vstack([edge[None, :], _ulp_neighbours(edge, 2), x[i] + rng.normal(size=(8, 2)) * radius[i] / 3])
        inside = np.linalg.norm(trials - x[i], axis=1) < radius[i]
        moved = _labels(served.outputs(trials[inside]))
        assert np.all(moved == labels[i])
        _record("label flips inside the radius", 0.0, checks=int(inside.sum()))


def _labels(outputs: np.ndarray) -> np.ndarray:
    return (outputs[:, 0] > 0).astype(int) if outputs.shape[1] == 1 else outputs.argmax(axis=1)


@given(net=nets, seed=st.integers(0, 1000), eps_scale=st.sampled_from([1e-9, 1e-3, 1.0, 10.0]))
@SETTINGS
def test_output_bound_holds_for_returned_outputs(net: SplineNetwork, seed: int, eps_scale: float) -> None:
    lipschitz = certify_global(net).certified
    served = ServedMap(net)
    rng = np.random.default_rng(seed)
    spread = net.input_scale.numpy()
    x = net.input_mean.numpy() + spread * rng.normal(size=(2, net.n_features))
    eps = eps_scale * float(spread.min())
    result = served.evaluate(x)
    bounds = served_output_bound(result, lipschitz, eps)
    for i in range(2):
        direction = rng.normal(size=(32, net.n_features))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        ys = x[i] + direction * eps * rng.uniform(0.5, 1.0, size=(32, 1))
        ys = ys[np.linalg.norm(ys - x[i], axis=1) <= eps]
        moved = np.linalg.norm(served.outputs(ys) - result.outputs[i], axis=1)
        if moved.size:
            _record("output move / output_bound", float(moved.max() / bounds[i]))
        assert np.all(moved <= bounds[i])


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_certificate_dominates_optimised_lower_bounds_and_exact_1d(activation: str) -> None:
    for seed in range(3):
        net = random_net(seed, 1, [6, 6], 2, activation, offset=1e6, spread=1e-3)
        certified = certify_global(net).certified
        exact = exact_lipschitz_1d(net)
        x = net.input_mean.numpy()[None, :] + 1e-3 * np.random.default_rng(seed).normal(size=(32, 1))
        lower = jacobian_lower_bound(net, x)
        _record("jacobian lower / certified", lower / certified)
        _record("exact 1-D / certified", exact / certified)
        assert lower <= exact * (1 + 1e-9)
        assert exact <= certified


def test_one_lipschitz_served_map_certifies_at_most_one_and_moves_at_most_distance_plus_rounding() -> None:
    kinds = [(a, "spectral") for a in ("deepspline", "groupsort", "abs", "prelu")]
    kinds += [("groupsort", "bjorck"), ("deepspline", "aol")]
    for activation, layer in kinds:
        config = TrainingConfig.model_validate({"architecture": {"hidden": [8, 8], "activation": activation},
                                                "objective": {"mode": "one_lipschitz", "one_lipschitz_layer": layer}})
        scale = torch.full((3,), 7.0)
        net = SplineNetwork(config, 3, 1, input_mean=torch.full((3,), 1e6), input_scale=scale, target_scale=7.0)
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(5.0)  # raw weights far above norm 1: the layers must rescale
        net.eval()
        certified = certify_global(net).certified
        assert certified <= 1.0
        served = ServedMap(net)
        rng = np.random.default_rng(1)
        x = 1e6 + 7.0 * rng.normal(size=(200, 3))
        y = x + rng.normal(size=(200, 3)) * 10.0 ** rng.uniform(-9, 1, size=(200, 1))
        gx, gy = served.evaluate(x), served.evaluate(y)
        moved = np.linalg.norm(gx.outputs - gy.outputs, axis=1)
        allowed = np.linalg.norm(x - y, axis=1) + gx.rounding + gy.rounding
        _record("1-Lip move / (d + E(x) + E(y))", float((moved / allowed).max()))
        assert np.all(moved <= allowed)


def test_large_offsets_train_and_serve_what_they_learned() -> None:
    """A feature 1e6 + 1e-3 N(0, 1): the served model predicts as well as training reported."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 2))
    X = np.c_[1e6 + 1e-3 * z[:, 0], -3e7 + 0.02 * z[:, 1]]
    y = (z[:, 0] - 0.5 * z[:, 1] > 0).astype(int)
    data = Dataset(X=X, y=y, task="classification", feature_names=["a", "b"], classes=[0, 1], name="offset")
    config = TrainingConfig.model_validate(
        {"architecture": {"hidden": [8]}, "training": {"epochs": 40, "lr": 0.01, "seed": 0}}
    )
    model = fit(data, config).model
    train, validation = train_validation_split(len(y), config.training.validation_split, config.training.seed)
    for name, index in (("train", train), ("validation", validation)):
        served_accuracy = float((np.asarray(model.predict(X[index])) == y[index]).mean())
        assert served_accuracy == model.metrics[name]["accuracy"]
        assert served_accuracy > 0.9


@given(exponent=st.integers(-300, 300), seed=st.integers(0, 1000), activation=st.sampled_from(["relu", "abs"]))
@SETTINGS
def test_the_rounding_bound_never_underflows_or_overflows_at_any_magnitude(
    exponent: int, seed: int, activation: str
) -> None:
    """Zero biases and inputs ~10^exponent: every layer value lives at that magnitude (ReLU and abs are
    positively homogeneous), where squaring used to underflow or overflow. E(x) must still bound the error."""
    config = TrainingConfig.model_validate({"architecture": {"hidden": [4, 3], "activation": activation}})
    torch.manual_seed(seed)
    net = SplineNetwork(config, 3, 2).to(torch.float64)
    with torch.no_grad():
        for layer in net.layers:
            layer.bias.zero_()
    net.eval()
    served = ServedMap(net)
    x = np.random.default_rng(seed).normal(size=(3, 3)) * 10.0**exponent
    result = served.evaluate(x)
    assert np.isfinite(result.rounding).all()
    excess = _excess(result.outputs, exact_outputs(net, x), result.rounding)
    _record("||g(x) - F(x)|| / E(x), magnitudes 1e-300..1e300", excess)
    assert excess <= 1.0


# ---- the compiled pass (``_spline_kernels.c``) against the numpy reference and the exact oracle -------
def _reference_twin(net: SplineNetwork) -> ServedMap:
    """The same served map, forced onto the numpy reference path."""
    served = ServedMap(net)
    served._plans = None
    return served


needs_compiled = pytest.mark.skipif(
    not served_map_module.native_available(), reason="compiled served-map pass not built"
)


@needs_compiled
@given(net=nets, seed=st.integers(0, 1000))
@SETTINGS
def test_compiled_pass_computes_the_reference_outputs_and_a_sound_bound(net: SplineNetwork, seed: int) -> None:
    """Bit-identical outputs and pre-activations; its own E bounds the exact error; E agrees with the
    reference's to rounding (the norms are summed in another order, without the scaling pass)."""
    served, reference = ServedMap(net), _reference_twin(net)
    assert served._plans is not None
    rng = np.random.default_rng(seed)
    spread = net.input_scale.numpy()
    x = net.input_mean.numpy() + spread * rng.normal(size=(4, net.n_features)) * 3
    x = np.vstack([x, _ulp_neighbours(x[0], 2)])
    fast, slow = served.evaluate(x), reference.evaluate(x)
    assert np.array_equal(fast.outputs, slow.outputs)
    assert np.array_equal(served.outputs(x), fast.outputs)
    for a, b in zip(served.preactivations(x), reference.preactivations(x), strict=True):
        assert np.array_equal(a, b)
    np.testing.assert_allclose(fast.rounding, slow.rounding, rtol=1e-12)
    excess = _excess(fast.outputs, exact_outputs(net, x), fast.rounding)
    _record("compiled ||g(x) - F(x)|| / E(x)", excess)
    assert excess <= 1.0


@needs_compiled
def test_the_compiled_pass_refuses_arrays_too_short_or_not_contiguous() -> None:
    """The served kernels read the arrays' buffers and check their sizes against the rows they are told:
    a short or strided array is an error, never a read or a write past its end."""
    net = random_net(3, 2, [5, 4], 2, "deepspline", offset=0.0, spread=1.0)
    served = ServedMap(net)
    kernel, plan = served_map_module._native, served._plans[0]
    rows = 6
    h, out, error, norm = np.zeros((rows, 5)), np.zeros((rows, 5)), np.zeros(rows), np.ones(rows)
    kernel.served_step(plan, h, out, rows, error, norm, True, 1)  # the right sizes run
    with pytest.raises(ValueError, match="out holds"):
        kernel.served_step(plan, h, np.zeros((rows - 1, 5)), rows, error, norm, True, 1)
    with pytest.raises(ValueError, match="norm holds"):
        kernel.served_step(plan, h, out, rows, error, np.ones(rows - 1), True, 1)
    with pytest.raises((ValueError, BufferError, TypeError)):
        kernel.served_step(plan, np.zeros((rows, 10))[:, ::2], out, rows, error, norm, True, 1)
    x = np.zeros((rows, 3))
    with pytest.raises(ValueError, match="mean holds"):
        kernel.served_input(x, np.zeros(2), np.empty_like(x), rows, 3, error, norm, 1e-16, 4e-16, 1.0, True, 1)


@needs_compiled
@pytest.mark.parametrize("activation", ["deepspline", "leaky_relu", "prelu"])
def test_compiled_cells_are_exact_on_and_next_to_every_knot(activation: str) -> None:
    """Pre-activations exactly on the float64 knots and 1..3 ulps either side (where a guess from the
    nearly uniform spacing is not trusted): the compiled pass picks the reference's exact cell."""
    net = random_net(3, 2, [5, 4], 2, activation, offset=0.0, spread=1.0)
    served = ServedMap(net)
    act = served.activations[0]
    knots = act.view.t
    values = [knots]
    for steps in (1, 2, 3):
        up, down = knots.copy(), knots.copy()
        for _ in range(steps):
            up, down = np.nextafter(up, np.inf), np.nextafter(down, -np.inf)
        values += [up, down]
    column = np.concatenate(values + [np.array([np.inf, -np.inf, 1e300, -1e300, 0.0, -0.0])])
    h = np.ascontiguousarray(np.repeat(column[:, None], act.view.n_units, axis=1))
    out = np.empty_like(h)
    rows = h.shape[0]
    error, norm = np.zeros(rows), np.ones(rows)
    served_map_module._native.served_step(served._plans[0], h, out, rows, error, norm, True, 1)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = act.evaluate(h)
    np.testing.assert_array_equal(out, expected)


@needs_compiled
@given(
    exponent=st.integers(-300, 300),
    seed=st.integers(0, 1000),
    activation=st.sampled_from(ACTIVATIONS),
    zero_bias=st.booleans(),
)
@SETTINGS
def test_compiled_bound_holds_at_any_magnitude(exponent: int, seed: int, activation: str, zero_bias: bool) -> None:
    """Inputs ~10^exponent through every activation: rows whose largest entry leaves [2^-450, 2^450] take
    the scaled norm (as the reference), the others the one-pass norm; E must bound the exact error
    whenever it is finite, and be finite exactly when the reference's is."""
    config = TrainingConfig.model_validate(
        {"architecture": {"hidden": [4, 4], "activation": activation}, "spline": {"knots": 9, "range": 2.0}}
    )
    torch.manual_seed(seed)
    net = SplineNetwork(config, 3, 2).to(torch.float64)
    if zero_bias:
        with torch.no_grad():
            for layer in net.layers:
                layer.bias.zero_()
    net.eval()
    served, reference = ServedMap(net), _reference_twin(net)
    x = np.random.default_rng(seed).normal(size=(3, 3)) * 10.0**exponent
    with np.errstate(all="ignore"):
        fast, slow = served.evaluate(x), reference.evaluate(x)
    assert np.array_equal(fast.outputs, slow.outputs, equal_nan=True)
    assert np.array_equal(np.isfinite(fast.rounding), np.isfinite(slow.rounding))
    finite = np.isfinite(fast.rounding) & np.isfinite(fast.outputs).all(axis=1)
    if finite.any():
        excess = _excess(fast.outputs[finite], exact_outputs(net, x[finite]), fast.rounding[finite])
        _record("compiled ||g(x) - F(x)|| / E(x), magnitudes 1e-300..1e300", excess)
        assert excess <= 1.0


@needs_compiled
def test_compiled_pass_keeps_nan_as_an_unknown_error() -> None:
    net = random_net(1, 2, [4], 1, "deepspline", offset=0.0, spread=1.0)
    served, reference = ServedMap(net), _reference_twin(net)
    x = np.array([[np.nan, 0.0], [0.5, 0.25]])
    with np.errstate(invalid="ignore"):
        fast, slow = served.evaluate(x), reference.evaluate(x)
    assert np.isnan(fast.rounding[0]) and np.isnan(slow.rounding[0])
    assert np.isfinite(fast.rounding[1])


def test_served_map_survives_deepcopy_and_pickle() -> None:
    """Copies rebuild the compiled plans on their own tables (capsules do not travel)."""
    import copy
    import pickle

    net = random_net(2, 2, [4], 2, "deepspline", offset=0.0, spread=1.0)
    served = ServedMap(net)
    x = np.random.default_rng(2).normal(size=(5, 2))
    expected = served.evaluate(x)
    for clone in (copy.deepcopy(served), pickle.loads(pickle.dumps(served))):
        result = clone.evaluate(x)
        assert np.array_equal(result.outputs, expected.outputs)
        assert np.array_equal(result.rounding, expected.rounding)
