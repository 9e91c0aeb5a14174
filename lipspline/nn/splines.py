"""Learnable linear-spline activations (papers 000 and 003).

One spline per neuron (dense input ``(B, N)``) or per channel (conv input
``(B, C, H, W)``): the channel axis is always axis 1. Each spline is stored by
its values ``c_k = sigma(tau_k)`` on a uniform grid ``tau_k = -R + k*Delta``,
``k = 0..K-1``. Storing values (the B1 / "hat" basis) rather than the ReLU
coefficients of eq. 18 is deliberate: evaluating ``sigma(x)`` then reads only
the two values of the cell that holds ``x``, so the cost per element does not
depend on K, and the gradient with respect to the coefficients touches only
those two values.

Outside ``[-R, R]`` the spline continues linearly with its edge slopes. This
falls out of the evaluation for free: the cell index is clamped to the first or
last cell and the fractional position is allowed to leave ``[0, 1]``.

The exact "views" of a spline (ReLU form, TV2, BV2 norm, Lipschitz constant,
slope interval, active knots) are computed from the coefficients in closed
form, so certificates and the BV2 penalty never sample the function.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from lipspline.nn import native_autograd

SplineInit = Literal["relu", "leaky_relu", "identity", "abs"]
SplineNorm = Literal["tv2", "bv2"]
LEAKY_SLOPE = 0.01


try:  # the optional native kernel (see setup.py); absent -> pure PyTorch
    from lipspline import _spline_kernels as _native

    if getattr(_native, "API_VERSION", 1) < 5:  # a stale build of an older kernel: do not guess its signature
        _native = None
except ImportError:  # pragma: no cover - depends on the build machine
    _native = None

_NATIVE_DTYPES = {torch.float32: False, torch.float64: True}

# the optional C++ autograd node over the same kernels (see native_autograd): None -> _SplineEval
_autograd_node = native_autograd.load(_native) if _native is not None else None


def native_kernel_available() -> bool:
    return _native is not None


def native_autograd_available() -> bool:
    """Whether training steps run the spline's C++ autograd node (else the Python one, same results)."""
    return _autograd_node is not None and _native is not None  # (tests switch the kernel off with _native)


@contextmanager
def native_tiles(width: int) -> Iterator[tuple[int, ...]]:
    """Within the block, the CPU kernel's float32 dense tiles are at most ``width`` wide; yields the widths
    this CPU has (16: AVX-512F, 8: AVX2), so tests and benchmarks can run each one on the same machine."""
    if _native is None:
        yield ()
        return
    previous, widths = _native.set_tile_cap(width)
    try:
        yield tuple(w for w in widths if w)
    finally:
        _native.set_tile_cap(previous)


@contextmanager
def native_saved_rises(allowed: bool) -> Iterator[bool]:
    """Within the block, training forwards store each cell's rise only if ``allowed`` (where the kernel
    would); yields whether the kernel saves them for a float32 dense 21-knot layer on this CPU, so that
    benchmarks can time the same network both ways in one run."""
    if _native is None:
        yield False
        return
    previous = _native.set_save_rises(allowed)
    try:
        yield _native.saves_rises(False, 21, 1)
    finally:
        _native.set_save_rises(previous)


def _use_native(x: Tensor, coeffs: Tensor) -> bool:
    # is_cpu, not device.type: this runs several times per layer per training step, and building a
    # device object each time cost about 8 µs of the step's cold interpreter per call (0.8 µs warm)
    return _native is not None and x.is_cpu and coeffs.is_cpu and x.dtype in _NATIVE_DTYPES and coeffs.dtype == x.dtype


def _layout(x: Tensor) -> tuple[int, int, int]:
    """(outer, channels, inner) of a tensor whose axis 1 holds the channels."""
    channels = x.shape[1]
    inner = 1
    for size in x.shape[2:]:
        inner *= size
    return x.shape[0], channels, inner


def _native_forward(
    x: Tensor, coeffs: Tensor, grid_min: float, inv_delta: float, rises: Tensor | None = None
) -> Tensor:
    """The fused native evaluation (x and coeffs contiguous, same CPU dtype); with ``rises`` (shaped like
    x), each element's cell rise is stored there too, for the backward (see _SplineEval)."""
    out = torch.empty_like(x)
    outer, channels, inner = _layout(x)
    _native.forward(
        x.data_ptr(), coeffs.data_ptr(), out.data_ptr(), outer, channels, inner,
        coeffs.shape[1], grid_min, inv_delta, _NATIVE_DTYPES[x.dtype], torch.get_num_threads(),
        rises.data_ptr() if rises is not None else 0,
    )
    return out


