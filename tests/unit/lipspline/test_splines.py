"""Linear-spline activation: kernel correctness, gradients and exact views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lipspline.nn import splines
from lipspline.nn.splines import (
    LinearSpline,
    ReluForm,
    clip_slopes,
    evaluate_relu_form,
    relu_form_from_values,
    values_from_relu_form,
)


def reference_eval(x: torch.Tensor, coeffs: torch.Tensor, grid_range: float) -> torch.Tensor:
    """Slow, obviously-correct evaluation: np.interp inside, linear edge extension outside."""
    n_knots = coeffs.shape[1]
    grid = torch.linspace(-grid_range, grid_range, n_knots, dtype=torch.float64)
    out = torch.empty_like(x, dtype=torch.float64)
    for n in range(coeffs.shape[0]):
        c = coeffs[n].double()
        xs = x[:, n].double()
        inside = torch.from_numpy(np.interp(xs.numpy(), grid.numpy(), c.numpy()))
        left_slope = (c[1] - c[0]) / (grid[1] - grid[0])
        right_slope = (c[-1] - c[-2]) / (grid[1] - grid[0])
        below = c[0] + left_slope * (xs - grid[0])
        above = c[-1] + right_slope * (xs - grid[-1])
        out[:, n] = torch.where(xs < grid[0], below, torch.where(xs > grid[-1], above, inside))
    return out


@pytest.fixture(params=["native", "torch"])
def kernel(request, monkeypatch):
    """Run each kernel test on the native CPU kernel and on the pure-torch fallback."""
    if request.param == "native":
        if not splines.native_kernel_available():
            pytest.skip("native kernel not built on this machine")
    else:
        monkeypatch.setattr(splines, "_native", None)
    return request.param


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_matches_reference_including_outside_grid(kernel, dtype):
    torch.manual_seed(0)
    coeffs = torch.randn(5, 9, dtype=dtype)
    x = torch.randn(200, 5, dtype=dtype) * 3  # many points outside [-2, 2]
    x[0] = torch.tensor([-2.0, 2.0, 0.0, -7.5, 11.0], dtype=dtype)  # on knots and far outside
    out = splines.evaluate_splines(x, coeffs, 2.0)
    expected = reference_eval(x, coeffs, 2.0)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)


def test_conv_layout_uses_one_spline_per_channel(kernel):
    torch.manual_seed(1)
    coeffs = torch.randn(3, 7)
    x = torch.randn(4, 3, 5, 6)
    out = splines.evaluate_splines(x, coeffs, 1.5)
    flat = x.permute(0, 2, 3, 1).reshape(-1, 3)
    expected = reference_eval(flat, coeffs, 1.5).reshape(4, 5, 6, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_gradcheck_float64(kernel):
    torch.manual_seed(2)
    coeffs = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    # keep points away from knots, where the function is not differentiable
    x = torch.rand(7, 3, dtype=torch.float64) * 5.6 - 2.8
    grid = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64)
    x = torch.where((x.unsqueeze(-1) - grid).abs().min(-1).values < 1e-3, x + 0.01, x).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, c: splines.evaluate_splines(a, c, 1.0), (x, coeffs))
    x4 = (torch.rand(2, 3, 2, 2, dtype=torch.float64) * 1.8 - 0.9 + 0.013).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, c: splines.evaluate_splines(a, c, 1.0), (x4, coeffs))


def test_native_and_torch_paths_agree_with_gradients(monkeypatch):
    if not splines.native_kernel_available():
        pytest.skip("native kernel not built")
    torch.manual_seed(3)
    x = torch.randn(300, 17) * 2
    coeffs = torch.randn(17, 11)
    results = []
    for native in (True, False):
        if not native:
            monkeypatch.setattr(splines, "_native", None)
        xi = x.clone().requires_grad_(True)
        ci = coeffs.clone().requires_grad_(True)
        out = splines.evaluate_splines(xi, ci, 2.0)
        out.backward(torch.cos(x))
        results.append((out.detach(), xi.grad, ci.grad))
    for a, b in zip(results[0], results[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_nan_propagates_instead_of_crashing(kernel):
    coeffs = torch.randn(2, 5)
    x = torch.tensor([[float("nan"), 0.3]])
    out = splines.evaluate_splines(x, coeffs, 1.0)
    assert torch.isnan(out[0, 0]) and torch.isfinite(out[0, 1])


@pytest.mark.parametrize("init", ["relu", "leaky_relu", "identity", "abs"])
def test_initial_shapes(init):
    spline = LinearSpline(4, knots=11, grid_range=2.0, init=init)
    x = torch.linspace(-5, 5, 101).unsqueeze(1).expand(-1, 4)
    expected = {
        "relu": torch.relu(x),
        "leaky_relu": torch.nn.functional.leaky_relu(x, 0.01),
        "identity": x,
        "abs": x.abs(),
    }[init]
    torch.testing.assert_close(spline(x), expected, rtol=1e-5, atol=1e-5)


def test_relu_form_equals_spline_both_directions():
    torch.manual_seed(4)
    spline = LinearSpline(6, knots=15, grid_range=3.0)
    with torch.no_grad():
        spline.coefficients.copy_(torch.randn(6, 15))
    form = spline.relu_form()
    points = torch.rand(6, 500, dtype=torch.float64) * 10 - 5
    via_form = evaluate_relu_form(form, points)
    via_spline = spline(points.t().float()).t().double()
    torch.testing.assert_close(via_form, via_spline, rtol=1e-5, atol=1e-5)
    # and back: ReLU form -> knot values reproduces the coefficients
    back = values_from_relu_form(form, spline.grid())
    torch.testing.assert_close(back, spline.coefficients.detach().double(), rtol=1e-9, atol=1e-9)
    # a random ReLU form -> values -> ReLU form is the identity
    random_form = ReluForm(
        torch.randn(6, dtype=torch.float64),
        torch.randn(6, dtype=torch.float64),
        torch.randn(6, 13, dtype=torch.float64),
        form.knots,
    )
    again = relu_form_from_values(values_from_relu_form(random_form, spline.grid()), 3.0)
    for a, b in [(again.b1, random_form.b1), (again.b2, random_form.b2), (again.a, random_form.a)]:
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def hand_built() -> LinearSpline:
    """Knots at -2,-1,0,1,2 (K=5, Delta=1) with values chosen by hand."""
    spline = LinearSpline(2, knots=5, grid_range=2.0)
    with torch.no_grad():
        spline.coefficients.copy_(
            torch.tensor(
                [
                    [0.0, 0.0, 0.0, 1.0, 2.0],  # ReLU: one kink at 0
                    [1.0, -1.0, 2.0, 2.0, 0.5],  # slopes -2, 3, 0, -1.5
                ]
            )
        )
    return spline


def test_exact_views_on_hand_built_splines():
    s = hand_built()
    form = s.relu_form()
    torch.testing.assert_close(form.b1, torch.tensor([0.0, -2.0], dtype=torch.float64))
    torch.testing.assert_close(form.a, torch.tensor([[0.0, 1.0, 0.0], [5.0, -3.0, -1.5]], dtype=torch.float64))
    # b2 = c0 - b1 * tau0 = c0 + 2 b1
    torch.testing.assert_close(form.b2, torch.tensor([0.0, 1.0 - 4.0], dtype=torch.float64))
    torch.testing.assert_close(s.tv2(), torch.tensor([1.0, 9.5], dtype=torch.float64))
    values = s.values_at(torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(values, torch.tensor([[0.0, 1.0], [2.0, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(s.bv2_norm(), torch.tensor([1.0 + 0 + 1, 9.5 + 2 + 2], dtype=torch.float64))
    torch.testing.assert_close(s.lipschitz(), torch.tensor([1.0, 3.0], dtype=torch.float64))
    low, high = s.slope_interval()
    torch.testing.assert_close(low, torch.tensor([0.0, -2.0], dtype=torch.float64))
    torch.testing.assert_close(high, torch.tensor([1.0, 3.0], dtype=torch.float64))
    assert s.active_knots(1e-6).sum(dim=1).tolist() == [1, 3]
    # BV2 >= Lipschitz (Prop. 1) and the differentiable versions agree
    assert bool((s.bv2_norm() >= s.lipschitz()).all())
    torch.testing.assert_close(s.bv2_norm(differentiable=True).double(), s.bv2_norm())


def test_sparsify_removes_small_knots_and_keeps_outputs():
    torch.manual_seed(5)
    spline = LinearSpline(8, knots=21, grid_range=2.0)
    form = spline.relu_form()
    a = torch.zeros_like(form.a)
    a[:, 3] = 1.5
    a[:, 10] = -0.8
    a[:, 5] = 1e-7  # tiny knots the penalty did not quite zero
    a[:, 15] = -2e-7
    with torch.no_grad():
        spline.coefficients.copy_(values_from_relu_form(ReluForm(form.b2, form.b1 + 0.2, a, form.knots), spline.grid()))
    x = torch.linspace(-4, 4, 401).unsqueeze(1).expand(-1, 8)
    before = spline(x)
    removed = spline.sparsify(1e-5)
    after = spline(x)
    assert removed == 8 * (19 - 2)
    assert spline.active_knots(1e-5).sum().item() == 16
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)


def test_slope_bound_clips_every_slope_and_keeps_value_at_middle():
    spline = LinearSpline(3, knots=9, grid_range=2.0, slope_bound=1.0)
    with torch.no_grad():
        spline.coefficients.copy_(torch.randn(3, 9) * 5)
    low, high = spline.slope_interval()
    assert float(low.min()) >= -1.0 - 1e-12 and float(high.max()) <= 1.0 + 1e-12
    middle = spline.effective_coefficients()[:, 4]
    torch.testing.assert_close(middle, spline.coefficients[:, 4])
    x = torch.randn(1000, 3) * 4
    y = torch.randn(1000, 3) * 4
    keep = (x - y).abs() > 0.5  # float32 cancellation makes near pairs meaningless
    with torch.no_grad():
        ratio = ((spline(x) - spline(y)).abs() / (x - y).abs())[keep]
    assert float(ratio.max()) <= 1.0 + 1e-5
    assert float(ratio.max()) > 0.9  # the bound is reached, the check is not vacuous


def test_training_gradients_reach_coefficients():
    spline = LinearSpline(4, knots=7, grid_range=1.0)
    x = torch.randn(64, 4)
    spline(x).pow(2).sum().backward()
    assert spline.coefficients.grad is not None
    assert float(spline.coefficients.grad.abs().sum()) > 0


def test_served_slopes_of_a_bounded_spline_are_proven_within_the_bound() -> None:
    """float32 clipping re-integrates the slopes and its rounding left slopes of 1 + 1e-6; the
    served coefficients (what evaluation, the endpoint and the certificate read) stay within 1."""
    torch.manual_seed(0)
    spline = LinearSpline(64, knots=21, grid_range=3.0, slope_bound=1.0)
    with torch.no_grad():
        spline.coefficients.mul_(40.0).add_(torch.randn_like(spline.coefficients) * 30 + 50)
    clipped32 = clip_slopes(spline.coefficients, spline.delta, 1.0).detach().double()
    grid_steps = torch.diff(spline.grid())
    assert float((torch.diff(clipped32, dim=1) / grid_steps).abs().max()) > 1.0  # the float32 clip overshoots
    spline.eval()
    served = spline.served_coefficients().double()
    assert float((torch.diff(served, dim=1) / grid_steps).abs().max()) <= 1.0
    assert float(spline.slopes().abs().max()) <= 1.0
    assert torch.allclose(served, clipped32, atol=1e-3)  # the same function up to the rounding margin


# ---- the fused native kernel against the PyTorch reference path -----------------------------------
def _both_paths(monkeypatch, x: torch.Tensor, coeffs: torch.Tensor, grid_range: float, grad: torch.Tensor):
    """(out, grad_x, grad_coeffs) from the native kernel and from the torch reference, same inputs."""
    results = []
    for native in (True, False):
        if not native:
            monkeypatch.setattr(splines, "_native", None)
        xi = x.clone().requires_grad_(True)
        ci = coeffs.clone().requires_grad_(True)
        out = splines.evaluate_splines(xi, ci, grid_range)
        out.backward(grad)
        results.append((out.detach(), xi.grad, ci.grad))
    monkeypatch.undo()
    return results


@pytest.mark.parametrize(
    ("shape", "knots"),
    [
        ((256, 256), 21), ((300, 37), 21), ((520, 160), 21), ((3, 5, 7, 9), 21), ((64, 12, 9, 11), 21),
        ((48, 40), 32), ((40, 33), 25), ((35, 20), 33),  # 16-wide tiles up to 32 knots, 8-wide up to 24, rows after
    ],  # tails, several gradient blocks, conv
)
def test_native_float32_parity_with_reference(monkeypatch, shape, knots):
    """Float32: the fused kernel computes the reference's formulas (to rounding: torch's addcmul may fuse the
    multiply-add, and the knot-value gradient is a sum in another order), with every tile width this CPU has
    (16 x 16 AVX-512, 8 x 8 AVX2) and with the compiled row loops (0)."""
    if not splines.native_kernel_available():
        pytest.skip("native kernel not built")
    with splines.native_tiles(16) as available:
        widths = (*available, 0)
    for width in widths:
        with splines.native_tiles(width):
            _check_float32_parity(monkeypatch, shape, knots)


@pytest.mark.parametrize("channels", [1, 7, 15, 16, 17, 20, 33, 47])
def test_every_tile_width_gives_the_row_loops_bits_tail_channels_included(channels):
    """The tiles do the row loops' arithmetic element by element, so outputs and input gradients are the
    same bits on every tile width, for the channels after the last full tile too (the 16-wide tiles run
    them as one masked tile); the knot-value gradient is the same sum in another order (close)."""
    if not splines.native_kernel_available():
        pytest.skip("native kernel not built")
    gen = torch.Generator().manual_seed(channels)
    x = torch.randn(48, channels, generator=gen) * 2.5
    x.view(-1)[:3] = torch.tensor([-2.0, 1e6, -1e6])[: x.numel()]
    coeffs = torch.randn(channels, 21, generator=gen)
    grad = torch.randn(48, channels, generator=gen)
    with splines.native_tiles(0):
        loops = _kernel_pass(x, coeffs, grad, None)
    with splines.native_tiles(16) as available:
        widths = available
    for width in widths:
        with splines.native_tiles(width):
            out, gx, gc = _kernel_pass(x, coeffs, grad, None)
        assert torch.equal(out, loops[0]) and torch.equal(gx, loops[1]), f"tile width {width}"
        torch.testing.assert_close(gc, loops[2], rtol=1e-5, atol=1e-5 * float(grad.abs().sum() / channels))


def _check_float32_parity(monkeypatch, shape, knots):
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=gen) * 2.5
    x.view(-1)[:5] = torch.tensor([-2.0, 2.0, 0.0, 1e6, -1e6])  # on knots and far outside
    coeffs = torch.randn(shape[1], knots, generator=gen)
    grad = torch.randn(shape, generator=gen)
    (o1, gx1, gc1), (o2, gx2, gc2) = _both_paths(monkeypatch, x, coeffs, 2.0, grad)
    torch.testing.assert_close(o1, o2, rtol=2e-6, atol=2e-6)
    torch.testing.assert_close(gx1, gx2, rtol=2e-6, atol=2e-6)
    scale = grad.abs().sum() / coeffs.shape[0]
    torch.testing.assert_close(gc1, gc2, rtol=1e-5, atol=1e-5 * float(scale))


def test_native_float64_matches_reference_and_gradcheck_on_several_blocks(monkeypatch):
    """Float64 on a batch large enough for several gradient blocks: native == reference to rounding,
    and gradcheck of the native path (away from knots) on a slice through the same kernel."""
    if not splines.native_kernel_available():
        pytest.skip("native kernel not built")
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(700, 96, generator=gen, dtype=torch.float64) * 6 - 3
    coeffs = torch.randn(96, 13, generator=gen, dtype=torch.float64)
    grad = torch.randn(700, 96, generator=gen, dtype=torch.float64)
    (o1, gx1, gc1), (o2, gx2, gc2) = _both_paths(monkeypatch, x, coeffs, 1.5, grad)
    torch.testing.assert_close(o1, o2, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(gx1, gx2, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(gc1, gc2, rtol=1e-12, atol=1e-10)
    grid = torch.linspace(-1.5, 1.5, 13, dtype=torch.float64)
    xs = x[:9, :5].clone()
    xs = torch.where((xs.unsqueeze(-1) - grid).abs().min(-1).values < 1e-3, xs + 0.01, xs).requires_grad_(True)
    cs = coeffs[:5].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, c: splines.evaluate_splines(a, c, 1.5), (xs, cs))


def test_native_gradients_are_bitwise_repeatable_across_thread_counts():
    """The knot-value gradient is summed per row block, blocks fixed by the problem size: 1 or 2 threads,
    the same bits."""
    if not splines.native_kernel_available():
        pytest.skip("native kernel not built")
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(512, 200, generator=gen) * 2
    coeffs = torch.randn(200, 21, generator=gen)
    grad = torch.randn(512, 200, generator=gen)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            xi, ci = x.clone().requires_grad_(True), coeffs.clone().requires_grad_(True)
            out = splines.evaluate_splines(xi, ci, 2.0)
            out.backward(grad)
            results.append((out.detach(), xi.grad, ci.grad))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(results[0], results[1], strict=True):
        assert torch.equal(a, b)


def _kernel_pass(x, coeffs, grad, rises):
    """One forward and one full backward of the native kernel, with or without saved rises."""
    native = splines._native
    outer, channels = x.shape
    knots = coeffs.shape[1]
    out, gx, gc = torch.empty_like(x), torch.empty_like(x), torch.empty_like(coeffs)
    extra = (rises.data_ptr(),) if rises is not None else ()
    native.forward(x.data_ptr(), coeffs.data_ptr(), out.data_ptr(), outer, channels, 1, knots, -2.0, 5.0, False, 1,
                   *extra)
    native.backward(x.data_ptr(), coeffs.data_ptr(), grad.data_ptr(), gx.data_ptr(), gc.data_ptr(), outer, channels, 1,
                    knots, -2.0, 5.0, False, 1, *extra)
    return out, gx, gc


@pytest.mark.parametrize("shape", [(256, 256), (37, 45), (520, 160), (5, 3)])  # tiles, tails, two blocks, no tile
def test_saved_rises_give_the_same_outputs_and_input_gradient_bit_for_bit(shape):
    """The saved-rises pair (forward stores each cell's rise, backward reads it) on any CPU and tile width:
    the same outputs and input gradient as the kernel without it, bit for bit; the stored rise is the
    cell's c[k+1] - c[k]; the knot-value gradient is the same sum in another order (close)."""
    if not splines.native_kernel_available():
        pytest.skip("native kernel not built")
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=gen) * 2.5
    x.view(-1)[:4] = torch.tensor([-2.0, 2.0, 1e6, -1e6])  # a knot, the edge, far out on both sides
    coeffs = torch.randn(shape[1], 21, generator=gen)
    grad = torch.randn(shape, generator=gen)
    with splines.native_tiles(16) as available:
        widths = (*available, 0)
    for width in widths:
        with splines.native_tiles(width):
            rises = torch.full_like(x, float("nan"))
            out, gx, gc = _kernel_pass(x, coeffs, grad, rises)
            plain = _kernel_pass(x, coeffs, grad, None)
        assert torch.equal(out, plain[0]) and torch.equal(gx, plain[1]), f"tile width {width}"
        cell = ((x - -2.0) * 5.0).clamp(0, 19).to(torch.int64)  # left knot, clamped to the edge cells
        expected = coeffs.gather(1, (cell + 1).T).T - coeffs.gather(1, cell.T).T
        assert torch.equal(rises, expected), f"tile width {width}"
        torch.testing.assert_close(gc, plain[2], rtol=1e-5, atol=1e-5 * float(grad.abs().sum() / shape[1]))


