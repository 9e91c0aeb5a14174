"""The partition bounds (``lipspline.certificates.partition``): sound against exact and searched lower
bounds on random and adversarial networks, tight where the exact constant is known, and the domain
bound states its box and never replaces the global certificate."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lipspline.certificates import (
    certificate_report,
    certify_global,
    domain_bound,
    empirical_lower_bound,
    exact_lipschitz_1d,
    jacobian_lower_bound,
)
from lipspline.certificates import partition as P
from lipspline.certificates.global_bounds import analyze
from lipspline.certificates.served_map import ServedMap
from lipspline.nn.networks import SplineNetwork
from tests.unit.lipspline.certificates.networks import (
    ELEMENTWISE_ACTIVATIONS,
    Scaling,
    Uniform,
    random_network,
    stretched,
)

#: this file's networks: input mean N(0, 1) and scale U(0.2, 2.2) per feature, target scale 1.7 ...
SCALING = Scaling(input_mean=True, input_scale=Uniform(0.2, 2.0), target_scale=1.7, mean_first=True)
#: ... their initialised weights stretched, biases N(0, 0.5^2), activation parameters shifted (non-monotone
#: splines: slopes of both signs), with a strength of 0.7
DRAW = stretched(0.7, bias_std=0.5)


def jacobian_search(net: SplineNetwork, d: int, seed: int, spread: float) -> float:
    """Best lower bound found: Jacobian norms at random near and far points, pairs, and a hill climb."""
    served = ServedMap(net)
    rng = np.random.default_rng(seed)
    centre = net.input_mean.numpy()
    scale = net.input_scale.numpy()
    pts = np.concatenate(
        [centre + scale * rng.normal(size=(2000, d)) * r for r in (0.5, 2.0, spread, 20 * spread)], axis=0
    )
    best = float(np.linalg.norm(served.jacobians(pts), ord=2, axis=(1, 2)).max())
    best = max(best, empirical_lower_bound(served, pts[:600], max_pairs=20000))
    return max(best, jacobian_lower_bound(served, pts[:200], ascent_steps=10))


# ---- 1-D: global and exact up to rounding --------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    hidden=st.lists(st.sampled_from([2, 5, 8]), min_size=1, max_size=3),
    activation=st.sampled_from(ELEMENTWISE_ACTIVATIONS),
    n_out=st.integers(1, 3),
)
def test_partition_1d_dominates_the_exact_constant_and_is_tight(seed, hidden, activation, n_out) -> None:
    net = random_network(activation, hidden, n_in=1, n_out=n_out, seed=seed, scaling=SCALING, draw=DRAW)
    exact = exact_lipschitz_1d(net)
    value, how = P.partition_1d(analyze(net, use_cache=False).view, time_s=5.0)
    assert value is not None, how
    assert value >= exact * (1 - 1e-12), (value, exact)
    assert value <= exact * 1.01 + 1e-12, (value, exact, how)
    cert = certify_global(net, use_cache=False)
    assert cert.bounds["partition"] == pytest.approx(value, rel=1e-2)
    assert cert.certified <= value


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_partition_1d_on_knots_hit_exactly_and_extreme_scales(scale: float) -> None:
    """ReLU units with zero bias break exactly at the input mean (one float breakpoint shared by every
    unit of every layer): the pieces meet where all units sit at their knot, so each piece next to it
    sees every unit as ambiguous (the rounding of z there may have either sign). The bound must stay
    above the oracle at any scale; tightness is lost there (the interval fallback), never soundness,
    and the certificate is still the minimum with the other bounds."""
    net = random_network("relu", [6, 6], n_in=1, n_out=2, seed=3, scaling=SCALING, draw=replace(DRAW, bias_std=0.0))
    with torch.no_grad():
        net.input_scale.fill_(scale)
        net.input_mean.fill_(0.0)
    exact = exact_lipschitz_1d(net)
    value, how = P.partition_1d(analyze(net, use_cache=False).view, time_s=5.0)
    assert value is not None, how
    assert value >= exact * (1 - 1e-12)
    cert = certify_global(net, use_cache=False)
    assert exact * (1 - 1e-12) <= cert.certified <= min(v for k, v in cert.bounds.items() if k != "partition")


# ---- 2-D: global partition with its exterior rays ------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    hidden=st.lists(st.sampled_from([3, 6, 10]), min_size=1, max_size=2),
    activation=st.sampled_from(ELEMENTWISE_ACTIVATIONS),
)
def test_partition_2d_is_global_against_searched_lower_bounds(seed, hidden, activation) -> None:
    net = random_network(activation, hidden, n_in=2, n_out=2, seed=seed, scaling=SCALING, draw=DRAW)
    value, how = P.partition_global(analyze(net, use_cache=False).view, time_s=3.0)
    assert value is not None, how
    lower = jacobian_search(net, 2, seed, spread=50.0)
    assert value >= lower * (1 - 1e-12), (value, lower, how)


def test_exterior_rays_cover_far_points() -> None:
    """Every point outside the box lies in some exterior piece x = c + (1 + s) v, v in its face box."""
    rng = np.random.default_rng(0)
    centre, half = np.array([0.3, -1.0]), np.array([2.0, 0.5])
    rays = P.exterior_rays(centre, half)
    split = P._split(P._split(rays, np.ones(2), centre), np.ones(2), centre)
    for x in rng.normal(size=(500, 2)) * 30:
        t = np.max(np.abs(x - centre) / half)
        if t < 1:
            continue
        v = (x - centre) / t
        inside = (
            np.all(split.dir_lo <= v + 1e-12, axis=1)
            & np.all(v - 1e-12 <= split.dir_hi, axis=1)
            & (split.s0 <= t - 1 + 1e-12)
            & (t - 1 <= split.s0 + split.length + 1e-12)
        )
        assert inside.any(), x


def test_split_halves_cover_each_box_exactly() -> None:
    lo = np.array([[0.1, -3.0], [1.0, 1.0]])
    hi = np.array([[0.7, 2.0], [1.0 + 2**-40, 1.5]])
    halves = P._split(P.boxes(lo, hi), np.ones(2), None)
    for i in range(2):
        left, right = halves.take(np.array([i])), halves.take(np.array([i + 2]))
        assert np.array_equal(left.base_lo[0], lo[i]) and np.array_equal(right.base_hi[0], hi[i])
        cut = np.flatnonzero(left.base_hi[0] != hi[i])
        assert cut.size == 1 and left.base_hi[0, cut] == right.base_lo[0, cut]


# ---- the vertex bound against brute force --------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_vertex_bound_dominates_every_slope_vertex(seed: int) -> None:
    """With every neuron free in its whole slope interval, the vertex bound must cover the maximum over
    all 2^n diagonal choices (the exact supremum over the slope box, by convexity in each slope)."""
    net = random_network("deepspline", [3, 3], n_in=2, n_out=2, seed=seed, scaling=SCALING, draw=DRAW)
    view = analyze(net, use_cache=False).view
    sets = []
    for act in view.activations:
        lo = np.full((1, act.n_units), -np.inf)
        sets.append(P.slope_sets(act, lo, -lo))
    value = float(P.vertex_bounds(view, sets, max_ambiguous=12)[0])
    interval = float(P.interval_jacobian_bounds(view, sets)[0])
    ends = [np.stack(a.slope_interval(), axis=1) for a in view.activations]
    best = 0.0
    for choice in itertools.product(*[itertools.product(*[(lo, hi) for lo, hi in e]) for e in ends]):
        j = view.weights[0]
        for d, w in zip(choice, view.weights[1:], strict=True):
            j = w @ (np.asarray(d)[:, None] * j)
        best = max(best, float(np.linalg.norm(j, 2)))
    assert value >= best * (1 - 1e-12)
    assert value <= best * (1 + 1e-9)
    assert interval >= best * (1 - 1e-12)


# ---- the domain bound ----------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_in=st.integers(2, 4), activation=st.sampled_from(ELEMENTWISE_ACTIVATIONS))
def test_domain_bound_holds_for_pairs_inside_its_box(seed: int, n_in: int, activation: str) -> None:
    net = random_network(activation, [6, 6], n_in=n_in, n_out=2, seed=seed, scaling=SCALING, draw=DRAW)
    rng = np.random.default_rng(seed)
    centre, scale = net.input_mean.numpy(), net.input_scale.numpy()
    lo, hi = centre - scale, centre + 0.5 * scale
    cert = domain_bound(net, lo, hi, time_s=2.0)
    assert cert.certified <= cert.global_certified
    served = ServedMap(net)
    x = lo + (hi - lo) * rng.uniform(size=(3000, n_in))
    jac = float(np.linalg.norm(served.jacobians(x), ord=2, axis=(1, 2)).max())
    lower = max(jac, empirical_lower_bound(served, x[:500], max_pairs=20000))
    assert cert.certified >= lower * (1 - 1e-12)
    doc = cert.to_json()
    assert doc["domain"]["lo"] == [float(v) for v in lo] and doc["domain"]["hi"] == [float(v) for v in hi]


def test_report_keeps_the_global_certificate_and_states_the_domain() -> None:
    net = random_network("deepspline", [8, 8], n_in=2, seed=1, scaling=SCALING, draw=DRAW)
    x = net.input_mean.numpy() + net.input_scale.numpy() * np.random.default_rng(1).uniform(-1, 1, (300, 2))
    report = certificate_report(net, x, domain_time_s=2.0)
    assert report.certified == certify_global(net).certified
    assert report.domain is not None
    assert report.domain["domain"]["lo"] == list(x.min(axis=0)) and report.domain["domain"]["hi"] == list(x.max(axis=0))
    assert report.domain["certified"] <= report.certified
    assert report.domain_tightness == pytest.approx(report.domain["certified"] / report.best_lower_bound)
    assert certificate_report(net, x, domain_time_s=0).domain is None


def test_domain_bound_refuses_a_bad_box_and_falls_back_above_its_dimension() -> None:
    net = random_network("relu", [4], n_in=3, seed=2, scaling=SCALING, draw=DRAW)
    with pytest.raises(ValueError):
        domain_bound(net, np.zeros(3), -np.ones(3))
    cert = domain_bound(net, -np.ones(3), np.ones(3), max_dim=2)
    assert cert.certified == cert.global_certified and cert.notes