class _SplineEval(torch.autograd.Function):
    """Evaluate many linear splines at once with an O(1)-per-element kernel.

    A custom autograd function (instead of composing differentiable ops)
    lets the backward pass recompute the cell of each element instead of
    storing it, and accumulate the coefficient gradient in one pass. On CPU
    the work is done by the fused native kernel (forward: cell + interpolation;
    backward: the input gradient and the knot-value gradient, the latter as
    per-row-block partial sums reduced in a fixed order, see _spline_kernels.c);
    elsewhere by a torch fallback with the same arithmetic (gather of the two
    cell ends), which is also the reference the tests check the kernel against.

    Where the kernel says so (``saves_rises``: float32 dense layers on its 8-wide
    tiles), a forward whose input wants a gradient also stores each element's cell
    rise, one more activation-sized tensor, so that the backward needs neither the
    cell lookups nor the tile transposes (see "saved rises" in _spline_kernels.c).
    """

    @staticmethod
    def forward(ctx, x: Tensor, coeffs: Tensor, grid_min: float, inv_delta: float) -> Tensor:  # type: ignore[override]
        x = x.contiguous()
        coeffs = coeffs.contiguous()
        ctx.grid = (grid_min, inv_delta)
        if _use_native(x, coeffs):
            saves = ctx.needs_input_grad[0] and _native.saves_rises(
                _NATIVE_DTYPES[x.dtype], coeffs.shape[1], _layout(x)[2]
            )
            rises = torch.empty_like(x) if saves else None
            ctx.save_for_backward(x, coeffs, *([rises] if saves else []))
            return _native_forward(x, coeffs, grid_min, inv_delta, rises)
        ctx.save_for_backward(x, coeffs)
        return _torch_forward(x, coeffs, grid_min, inv_delta)

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        x, coeffs, *rises = ctx.saved_tensors  # rises: stored by a native forward that saves them
        grid_min, inv_delta = ctx.grid
        want_x, want_c = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_out = grad_out.contiguous()
        if _use_native(x, coeffs) and grad_out.dtype == x.dtype:
            outer, channels, inner = _layout(x)
            grad_x = torch.empty_like(x) if want_x else None
            grad_c = torch.empty_like(coeffs) if want_c else None
            if want_x or want_c:
                _native.backward(
                    x.data_ptr(), coeffs.data_ptr(), grad_out.data_ptr(),
                    grad_x.data_ptr() if grad_x is not None else 0,
                    grad_c.data_ptr() if grad_c is not None else 0,
                    outer, channels, inner, coeffs.shape[1], grid_min, inv_delta, _NATIVE_DTYPES[x.dtype],
                    torch.get_num_threads(), rises[0].data_ptr() if rises else 0,
                )
            return grad_x, grad_c, None, None
        grad_x, grad_c = _torch_backward(x, coeffs, grad_out, grid_min, inv_delta, want_x, want_c)
        return grad_x, grad_c, None, None


def _torch_forward(x: Tensor, coeffs: Tensor, grid_min: float, inv_delta: float) -> Tensor:
    """The PyTorch reference evaluation: c[k] + (c[k+1] - c[k]) * frac."""
    index, frac, rise = _torch_cells(x, coeffs, grid_min, inv_delta)
    left = torch.take(coeffs.reshape(-1), index)
    return torch.addcmul(left, rise, frac)


def _torch_backward(
    x: Tensor, coeffs: Tensor, grad_out: Tensor, grid_min: float, inv_delta: float, want_x: bool, want_c: bool
) -> tuple[Tensor | None, Tensor | None]:
    """The PyTorch reference gradients (to the input, and to the knot values by scatter-add)."""
    n_splines, n_knots = coeffs.shape
    index, frac, rise = _torch_cells(x, coeffs, grid_min, inv_delta)
    grad_x = grad_out * rise * inv_delta if want_x else None
    grad_c = None
    if want_c:
        to_right = grad_out * frac
        flat = torch.zeros(n_splines * n_knots, dtype=grad_out.dtype, device=grad_out.device)
        flat.index_add_(0, index.reshape(-1), (grad_out - to_right).reshape(-1))
        flat.index_add_(0, index.reshape(-1) + 1, to_right.reshape(-1))
        grad_c = flat.view(n_splines, n_knots)
    return grad_x, grad_c


