"""The spline activation's C++ autograd node (lipspline/csrc): the Python node's results, bit for bit.

Both nodes call the same C kernels, so every output and gradient must be *equal*, not close: on every
tile width this CPU has, float32 and float64, dense and conv layouts, each subset of inputs that want a
gradient. The node is built by ``make install``; under ``LIPSPLINE_REQUIRE_SERVICES=1`` (CI) a missing
build is a failure, not a skip, so training steps in CI really run it.
"""

from __future__ import annotations

import pytest
import torch

from lipspline.nn import native_autograd, splines
from tests.support.services import unavailable


@pytest.fixture
def node():
    if not splines.native_kernel_available():
        unavailable("the native spline kernel is not built")
    if not splines.native_autograd_available():
        unavailable("the C++ spline node is not built: python -m lipspline.nn.native_autograd (make install does)")
    return splines._autograd_node


def _run(apply, x, coeffs, grad, want_x, want_c):
    xi = x.clone().requires_grad_(want_x)
    ci = coeffs.clone().requires_grad_(want_c)
    out = apply(xi, ci, -2.0, 5.0)
    out.backward(grad)
    return out.detach(), xi.grad, ci.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(256, 256), (37, 45), (6, 5, 7, 3)])  # 16-wide tiles, tails, conv
@pytest.mark.parametrize(("want_x", "want_c"), [(True, True), (True, False), (False, True)])
def test_the_cpp_node_gives_the_python_nodes_outputs_and_gradients_bit_for_bit(node, dtype, shape, want_x, want_c):
    gen = torch.Generator().manual_seed(sum(shape))
    x = (torch.randn(shape, generator=gen) * 2.5).to(dtype)
    x.view(-1)[:4] = torch.tensor([-2.0, 2.0, 1e6, float("nan")], dtype=dtype)  # a knot, the edge, far out, NaN
    coeffs = torch.randn(shape[1], 21, generator=gen).to(dtype)
    grad = torch.randn(shape, generator=gen).to(dtype)
    with splines.native_tiles(16) as available:
        widths = (*available, 0)
    for width in widths:
        with splines.native_tiles(width):
            python = _run(splines._SplineEval.apply, x, coeffs, grad, want_x, want_c)
            cpp = _run(node.spline_eval, x, coeffs, grad, want_x, want_c)
        for a, b in zip(python, cpp, strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                assert torch.equal(a.nan_to_num(nan=7.0), b.nan_to_num(nan=7.0)), f"tile width {width}"


def test_training_runs_the_cpp_node_and_gradcheck_passes_through_it(node):
    x = torch.randn(9, 5, dtype=torch.float64) * 0.9 + 0.013  # away from the knots of the 13-knot grid below
    x.requires_grad_(True)
    coeffs = torch.randn(5, 13, dtype=torch.float64, requires_grad=True)
    out = splines.evaluate_splines(x, coeffs, 1.5)
    assert "SplineEval" in out.grad_fn.name() and "CppNode" in out.grad_fn.name()
    assert torch.autograd.gradcheck(lambda a, c: splines.evaluate_splines(a, c, 1.5), (x, coeffs))


def test_the_cpp_node_refuses_a_backward_after_the_knots_changed_in_place(node):
    coeffs = torch.randn(4, 7, requires_grad=True)
    out = node.spline_eval(torch.randn(3, 4, requires_grad=True), coeffs, -1.0, 3.0)
    with torch.no_grad():
        coeffs.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_the_cpp_node_refuses_knots_that_do_not_match_the_channels(node):
    with pytest.raises(RuntimeError, match="do not match"):
        node.spline_eval(torch.randn(3, 4, requires_grad=True), torch.randn(5, 7), -1.0, 3.0)


def test_the_loader_serves_nothing_when_switched_off_or_when_the_source_changed(node, monkeypatch, tmp_path):
    monkeypatch.setenv(native_autograd.SWITCH_VARIABLE, "0")
    assert native_autograd.load(splines._native) is None
    monkeypatch.delenv(native_autograd.SWITCH_VARIABLE)
    assert native_autograd.load(splines._native) is not None
    edited = tmp_path / "spline_autograd.cpp"
    edited.write_bytes(native_autograd.SOURCE.read_bytes() + b"\n// edited\n")
    monkeypatch.setattr(native_autograd, "SOURCE", edited)
    assert native_autograd.load(splines._native) is None  # a module built from another source is never loaded


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("norm", ["tv2", "bv2"])
def test_the_cpp_penalty_node_gives_the_python_nodes_value_and_gradients_bit_for_bit(node, dtype, norm):
    """The spline-norm penalty (two layers, one slope-bounded, so one reads clipped coefficients)."""
    torch.manual_seed(4)
    layers = [splines.LinearSpline(37, knots=21, grid_range=2.0), splines.LinearSpline(5, knots=9, slope_bound=1.0)]
    for layer in layers:
        layer.to(dtype)
        with torch.no_grad():
            layer.coefficients.add_(torch.randn_like(layer.coefficients))
    weights = [3e-3, 0.7]
    results = []
    for use_cpp in (False, True):
        for layer in layers:
            layer.coefficients.grad = None
        coeffs = [layer.effective_coefficients() for layer in layers]
        stencils = tuple(layer.norm_stencil(norm, dtype) for layer in layers)
        if use_cpp:
            rows, values = [s.rows for s in stencils], [s.values for s in stencils]
            total = node.weighted_norm_sum(coeffs, weights, rows, values)
            assert "WeightedNormSum" in total.grad_fn.name()
        else:
            total = splines._WeightedNormSum.apply(tuple(weights), stencils, *coeffs)
        (total * 1.5).backward()
        results.append((total.detach(), *(layer.coefficients.grad for layer in layers)))
    for python, cpp in zip(*results, strict=True):
        assert python.dtype == cpp.dtype == dtype
        assert torch.equal(python, cpp)


def test_the_cpp_penalty_node_refuses_mismatched_stencils(node):
    layer = splines.LinearSpline(3, knots=7)
    stencil = layer.norm_stencil("bv2", torch.float32)
    with pytest.raises(RuntimeError, match="one weight and one stencil"):
        node.weighted_norm_sum([layer.coefficients], [1.0, 2.0], [stencil.rows], [stencil.values])
    with pytest.raises(RuntimeError, match="int32 rows and float64 values"):
        node.weighted_norm_sum([layer.coefficients], [1.0], [stencil.values], [stencil.values])
