"""The fast paths of the certificates: syrk/Lanczos proven norms on large matrices, the LipSDP barrier solver."""

from __future__ import annotations

import numpy as np
import pytest

from lipspline.certificates import certify_global, exact_lipschitz_1d, proven_spectral_norm
from lipspline.certificates.lipsdp import lipsdp_neuron, program_structure, snap_outwards
from lipspline.certificates.spectral import _lanczos_top
from lipspline.certificates.view import build_view
from tests.unit.lipspline.certificates.networks import Draw, random_network


def _check(a: np.ndarray, rel: float = 1e-6) -> None:
    p = proven_spectral_norm(a)
    s = np.linalg.svd(a, compute_uv=False)[0]
    assert p >= s * (1 - 1e-14)
    assert p <= s * (1 + rel) + 1e-140


@pytest.mark.parametrize(
    "make",
    [
        lambda r: r.standard_normal((1024, 784)),  # no spectral gap at the top (Marchenko-Pastur edge)
        lambda r: r.standard_normal((450, 700)),  # wide: the Gram of the smaller side
        lambda r: np.linalg.qr(r.standard_normal((512, 512)))[0] * 3.0,  # all singular values equal
        lambda r: np.outer(r.standard_normal(600), r.standard_normal(450)),  # rank one
        lambda r: np.diag(np.r_[np.full(3, 5.0), r.uniform(0, 4, 497)]),  # repeated top singular value
        lambda r: r.uniform(-1, 1, (500, 500)) + 0.05,  # a large mean: one dominant singular value
        lambda r: r.standard_normal((480, 420)) * 2.0**-600,  # tiny entries (pre-scaling)
    ],
)
def test_large_proven_norms_are_sound_and_tight(make) -> None:
    _check(make(np.random.default_rng(7)))


def test_lanczos_candidate_is_a_ritz_value() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((700, 500))
    g = a.T @ a
    top = np.linalg.eigvalsh(g)[-1]
    theta, resid = _lanczos_top(g)
    assert theta <= top * (1 + 1e-12)
    assert top - theta <= 2 * resid + 1e-9 * top


#: the initialised deep-spline nets of this file, splines made non-monotone (the automatic spline range)
DRAW = Draw(one_stream=True, activation_noise=0.3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lipsdp_barrier_is_verified_and_sits_between_exact_and_liplt(seed: int) -> None:
    net = random_network("deepspline", [6, 5], n_in=1, seed=seed, spline_range=None, draw=DRAW)
    cert = certify_global(net, include_lipsdp=True, lipsdp_time_limit_s=60)
    assert "lipsdp_neuron" in cert.bounds, cert.skipped
    exact = exact_lipschitz_1d(net)
    assert cert.bounds["lipsdp_neuron"] >= exact * (1 - 1e-9)
    assert cert.bounds["lipsdp_neuron"] <= cert.bounds["liplt"] * (1 + 1e-6)
    assert cert.certified <= cert.bounds["lipsdp_neuron"]


def test_lipsdp_barrier_solves_the_anchor_size_quickly() -> None:
    net = random_network("deepspline", [64, 64, 64], n_in=16, n_out=4, spline_range=None, draw=DRAW)
    result = lipsdp_neuron(build_view(net), time_limit_s=120)
    assert result.certified is not None, result.reason
    assert result.solver_value is not None
    assert result.solver_value <= result.certified <= result.solver_value * (1 + 1e-5)
    liplt = certify_global(net).bounds["liplt"]
    assert result.certified < liplt


def test_snapped_slope_intervals_contain_the_originals() -> None:
    view = build_view(random_network("deepspline", [7, 7], n_in=3, n_out=2, seed=3, spline_range=None, draw=DRAW))
    _, _, lo, hi, _, _ = program_structure(view)
    slo, shi = snap_outwards(lo, hi)
    assert np.all(slo <= lo) and np.all(shi >= hi)
    assert np.all(np.abs(slo - lo) <= 2.0**-30) and np.all(np.abs(shi - hi) <= 2.0**-30)
    assert np.all((slo == 0) | (np.abs(slo) >= 2.0**-60))


def test_single_threaded_blas_scopes_nest_and_restore_the_thread_count() -> None:
    """Nested and overlapping scopes (request threads) must leave OpenBLAS as they found it."""
    from lipspline.certificates import _blas

    with _blas.single_threaded_blas():
        libs = _blas._find()
    if not libs:
        pytest.skip("no OpenBLAS found in this process (another BLAS): the scope is a no-op")
    counts = lambda: [int(get()) for _, get in libs]  # noqa: E731
    before = counts()
    outer = _blas.single_threaded_blas()
    outer.__enter__()
    with _blas.single_threaded_blas():
        assert counts() == [1] * len(libs)
    assert counts() == [1] * len(libs), "leaving an inner scope must not restore while an outer one is open"
    outer.__exit__(None, None, None)
    assert counts() == before