def test_saved_rises_are_refused_for_float64_and_conv_layouts():
    if not splines.native_kernel_available():
        pytest.skip("native kernel not built")
    native = splines._native
    x, c = torch.randn(4, 3, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
    out = torch.empty_like(x)
    with pytest.raises(ValueError, match="float32 dense"):
        native.forward(x.data_ptr(), c.data_ptr(), out.data_ptr(), 4, 3, 1, 7, -1.0, 3.0, True, 1, out.data_ptr())
    x32, c32 = torch.randn(4, 3, 2), torch.randn(3, 7)
    with pytest.raises(ValueError, match="float32 dense"):
        native.backward(x32.data_ptr(), c32.data_ptr(), x32.data_ptr(), x32.data_ptr(), 0, 4, 3, 2, 7, -1.0, 3.0,
                        False, 1, x32.data_ptr())
    assert not native.saves_rises(True, 21, 1) and not native.saves_rises(False, 21, 4)


def test_inference_path_skips_autograd_and_matches(monkeypatch):
    """Under no_grad the kernel is called without the autograd Function: same numbers, no graph."""
    torch.manual_seed(5)
    spline = LinearSpline(33, 21, 2.0)
    with torch.no_grad():
        spline.coefficients.add_(0.1 * torch.randn_like(spline.coefficients))
    x = torch.randn(40, 33) * 3
    with torch.no_grad():
        fast = spline(x)
    assert fast.grad_fn is None
    slow = spline(x.clone().requires_grad_(True))
    assert slow.grad_fn is not None
    assert torch.equal(fast, slow.detach())



@pytest.mark.parametrize("norm", ["tv2", "bv2"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("slope_bound", [None, 1.0])
@pytest.mark.parametrize("kernel", ["native", "torch"])
def test_weighted_norm_sum_matches_the_composed_penalty_and_its_gradient(monkeypatch, norm, dtype, slope_bound, kernel):
    """The one-node penalty (native stencil kernel, or torch ops where there is none) equals the per-layer
    composition in value and in gradient (abs's subgradient)."""
    if kernel == "native" and not splines.native_kernel_available():
        pytest.skip("native kernel not built")
    if kernel == "torch":
        monkeypatch.setattr(splines, "_native", None)
    torch.manual_seed(11)
    layers = [LinearSpline(6, knots=9, grid_range=1.5, slope_bound=slope_bound).to(dtype) for _ in range(3)]
    for layer in layers:
        with torch.no_grad():
            layer.coefficients.add_(torch.randn_like(layer.coefficients))
            layer.coefficients[0, :] = 0.25  # a constant spline: every combination is 0 (subgradient 0)
    weights = [0.5, 2.0, 1e-3]

    def composed() -> torch.Tensor:
        per_layer = [(s.tv2 if norm == "tv2" else s.bv2_norm)(differentiable=True).sum() for s in layers]
        return sum(w * t for w, t in zip(weights, per_layer, strict=True))

    expected = composed()
    expected.backward()
    want = [layer.coefficients.grad.clone() for layer in layers]
    for layer in layers:
        layer.coefficients.grad = None
    fused = splines.weighted_norm_sum(layers, weights, norm)
    fused.backward()
    assert fused.dtype == dtype and fused.shape == ()
    torch.testing.assert_close(fused, expected)
    for layer, grad in zip(layers, want, strict=True):
        torch.testing.assert_close(layer.coefficients.grad, grad)
        assert bool(grad.abs().sum() > 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_native_stencil_kernel_matches_dense_algebra_on_banded_and_scattered_columns(dtype):
    """The kernel takes the leading band of columns (taps at rows j, j+1, j+2) by contiguous loads and every
    other column through its index table; mixed stencils (a band, then scattered columns, then banded-looking
    columns after the band has ended, then 1-tap columns) give |c M|.sum() and scale sign(c M) M^T."""
    if not splines.native_kernel_available():
        pytest.skip("native kernel not built")
    rng = np.random.default_rng(3)
    knots = 11
    matrix = np.zeros((knots, 9))
    for j in range(4):  # the band
        matrix[j : j + 3, j] = rng.normal(size=3)
    matrix[[0, 5, 9], 4] = rng.normal(size=3)  # scattered
    matrix[[2, 7], 5] = rng.normal(size=2)
    matrix[5:8, 6] = rng.normal(size=3)  # a band shape, but not at rows (6, 7, 8): the table path
    matrix[8, 7] = 1.0
    matrix[[8, 9, 10], 8] = [1.0, -2.0, 1.0]
    stencil = splines.NormStencil.of(torch.from_numpy(matrix).to(dtype))
    coeffs = torch.from_numpy(rng.normal(size=(37, knots))).to(dtype)
    coeffs[3] = 0.5  # constant rows: the second-difference columns are exactly 0 there
    coeffs[4] = 0.0
    as_stored = stencil.matrix.double()  # the float32 case rounds the matrix first
    dense = coeffs.double() @ as_stored
    value = stencil.native_terms(coeffs)
    assert value == pytest.approx(float(dense.abs().sum()), rel=1e-12)
    grad = torch.full_like(coeffs, float("nan"))  # every entry must be written
    assert stencil.native_terms(coeffs, grad, 0.75) == pytest.approx(value, rel=1e-12)
    expected = 0.75 * dense.sign() @ as_stored.T
    torch.testing.assert_close(grad, expected.to(dtype), rtol=1e-6, atol=1e-6)


def test_weighted_norm_sum_refuses_an_empty_network():
    with pytest.raises(ValueError, match="at least one spline layer"):
        splines.weighted_norm_sum([], [], "tv2")


def test_weighted_norm_sum_refuses_a_backward_after_an_in_place_change():
    """The native path recomputes the signs in backward from the saved coefficients: changed since, refused."""
    if not splines.native_kernel_available():
        pytest.skip("native kernel not built")
    spline = LinearSpline(4, knots=7, grid_range=1.0)
    total = splines.weighted_norm_sum([spline], [1.0], "bv2")
    with torch.no_grad():
        spline.coefficients.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        total.backward()