def _torch_cells(x: Tensor, coeffs: Tensor, grid_min: float, inv_delta: float) -> tuple[Tensor, Tensor, Tensor]:
    """Flat index of each element's left knot, its position in the cell, and the cell's rise."""
    n_splines, n_knots = coeffs.shape
    position = (x - grid_min) * inv_delta
    cell = torch.nan_to_num(position.floor(), nan=0.0).clamp_(0, n_knots - 2)
    frac = position - cell
    shape = [1] * x.dim()
    shape[1] = n_splines
    offsets = torch.arange(0, n_splines * n_knots, n_knots, device=x.device).view(shape)
    index = cell.to(torch.int64) + offsets
    flat = coeffs.reshape(-1)
    rise = torch.take(flat, index + 1) - torch.take(flat, index)
    return index, frac, rise


def evaluate_splines(x: Tensor, coeffs: Tensor, grid_range: float) -> Tensor:
    """Evaluate spline ``n`` (rows of ``coeffs``) on channel ``n`` of ``x``."""
    n_knots = coeffs.shape[1]
    delta = 2.0 * grid_range / (n_knots - 1)
    grid_min, inv_delta = -grid_range, 1.0 / delta
    if not (x.requires_grad or coeffs.requires_grad) or not torch.is_grad_enabled():
        # inference: no autograd bookkeeping (no ctx, no saved tensors), straight to the kernel
        x, coeffs = x.contiguous(), coeffs.contiguous()
        if _use_native(x, coeffs):
            return _native_forward(x, coeffs, grid_min, inv_delta)
        return _torch_forward(x, coeffs, grid_min, inv_delta)
    if _autograd_node is not None and _use_native(x, coeffs):
        return _autograd_node.spline_eval(x, coeffs, grid_min, inv_delta)
    return _SplineEval.apply(x, coeffs, grid_min, inv_delta)


def evaluate_at_points(coeffs: Tensor, grid_range: float, points: Tensor) -> Tensor:
    """Evaluate every spline at each of a few scalar points: ``(N, len(points))``.

    Differentiable through plain tensor ops; used for sigma(0), sigma(1) in
    the BV2 norm, where only a handful of evaluations are needed.
    """
    n_splines, n_knots = coeffs.shape
    delta = 2.0 * grid_range / (n_knots - 1)
    position = (points.to(coeffs) + grid_range) / delta
    cell = position.floor().clamp(0, n_knots - 2)
    frac = position - cell
    cell = cell.long()
    left = coeffs[:, cell]
    right = coeffs[:, cell + 1]
    return left + (right - left) * frac


@dataclass(frozen=True)
class ReluForm:
    """sigma(x) = b2 + b1*x + sum_k a_k ReLU(x - tau_k), k = 1..K-2 (eq. 18).

    Arrays are batched over splines: ``b1``, ``b2`` have shape ``(N,)`` and
    ``a``, ``knots`` shape ``(N, K-2)`` and ``(K-2,)``.
    """

    b2: Tensor
    b1: Tensor
    a: Tensor
    knots: Tensor


class LinearSpline(nn.Module):
    """A bank of learnable linear-spline activations, one per channel.

    ``slope_bound``: when set (the 1-Lipschitz mode of paper 003) every slope
    of every spline is clipped to ``[-slope_bound, slope_bound]`` inside the
    forward pass, by re-integrating the clipped slopes from the value at the
    middle knot. The clipping is part of the function, so the stored
    parameters may hold steeper slopes but the network never uses them;
    ``effective_coefficients`` is the function actually computed, and every
    exact view below reads it.
    """

    elementwise = True  # certificates may treat the layer's Jacobian as diagonal

    def __init__(
        self,
        num_splines: int,
        knots: int = 21,
        grid_range: float = 2.0,
        init: SplineInit = "relu",
        slope_bound: float | None = None,
    ) -> None:
        super().__init__()
        if knots < 3:
            raise ValueError("a linear spline needs at least 3 knots")
        if grid_range <= 0:
            raise ValueError("spline range must be positive")
        self.num_splines = num_splines
        self.knots = knots
        self.grid_range = float(grid_range)
        self.slope_bound = slope_bound
        grid = self.grid().expand(num_splines, knots)
        self.coefficients = nn.Parameter(initial_shape(grid, init).clone())
        # Every term of the BV2 norm is a linear functional of the knot values
        # (the K-2 second differences a_k, sigma(0), sigma(1)), so the norm of
        # all splines is |c @ M|.sum(1) for one fixed (K, K) matrix M: a single
        # matmul in the training step instead of a dozen small ops.
        self.register_buffer("functionals", bv2_functionals(knots, self.grid_range).float(), persistent=False)

    @property
    def delta(self) -> float:
        return 2.0 * self.grid_range / (self.knots - 1)

    def grid(self) -> Tensor:
        """Knot positions tau_k (float64 so the exact views do not round twice)."""
        return torch.linspace(-self.grid_range, self.grid_range, self.knots, dtype=torch.float64)

    def effective_coefficients(self) -> Tensor:
        """The knot values of the function this module computes.

        With a slope bound, the differentiable training step clips in the parameter's dtype;
        everything else (evaluation, the endpoint, the certificate) reads
        :meth:`served_coefficients`, whose slopes are *proven* within the bound. Clipping in
        float32 re-integrates the slopes, and the rounding of those sums left slopes of
        1 + 1e-6 in a "1-Lipschitz" spline (orthogonal layers pass that on untouched).
        """
        c = self.coefficients
        if self.slope_bound is None:
            return c
        if self.training and torch.is_grad_enabled() and c.requires_grad:
            return clip_slopes(c, self.delta, self.slope_bound)
        return self.served_coefficients()

    def served_coefficients(self) -> Tensor:
        """Knot values in the parameter's dtype whose every slope, as the certificate computes it
        (float64 differences over the float64 grid, widened by its rounding), is at most the bound.

        Clipped in float64 to a slightly smaller bound, rounded, and checked on the rounded numbers;
        the margin grows until the check passes (a constant spline, slope 0, always does). Cached
        per parameter version, like the served weight of a 1-Lipschitz layer.
        """
        c = self.coefficients
        if self.slope_bound is None:
            return c
        key = (c._version, c.data_ptr(), c.dtype, c.device)
        cached = self.__dict__.get("_served_coefficients")
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.inference_mode(False), torch.no_grad():
            c64 = c.detach().to("cpu", torch.float64)
            steps = np.diff(np.linspace(-self.grid_range, self.grid_range, self.knots))
            bound = float(self.slope_bound)
            shrink = 2.0**-30
            values = None
            for _attempt in range(12):
                candidate = clip_slopes(c64, self.delta, bound * (1.0 - shrink)).to(c.dtype)
                slopes = np.abs(np.diff(candidate.to(torch.float64).numpy(), axis=1)) / steps
                if (slopes * (1.0 + 2.0**-48)).max(initial=0.0) <= bound:
                    values = candidate
                    break
                shrink *= 16.0
            if values is None:  # unreachable in practice: the constant spline through the middle knot
                values = c64[:, c64.shape[1] // 2 :][:, :1].expand_as(c64).to(c.dtype)
            values = values.to(c.device).contiguous()
        self.__dict__["_served_coefficients"] = (key, values)
        return values

    def forward(self, x: Tensor) -> Tensor:
        coeffs = self.effective_coefficients()
        if coeffs.dtype != x.dtype:
            coeffs = coeffs.to(x.dtype)
        return evaluate_splines(x, coeffs, self.grid_range)

    # ---- exact views -------------------------------------------------------------
    def _coeffs64(self) -> Tensor:
        return self.served_coefficients().detach().to(torch.float64).cpu()

    def slopes(self) -> Tensor:
        """Slopes of the K-1 cells, ``(N, K-1)``; the edge slopes continue outside."""
        return torch.diff(self._coeffs64(), dim=1) / self.delta

    def relu_form(self) -> ReluForm:
        return relu_form_from_values(self._coeffs64(), self.grid_range)

    def second_differences(self, coeffs: Tensor | None = None) -> Tensor:
        """a_k of eq. 18 for k = 1..K-2, differentiable when ``coeffs`` is."""
        c = self.effective_coefficients() if coeffs is None else coeffs
        return (c[:, 2:] - 2 * c[:, 1:-1] + c[:, :-2]) / self.delta

    def tv2(self, differentiable: bool = False) -> Tensor:
        """TV2 of each spline: the total jump of its derivative, sum_k |a_k|.

        ``differentiable=True`` is the training penalty (parameter dtype, one
        matmul); otherwise the exact float64 value from the closed form.
        """
        if differentiable:
            c = self.effective_coefficients()
            return (c @ self.norm_functionals("tv2").to(c.dtype)).abs().sum(dim=1)
        return self.second_differences(self._coeffs64()).abs().sum(dim=1)

    def norm_functionals(self, norm: SplineNorm) -> Tensor:
        """The (K, J) matrix whose |c @ M| summed over J is each spline's ``norm`` (``tv2``: J = K - 2)."""
        return self.functionals[:, :-2] if norm == "tv2" else self.functionals

    def norm_stencil(self, norm: SplineNorm, dtype: torch.dtype) -> NormStencil:
        """``norm_functionals(norm)`` in ``dtype`` with its column taps, built once per (norm, dtype, device)."""
        matrix = self.norm_functionals(norm)
        key = (norm, dtype, matrix.device)
        cache = self.__dict__.setdefault("_norm_stencils", {})
        if key not in cache:
            cache[key] = NormStencil.of(matrix.to(dtype))
        return cache[key]

    def bv2_norm(self, differentiable: bool = False) -> Tensor:
        """||sigma||_BV2 = TV2 + |sigma(0)| + |sigma(1)| of each spline (eq. 4)."""
        if differentiable:
            c = self.effective_coefficients()
            return (c @ self.norm_functionals("bv2").to(c.dtype)).abs().sum(dim=1)
        c = self._coeffs64()
        values = evaluate_at_points(c, self.grid_range, torch.tensor([0.0, 1.0], dtype=c.dtype))
        return self.second_differences(c).abs().sum(dim=1) + values.abs().sum(dim=1)

    def values_at(self, points: Tensor) -> Tensor:
        return evaluate_at_points(self._coeffs64(), self.grid_range, points.to(torch.float64))

    def slope_interval(self) -> tuple[Tensor, Tensor]:
        """Per spline [smallest slope, largest slope], edge slopes included."""
        s = self.slopes()
        return s.min(dim=1).values, s.max(dim=1).values

    def lipschitz(self) -> Tensor:
        """Exact Lipschitz constant of each spline: its largest absolute slope."""
        return self.slopes().abs().max(dim=1).values

    def active_knots(self, threshold: float = 1e-4) -> Tensor:
        """Boolean mask ``(N, K-2)`` of knots whose derivative jump exceeds the threshold."""
        return self.relu_form().a.abs() > threshold

    @torch.no_grad()
    def sparsify(self, threshold: float = 1e-4) -> int:
        """Remove the knots with |a_k| <= threshold; return how many were removed.

        The ReLU form with those a_k set to zero is resampled on the grid, so
        the function changes only by the removed terms a_k ReLU(x - tau_k).
        The change at a point x is at most sum |a_k| (x - tau_k)_+ over the
        removed knots, i.e. bounded by the threshold times the distance.
        """
        form = self.relu_form()
        drop = form.a.abs() <= threshold
        pruned = ReluForm(form.b2, form.b1, torch.where(drop, torch.zeros_like(form.a), form.a), form.knots)
        values = values_from_relu_form(pruned, self.grid())
        self.coefficients.copy_(values.to(self.coefficients.dtype))
        if self.slope_bound is not None:
            # The pruned function may now exceed the bound at the right edge;
            # store the function the clipped module will really compute.
            self.coefficients.copy_(clip_slopes(self.coefficients, self.delta, self.slope_bound))
        return int(drop.sum())

    def extra_repr(self) -> str:
        return (
            f"num_splines={self.num_splines}, knots={self.knots}, "
            f"range={self.grid_range}, slope_bound={self.slope_bound}"
        )


@dataclass(frozen=True)
class NormStencil:
    """A functionals matrix M (K, J) and its columns as (row, value) taps: ``c @ M`` column by column.

    Every column of ``bv2_functionals`` has at most three non-zeros (a second difference, or the
    two knots around a point value), so the native kernel computes ``|c @ M|`` in O(N J taps).
    """

    matrix: Tensor  # (K, J), the dtype of the coefficients it is applied to
    rows: Tensor  # (J, taps) int32 on CPU, padded with row 0
    values: Tensor  # (J, taps) float64 on CPU, padded with 0.0

    @classmethod
    def of(cls, matrix: Tensor) -> NormStencil:
        m = matrix.detach().cpu().to(torch.float64).numpy()
        columns = [np.flatnonzero(m[:, j]) for j in range(m.shape[1])]
        taps = max((len(c) for c in columns), default=1) or 1
        rows = np.zeros((m.shape[1], taps), dtype=np.int32)
        values = np.zeros((m.shape[1], taps), dtype=np.float64)
        for j, nonzero in enumerate(columns):
            rows[j, : len(nonzero)] = nonzero
            values[j, : len(nonzero)] = m[nonzero, j]
        return cls(matrix, torch.from_numpy(rows), torch.from_numpy(values))

    def native_terms(self, coeffs: Tensor, grad: Tensor | None = None, scale: float = 0.0) -> float:
        """sum |coeffs @ M|; with ``grad``, also grad := scale * sign(coeffs @ M) @ M^T."""
        n, k = coeffs.shape
        return _native.norm_terms(
            coeffs.data_ptr(), 0 if grad is None else grad.data_ptr(), n, k, self.rows.shape[0],
            self.rows.shape[1], self.rows.data_ptr(), self.values.data_ptr(), _NATIVE_DTYPES[coeffs.dtype], scale,
        )


class _WeightedNormSum(torch.autograd.Function):
    """sum_l w_l sum_n sum_j |(c_l M_l)_{n,j}| over several spline layers, as ONE autograd node.

    The training penalty of the spline-norm objectives. Composed from differentiable ops it is a
    matmul, an abs, a sum, a scale and an add per layer, each one a node whose bookkeeping costs
    more than its arithmetic on (N, K) tables: timed alone on the two 256-spline layers of a
    784-256-256-10 net (1 thread, forward + backward), about 100 µs per layer composed, 220 µs for
    both as one node of torch ops, 116 µs as one node over the native stencil kernel
    (``NormStencil``), 99 µs once that kernel read the band of second differences with contiguous
    loads (same machine and run for the last two). The gradient is the subgradient autograd takes
    for ``abs`` (sign, 0 at 0): w_l sign(c_l M_l) M_l^T.
    """

    @staticmethod
    def forward(ctx, weights: tuple[float, ...], stencils: tuple[NormStencil, ...], *coeffs: Tensor) -> Tensor:  # type: ignore[override]
        coeffs = tuple(c.contiguous() for c in coeffs)
        native = all(_use_native(c, c) for c in coeffs)
        if native:  # summed in float64 by the kernel
            total = sum(w * st.native_terms(c) for w, st, c in zip(weights, stencils, coeffs, strict=True))
            ctx.save_for_backward(*coeffs)  # autograd then refuses a backward through values changed in place
            ctx.terms = (weights, stencils, None)  # no signs: backward recomputes them from the saved values
            return torch.tensor(total, dtype=coeffs[0].dtype)
        total = coeffs[0].new_zeros(())
        signs = []
        for weight, stencil, c in zip(weights, stencils, coeffs, strict=True):
            combos = c @ stencil.matrix
            total = total + combos.abs().sum() * weight
            signs.append(combos.sign_())
        ctx.terms = (weights, stencils, signs)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        weights, stencils, signs = ctx.terms
        needed = ctx.needs_input_grad[2:]
        if signs is None:  # the native path
            g = float(grad)
            grads = []
            for weight, stencil, c, want in zip(weights, stencils, ctx.saved_tensors, needed, strict=True):
                out = torch.empty_like(c) if want else None
                if out is not None:
                    stencil.native_terms(c, out, g * weight)
                grads.append(out)
            return None, None, *grads
        grads = [
            (sign @ stencil.matrix.T) * (grad * weight) if want else None
            for weight, stencil, sign, want in zip(weights, stencils, signs, needed, strict=True)
        ]
        return None, None, *grads


def weighted_norm_sum(splines: list[LinearSpline], weights: list[float], norm: SplineNorm) -> Tensor:
    """sum_l weights[l] * sum_n ||sigma_{l,n}||_norm: the differentiable spline penalty of a network.

    Equal to ``sum(w * s.tv2(differentiable=True).sum() ...)`` (or ``bv2_norm``), computed in one
    autograd node (``_WeightedNormSum``); each layer's term reads its *effective* coefficients, so
    a slope-bounded spline is penalised on the function it computes.
    """
    if not splines:
        raise ValueError("weighted_norm_sum needs at least one spline layer")
    coeffs = [s.effective_coefficients() for s in splines]
    stencils = tuple(s.norm_stencil(norm, c.dtype) for s, c in zip(splines, coeffs, strict=True))
    weights = [float(w) for w in weights]
    if _autograd_node is not None and all(_use_native(c, coeffs[0]) for c in coeffs):
        rows, values = [st.rows for st in stencils], [st.values for st in stencils]
        return _autograd_node.weighted_norm_sum(coeffs, weights, rows, values)
    return _WeightedNormSum.apply(tuple(weights), stencils, *coeffs)


def initial_shape(grid: Tensor, init: SplineInit) -> Tensor:
    """Knot values of the initial activation, in float32 for the parameter."""
    if init == "relu":
        values = grid.clamp(min=0)
    elif init == "leaky_relu":
        values = torch.where(grid >= 0, grid, LEAKY_SLOPE * grid)
    elif init == "identity":
        values = grid
    elif init == "abs":
        values = grid.abs()
    else:
        raise ValueError(f"unknown spline init {init!r}")
    return values.to(torch.float32)


def bv2_functionals(knots: int, grid_range: float) -> Tensor:
    """(K, K) float64 matrix M with c @ M = [a_1 .. a_{K-2}, sigma(0), sigma(1)] for knot values c."""
    delta = 2.0 * grid_range / (knots - 1)
    m = torch.zeros(knots, knots, dtype=torch.float64)
    for k in range(knots - 2):
        m[k, k] += 1.0 / delta
        m[k + 1, k] -= 2.0 / delta
        m[k + 2, k] += 1.0 / delta
    basis = torch.eye(knots, dtype=torch.float64)
    m[:, knots - 2 :] = evaluate_at_points(basis, grid_range, torch.tensor([0.0, 1.0], dtype=torch.float64))
    return m


def clip_slopes(coeffs: Tensor, delta: float, bound: float) -> Tensor:
    """Clip every cell slope to [-bound, bound], keeping the value at the middle knot.

    Differentiable (the clamp passes gradients inside the bound), so the
    1-Lipschitz constraint is a projection inside the model, not a penalty.
    """
    mid = coeffs.shape[1] // 2
    steps = torch.diff(coeffs, dim=1).clamp(-bound * delta, bound * delta)
    zero = torch.zeros_like(coeffs[:, :1])
    cumulative = torch.cat([zero, torch.cumsum(steps, dim=1)], dim=1)
    return coeffs[:, mid : mid + 1] + cumulative - cumulative[:, mid : mid + 1]


def relu_form_from_values(coeffs: Tensor, grid_range: float) -> ReluForm:
    """Knot values -> (b2, b1, a) of eq. 18, exactly as docs/design.md#relu-form writes it."""
    n_knots = coeffs.shape[1]
    delta = 2.0 * grid_range / (n_knots - 1)
    grid = torch.linspace(-grid_range, grid_range, n_knots, dtype=coeffs.dtype)
    b1 = (coeffs[:, 1] - coeffs[:, 0]) / delta
    a = (coeffs[:, 2:] - 2 * coeffs[:, 1:-1] + coeffs[:, :-2]) / delta
    b2 = coeffs[:, 0] - b1 * grid[0]
    return ReluForm(b2=b2, b1=b1, a=a, knots=grid[1:-1])


def evaluate_relu_form(form: ReluForm, x: Tensor) -> Tensor:
    """Evaluate the ReLU form at points ``x`` ``(N, P)`` (one row per spline)."""
    hinge = (x.unsqueeze(-1) - form.knots).clamp(min=0)  # (N, P, K-2)
    return form.b2[:, None] + form.b1[:, None] * x + (hinge * form.a[:, None, :]).sum(-1)


def values_from_relu_form(form: ReluForm, grid: Tensor) -> Tensor:
    """ReLU form -> knot values on ``grid``; the inverse of ``relu_form_from_values``."""
    points = grid.to(form.b1.dtype).expand(form.b1.shape[0], -1)
    return evaluate_relu_form(form, points)
