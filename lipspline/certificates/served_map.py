"""The served map: the exact function the endpoint evaluates, and a proven bound on its rounding.

Why this module exists. A Lipschitz certificate is a statement about a
function of real numbers; an endpoint returns floating-point numbers. If the
two are different functions (inputs cast to float32 before standardising,
weights re-normalised differently, a float32 spline kernel), the certificate
says nothing about what the client receives: pairs of inputs straddling a
rounding point moved a float32 output by orders of magnitude more than
``L * ||x - y||``. So the service serves exactly one map and bounds its rounding.

**F, the served function** (real arithmetic), is defined by the arrays of the
certified chain (``view.py``) and nothing else: ``d = x - input_mean``, then
``h_1 = M_1 d + b_1`` with the input scaling folded into ``M_1``, the
activations as the view describes them (a spline is the continuous
interpolant through the view's knots ``(t_k, v_k)``, continued with its end
slopes), the hidden affine maps, the last one with the target scale folded in,
plus the target mean. Every global and local certificate is computed from these
very arrays, so ``L`` bounds the Lipschitz constant of F.

**The computation** evaluates F in float64 from the raw float64 inputs: nothing
is rounded before standardising (``x - mean`` is even exact when x lies within
a factor 2 of the mean). Float64 for every model: ``bench/bench_served_map.py``
measures it against the former float32 forward; the models this service
trains are small, and the rounding bound in float64 (~1e-16 relative) costs
certified radii nothing visible, where float32 would cost ~1e-7 relative.

**E, the rounding bound** (standard forward error analysis, Higham, *Accuracy
and Stability of Numerical Algorithms*, ch. 3), normwise and per input row:

* an affine layer: ``||fl(M a + b) - (M a + b)||_2 <= gamma_{n+1} (A ||a||_2 + ||b||_2)``
  with ``A >= || |M| ||_2`` (the smaller of the Frobenius norm and
  ``sqrt(||M||_1 ||M||_inf)``), for any summation order, FMA included;
  an inherited error e becomes ``A e``;
* an activation with slope bound ``Lip`` maps an input error e to
  ``max Lip * e``, plus its own evaluation error: exact for ReLU, abs and
  GroupSort (which is 1-Lipschitz in l2); a spline piece ``v_a + s_j (x - t_a)``,
  its cell found by exact comparisons with the knots and its slope within
  gamma_3 of the exact one, is off by at most ``gamma_7 (|v_a| + |s_j| |x - t_a|)``,
  bounded per unit by ``gamma_7 (max|v| + Lip (|x| + max|t|))``.

Every bound is itself computed in floating point and inflated by a relative
factor and a tiny absolute term that cover its own rounding and underflow.

**How it is computed** (``ServedMap.evaluate``). The affine products run through
``torch.addmm`` (bias in the accumulator: ``fan_in + 1`` terms per entry, any order),
the very BLAS call of a plain float64 torch forward. Everything else is one compiled
pass per layer over its output (``_spline_kernels.c``, ``served_step``): the
activation, and per row the sums of squares and largest magnitudes that the norms
need, and the recursion above. What depends on the weights only (``A``, ``||b||``,
the gammas, the spline tables) is computed once per loaded model (``_native_plans``).
Two things differ from the step-by-step numpy reference (``_evaluate_reference``, run
when the kernel is not built, and by the tests as a twin):

* the l2 norm of a row whose largest magnitude m lies in ``[2^-450, 2^450]`` is
  ``sqrt(sum a_i^2) (1 + gamma_{n+6})`` from one unscaled pass (no square overflows,
  ``n m^2 <= n 2^900``; the squares that underflow move the sum by at most
  ``n 2^-1075 <= n 2^-175 m^2``, a relative ``2^-130`` for any real n, far inside the
  ``gamma_{n+6} - gamma_{n+1}`` the rounded sum of n squares and the root leave), then
  rounded up like every bound; any other row (tiny, huge, zero, inf, NaN) is scaled by m
  first, exactly as ``_norms`` does;
* a spline's cell: the guess ``j = floor(p) + 1`` from ``p = fl(fl(h - t_0) inv)`` is used
  only where p's fractional part is at least ``eps`` from 0 and 1, which proves it is the
  exact cell (``_trusted_distance``); every other element is placed by comparisons with
  the knots, so the cell is exact everywhere, as the analysis assumes.

The outputs are bit for bit those of the reference (same products, same cells, the
same ``v_a + s_j (h - t_a)`` without contraction); the bounds differ by the order of
summation inside the norms only, each one proven as above.

The guarantee returned with every prediction: for any inputs x, y the service
evaluates, ``||g(x) - g(y)||_2 <= L ||x - y||_2 + E(x) + E(y)`` where g is what
the endpoint returns. The derived statements also need the error at points the
client did not send, so the recursion is run over an l2 ball of radius rho as
well: magnitudes grow by ``2 E + rho (m + S)`` where m bounds how far the exact
layer values move (``A * max Lip`` per layer), which gives
``||g(y) - F(y)|| <= E(x) + rho S`` for every y of the ball, with S depending on
the model only. Then:

* one logit z: the label cannot change within ``(|z| - 2E) / (L + S)``;
* several logits: within ``(margin - 2 sqrt(2) E) / (sqrt(2) (L + S))``
  (a difference of two outputs is off by at most sqrt(2) times the error's norm);
* the outputs move by at most ``L eps + 2E + eps S`` when the input moves by at most eps.

Convolutions that the view could not densify (an opaque prefix) are applied
with ``conv2d`` in float64 and bounded the same way (tap-sum of Frobenius norms).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from torch import nn

from lipspline.certificates._fp import U
from lipspline.certificates.view import ChainView, GroupSortView, PiecewiseView, activation_view, build_view
from lipspline.nn.layers import served_weight

try:  # the compiled served-map pass (setup.py); without it the numpy reference below runs
    from lipspline import _spline_kernels as _native

    if getattr(_native, "API_VERSION", 1) < 4:  # pragma: no cover - a stale build of an older kernel
        _native = None
except ImportError:  # pragma: no cover - depends on the build machine
    _native = None

#: the arithmetic every served map runs in (reported with each prediction)
ARITHMETIC = "float64"
#: relative inflation applied to every computed bound (covers the rounding of the bound itself)
_SLACK = 1.0 + 2.0**-40
#: absolute term added to every bound: covers underflow (each operation loses less than 2^-1074)
_TINY = 2.0**-1000
#: float32's unit roundoff: a float64 value v in float32's normal range is cast with |fl32(v) - v| <= U32 |v|
U32 = 2.0**-24
#: below float32's normal range the cast's error is absolute, at most half the smallest subnormal
F32_ABSOLUTE = 2.0**-150


def native_available() -> bool:
    """Whether the compiled served-map pass is built (otherwise the numpy reference runs, same guarantee)."""
    return _native is not None


def _gamma(n: int) -> float:
    """gamma_n = n u / (1 - n u), with room for the rounding of its own computation."""
    return (n * U / (1.0 - n * U)) * (1.0 + 2.0**-30)


def _up(a: np.ndarray | float) -> np.ndarray | float:
    return a * _SLACK + _TINY


def _norms(a: np.ndarray) -> np.ndarray:
    """Upper bounds of the l2 norm of every row, scale-safe.

    Squaring raw values underflows for |a| below ~1e-154 (the "upper bound" became 2^-1000
    for layer values ~1e-200) and overflows above ~1e154. So each row is divided by its
    largest magnitude m first: the scaled entries lie in [-1, 1] with one of them +-1, the
    sum of squares is >= 1 (absolute underflow errors, below n 2^-1074, vanish against it),
    and ``m * sqrt(sum)`` is rounded with two more gamma terms (the division and the product).
    """
    if a.shape[1] == 0:
        return np.full(a.shape[0], _TINY)
    largest = np.abs(a).max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        safe = np.where((largest > 0) & np.isfinite(largest), largest, 1.0)
        scaled = a / safe[:, None]
        root = np.sqrt((scaled * scaled).sum(axis=1)) * (1.0 + _gamma(a.shape[1] + 6))
        # a row holding NaN keeps NaN (an unknown error is not a small one)
        return _up(np.where(largest > 0, largest * root, np.where(largest == 0, 0.0, np.nan)))


def _abs_norm(matrix: np.ndarray) -> float:
    """An upper bound of || |M| ||_2 (hence of ||M||_2): min(Frobenius, sqrt(||M||_1 ||M||_inf))."""
    if matrix.size == 0:
        return 0.0
    a = np.abs(matrix)
    largest = float(a.max())
    if largest == 0.0:
        return float(_up(0.0))
    # scale-safe Frobenius norm (see _norms): squares of tiny or huge weights neither underflow nor overflow
    scale = largest if math.isfinite(largest) else 1.0
    frobenius = largest * math.sqrt(float(((a / scale) ** 2).sum())) * (1.0 + _gamma(a.size + 6))
    one = float(a.sum(axis=0).max()) * (1.0 + _gamma(a.shape[0] + 1))
    inf = float(a.sum(axis=1).max()) * (1.0 + _gamma(a.shape[1] + 1))
    # sqrt(one) * sqrt(inf), not sqrt(one * inf): the product of two tiny norms underflows
    return float(_up(min(frobenius, math.sqrt(one) * math.sqrt(inf) * (1.0 + 4 * U))))


#: activation kinds of the compiled pass (``_spline_kernels.c``)
KIND_IDENTITY, KIND_RELU, KIND_ABS, KIND_GROUPSORT, KIND_PIECEWISE = range(5)


def _trusted_distance(t: np.ndarray, inv: float) -> tuple[float, float]:
    """(inv, eps) for the compiled cell search: the cell guessed from p = fl(fl(h - t_0) * inv) is
    the exact cell (t_{j-1} <= h < t_j) whenever p's fractional part is at least eps from 0 and 1.

    Let P = (h - t_0) inv exactly and P_k = (t_k - t_0) inv = k + eta_k (eta measured here in exact
    rational arithmetic: linspace's knots are only nearly uniform). P is increasing in h, so
    h lies in cell f + 1 iff P_f <= P < P_{f+1}. Where the fractional part is trusted, |p| < m + 1,
    so |p - P| <= 3u (m + 1) =: delta (two roundings); the computed fraction fl(p - floor(p)) is off
    by at most u. So a fraction in [eps, 1 - eps] puts P strictly between f + eta and f + 1 - eta
    once eps > eta + u + delta; eps is twice that (at least 2^-40). Outside the knots (p <= -1/2:
    fl(h - t_0) < 0, so h < t_0; p >= m - 1/2: P > m - 1 + eta) the edge cells are certain.
    Elements whose fraction is not trusted are placed by exact comparisons. A grid too irregular
    for this (eps > 1/4) gets inv = 0: every element is then placed by comparisons.
    """
    m = t.size
    if m < 2 or not (inv > 0 and math.isfinite(inv)):
        return 0.0, 1.0
    t0, q = Fraction(float(t[0])), Fraction(inv)
    eta = max(abs((Fraction(float(tk)) - t0) * q - k) for k, tk in enumerate(t))
    eps = 2.0 * (float(eta) * (1 + 2.0**-20) + U + 3.0 * U * (m + 1))
    eps = max(eps, 2.0**-40)
    if eps > 0.25:
        return 0.0, 1.0
    return inv, eps


class Affine:
    """One affine map of the chain: dense (a matrix) or a convolution applied in float64.

    Public because ``ServedMap.affines`` is: the ONNX export (``lipspline.export``) reads
    these very objects, so the file computes with the arrays the service multiplies by.
    """

    fan_in: int
    #: upper bound of || |W| ||_2
    abs_norm: float
    #: upper bound of ||b||_2
    bias_norm: float

    def apply(self, a: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def pull_back(self, g: np.ndarray) -> np.ndarray:
        """Row vectors (B, k, n_out) times the layer's matrix -> (B, k, n_in): reverse-mode Jacobians."""
        raise NotImplementedError

    def arrays(self) -> list[np.ndarray]:
        raise NotImplementedError


class DenseAffine(Affine):
    """``a @ weight_t + bias`` on rows: every dense layer, and convolutions the view densified."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight_t = np.ascontiguousarray(weight.T, dtype=np.float64)
        self.bias = np.ascontiguousarray(bias, dtype=np.float64)
        self.fan_in = weight.shape[1]
        self.abs_norm = _abs_norm(weight)
        self.bias_norm = float(_norms(self.bias[None, :])[0])
        # torch views of the same memory: the product runs through torch.addmm, the very BLAS call
        # (bias in the accumulator, fan_in + 1 terms per entry) of a float64 torch forward
        self._weight_t = torch.from_numpy(self.weight_t)
        self._bias = torch.from_numpy(self.bias)

    def apply(self, a: np.ndarray) -> np.ndarray:
        a = np.ascontiguousarray(a, dtype=np.float64)
        return torch.addmm(self._bias, torch.from_numpy(a), self._weight_t).numpy()

    def pull_back(self, g: np.ndarray) -> np.ndarray:
        return g @ self.weight_t.T

    def arrays(self) -> list[np.ndarray]:
        return [self.weight_t, self.bias]


class ConvAffine(Affine):
    """A convolution of the opaque prefix, on flattened (C, H, W) rows."""

    def __init__(self, conv: nn.Conv2d, weight: torch.Tensor, in_shape: tuple[int, int, int]) -> None:
        self.weight = weight.detach().to(torch.float64).cpu()
        bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
        self.bias = bias.detach().to(torch.float64).cpu()
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.in_shape = in_shape
        kh, kw = conv.kernel_size
        self.fan_in = (conv.in_channels // conv.groups) * kh * kw
        with torch.no_grad():
            probe = self._conv(torch.zeros(1, *in_shape, dtype=torch.float64), self.weight)
        self.out_shape = tuple(probe.shape[1:])
        self.pixels = self.out_shape[1] * self.out_shape[2]
        # a convolution is a sum over taps of (a shift, norm <= 1) x (the tap's matrix)
        taps = self.weight.numpy()
        self.abs_norm = float(
            _up(sum(_abs_norm(taps[:, :, i, j]) for i in range(taps.shape[2]) for j in range(taps.shape[3])))
        )
        self.bias_norm = float(_up(float(_norms(self.bias.numpy()[None, :])[0]) * math.sqrt(self.pixels) * (1 + 4 * U)))

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return nn.functional.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def apply(self, a: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(a)).reshape(a.shape[0], *self.in_shape)
        with torch.no_grad():
            return self._conv(x, self.weight, self.bias).reshape(a.shape[0], -1).numpy()

    def pull_back(self, g: np.ndarray) -> np.ndarray:
        batch, k = g.shape[:2]
        grad_out = torch.from_numpy(np.ascontiguousarray(g)).reshape(batch * k, *self.out_shape)
        grad_in = nn.grad.conv2d_input(
            (batch * k, *self.in_shape), self.weight, grad_out, self.stride, self.padding, self.dilation, self.groups
        )
        return grad_in.reshape(batch, k, -1).numpy()

    def arrays(self) -> list[np.ndarray]:
        return [self.weight.numpy(), self.bias.numpy(), np.array(self.stride + self.padding + self.dilation)]


class _Activation:
    """What the evaluation and the error analysis need of one activation layer."""

    def __init__(self, view: PiecewiseView | GroupSortView) -> None:
        self.view = view
        if isinstance(view, GroupSortView):
            self.max_lipschitz = 1.0  # sorting pairs is 1-Lipschitz in l2
            self.exact = True
            return
        self.exact = view.name in ("relu", "abs")
        self.lipschitz = view.lipschitz()
        self.max_lipschitz = float(self.lipschitz.max()) if self.lipschitz.size else 0.0
        self.value_max = np.abs(view.v).max(axis=1)
        self.knot_max = float(np.abs(view.t).max())
        # Lookup tables for ``evaluate``: cell j (t_{j-1} <= x < t_j) uses the piece anchored at
        # t_a, a = max(j - 1, 0), with the view's slope of cell j (within gamma_3 of the exact one).
        m = view.t.size
        anchor = np.maximum(np.arange(m + 1) - 1, 0)
        units = view.v.shape[0]
        self._offsets = (np.arange(units) * (m + 1))[None, :]
        self._anchor_values = np.ascontiguousarray(view.v[:, anchor]).ravel()
        self._slopes = np.ascontiguousarray(view.s).ravel()
        self._anchor_knots = view.t[anchor]
        self._padded_knots = np.concatenate([[-np.inf], view.t, [np.inf]])  # [j] = t_{j-1}
        span = float(view.t[-1] - view.t[0])
        self._inv_spacing = (m - 1) / span if m > 1 and span > 0 else 0.0
        self._knots = np.ascontiguousarray(view.t, dtype=np.float64)
        self._anchor_knots = np.ascontiguousarray(self._anchor_knots, dtype=np.float64)
        self._value_max = np.ascontiguousarray(self.value_max, dtype=np.float64)
        self._lipschitz = np.ascontiguousarray(self.lipschitz, dtype=np.float64)
        self.trust = _trusted_distance(view.t, self._inv_spacing)
        # (v_a, s_j, t_a, 0) per unit and cell: the compiled pass reads all three with one load
        quads = np.zeros((units, m + 1, 4))
        quads[:, :, 0] = view.v[:, anchor]
        quads[:, :, 1] = view.s
        quads[:, :, 2] = view.t[anchor][None, :]
        self._quads = quads

    def native_kind(self) -> int:
        """The compiled pass's name for this activation (``_spline_kernels.c``)."""
        if isinstance(self.view, GroupSortView):
            return KIND_GROUPSORT
        if self.view.name == "relu":
            return KIND_RELU
        if self.view.name == "abs":
            return KIND_ABS
        return KIND_PIECEWISE

    def cells(self, h: np.ndarray) -> np.ndarray:
        """Cell index j of every entry, exactly: t_{j-1} <= h < t_j (comparisons with the knots).

        A guess from the (nearly) uniform spacing, then exact fix-ups against the knots;
        a guess off by more than one cell is finished by a binary search.
        """
        t = self.view.t
        m = t.size
        with np.errstate(invalid="ignore", over="ignore"):
            guess = np.floor((h - t[0]) * self._inv_spacing)
        cell = np.nan_to_num(guess, nan=0.0, posinf=m, neginf=0).clip(-1, m - 1).astype(np.int64) + 1
        knots = self._padded_knots
        cell += h >= knots[cell + 1 if m > 0 else cell]
        cell -= h < knots[cell]
        wrong = (h < knots[cell]) | (h >= knots[np.minimum(cell + 1, m + 1)])
        if wrong.any():
            cell[wrong] = np.searchsorted(t, h[wrong], side="right")
        return cell

    def evaluate(self, h: np.ndarray) -> np.ndarray:
        view = self.view
        if isinstance(view, GroupSortView):
            first, second = view.pairs()
            out = np.empty_like(h)
            out[:, first] = np.maximum(h[:, first], h[:, second])
            out[:, second] = np.minimum(h[:, first], h[:, second])
            return out
        if view.name == "relu":
            return np.maximum(h, 0.0)
        if view.name == "abs":
            return np.abs(h)
        cell = self.cells(h)
        index = cell + self._offsets
        return np.take(self._anchor_values, index) + np.take(self._slopes, index) * (h - self._anchor_knots[cell])

    def pull_back(self, g: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Row vectors (B, k, n) times the activation's Jacobian at the pre-activations h (B, n).

        Element-wise: the slope of the cell ``evaluate`` picks (the right-hand piece at a
        knot). GroupSort: each input receives the gradient of the output it was sorted to.
        """
        view = self.view
        if isinstance(view, GroupSortView):
            first, second = view.pairs()
            keep = (h[:, first] >= h[:, second])[:, None, :]
            out = np.empty_like(g)
            out[:, :, first] = np.where(keep, g[:, :, first], g[:, :, second])
            out[:, :, second] = np.where(keep, g[:, :, second], g[:, :, first])
            return out
        slope = np.take(self._slopes, self.cells(h) + self._offsets)
        return g * slope[:, None, :]

    def evaluation_error(self, h: np.ndarray) -> np.ndarray:
        """Per row: an upper bound of ||computed sigma(h) - sigma(h)||_2 at the computed h (0 if exact)."""
        if self.exact:
            return np.zeros(h.shape[0])
        terms = self.value_max + self.lipschitz * (np.abs(h) + self.knot_max)
        return _gamma(7) * _norms(terms)


@dataclass
class ServedOutputs:
    """Outputs of the served map and the proven rounding bounds that come with them.

    ``outputs`` (B, k) are what the endpoint returns; ``rounding`` (B,) is E(x), a bound of
    ``||outputs - F(x)||_2``; for every y within l2 distance rho of row i,
    ``||g(y) - F(y)||_2 <= rounding[i] + rho * ball_slope`` (module docstring).
    """

    outputs: np.ndarray
    rounding: np.ndarray
    ball_slope: float

    def row(self, index: int) -> ServedOutputs:
        """The same quantities for one input row (kept 2-D)."""
        pick = slice(index, index + 1)
        return ServedOutputs(self.outputs[pick], self.rounding[pick], self.ball_slope)

    def rows(self, index: np.ndarray) -> ServedOutputs:
        """The same quantities for the rows ``index`` (an integer array)."""
        return ServedOutputs(self.outputs[index], self.rounding[index], self.ball_slope)

    def as_float32(self, lipschitz: float) -> ServedOutputs:
        """The outputs cast to float32 (held exactly in float64), with bounds that cover the cast everywhere.

        The derived statements (radius, output bound) speak about the returned outputs at x *and*
        at every other point y of a ball, so the cast is bounded at y too, not only at x (a bound
        on ``|fl32(g(x)) - g(x)|`` alone was beaten by a factor 2 on ``/v2``, and labels flipped
        inside the radius where two logits one float32 ulp apart tied after the cast). Per
        component the cast moves a value by at most ``U32 |v| + F32_ABSOLUTE``; in l2 over the k
        outputs of a row by at most ``U32 ||g(y)|| + sqrt(k) F32_ABSOLUTE``; and in a ball of
        radius rho around x, ``||g(y)|| <= ||g(x)|| + 2 E(x) + rho (L + S)``. So the float32
        outputs carry ``E32 = E + U32 (||g(x)|| + 2 E) + sqrt(k) F32_ABSOLUTE`` and the slope
        ``S32 = S + U32 (L + S)``, every term rounded up. A tie after the cast leaves a margin of
        0: it certifies nothing. Outputs beyond float32's range come back infinite (the caller
        refuses them).
        """
        with np.errstate(over="ignore"):
            narrow = self.outputs.astype(np.float32).astype(np.float64)
        width = self.outputs.shape[1]
        cast = _up(U32 * (_norms(self.outputs) + 2.0 * self.rounding) + math.sqrt(width) * F32_ABSOLUTE)
        slope = float(_up(self.ball_slope + U32 * (lipschitz + self.ball_slope)))
        return ServedOutputs(narrow, np.nextafter(_up(self.rounding + cast), np.inf), slope)


class ServedMap:
    """The one map a model serves, evaluated in float64 with its rounding bound (module docstring)."""

    def __init__(self, network: nn.Module) -> None:
        view = build_view(network)
        self.view: ChainView = view
        self.n_features = int(view.n_features)
        self.n_outputs = int(view.n_outputs)
        self.input_mean = view.input_mean.astype(np.float64)
        self._input_mean = np.ascontiguousarray(self.input_mean)
        self.affines: list[Affine] = []
        self.activations: list[_Activation] = []
        self.prefix_fold: np.ndarray | None = None
        if not view.dense_input:
            self._build_conv_prefix(network)
        target_mean = float(network.target_mean.detach().to(torch.float64).cpu())
        for index, weight in enumerate(view.weights):
            bias = view.biases[index]
            if index == len(view.weights) - 1:
                bias = bias + target_mean  # a constant: part of F's definition, not of its slope
            self.affines.append(DenseAffine(weight, bias))
            if index < len(view.activations):
                self.activations.append(_Activation(view.activations[index]))
        self.ball_slope = self._ball_slope()
        self.fingerprint = self._fingerprint()
        self._plans = self._native_plans()

    def __getstate__(self) -> dict:
        """Copies and pickles leave the compiled plans behind (capsules holding raw pointers into
        this object's tables); ``__setstate__`` rebuilds them on the copy's own tables."""
        state = self.__dict__.copy()
        state["_plans"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._plans = self._native_plans()

    def _native_plans(self) -> list | None:
        """One frozen description per layer for the compiled pass, built once per loaded model.

        Everything that depends on the weights only (the affine layer's ``|| |W| ||`` bound A, its
        gamma, ``||b||``, the activation's tables and largest slope, the norms' gamma factors) is
        computed here; a request then makes one pass over each layer's output. None without the
        compiled kernel (the numpy reference path runs).
        """
        if _native is None:
            return None
        plans = []
        for index, affine in enumerate(self.affines):
            g = _gamma(affine.fan_in + 1)
            if index == len(self.activations):
                plans.append(_native.served_plan(
                    KIND_IDENTITY, 1, 0, 1, 1, 0.0, 0.0, 1.0, 0, 0, 0, 0, 0, 0, 0.0,
                    affine.abs_norm, g, affine.bias_norm, 1.0, _gamma(7), 1.0,
                ))
                continue
            act = self.activations[index]
            kind = act.native_kind()
            view = act.view
            units = int(view.n_units)
            block = int(view.block) if isinstance(view, GroupSortView) else 1
            gnorm = 1.0 + _gamma(units + 6)
            if kind != KIND_PIECEWISE:
                plans.append(_native.served_plan(
                    kind, 1, units, block, 1, 0.0, 0.0, 1.0, 0, 0, 0, 0, 0, 0, 0.0,
                    affine.abs_norm, g, affine.bias_norm, act.max_lipschitz, _gamma(7), gnorm,
                ))
                continue
            inv, eps = act.trust
            plans.append(_native.served_plan(
                kind, int(act.exact), units, 1, int(view.t.size), float(view.t[0]), inv, eps,
                act._knots.ctypes.data, act._anchor_knots.ctypes.data, act._anchor_values.ctypes.data,
                act._slopes.ctypes.data, act._value_max.ctypes.data, act._lipschitz.ctypes.data,
                act.knot_max, affine.abs_norm, g, affine.bias_norm, act.max_lipschitz, _gamma(7), gnorm,
                act._quads.ctypes.data,
            ))
        return plans

    def _build_conv_prefix(self, network: nn.Module) -> None:
        """Convolutions too large to densify: F applies the input fold, then conv2d in float64."""
        self.prefix_fold = self.view.input_fold.astype(np.float64)
        shape = tuple(network.input_shape)
        for index in range(int(network.n_conv)):
            conv = network.layers[index]
            affine = ConvAffine(conv, served_weight(conv), shape)  # type: ignore[arg-type]
            self.affines.append(affine)
            self.activations.append(_Activation(activation_view(network.activations[index]).repeat(affine.pixels)))
            shape = affine.out_shape  # type: ignore[assignment]

    def _fingerprint(self) -> str:
        """Content hash of every array F is defined by: equal fingerprints, equal served functions."""
        digest = hashlib.sha256()
        arrays: list[np.ndarray] = [self.input_mean]
        if self.prefix_fold is not None:
            arrays.append(self.prefix_fold)
        for affine in self.affines:
            arrays.extend(affine.arrays())
        for act in self.activations:
            view = act.view
            if isinstance(view, GroupSortView):
                arrays.append(np.array([view.n_units, view.block], dtype=np.float64))
            else:
                arrays.extend([view.t, view.v, view.s, view.s_lo, view.s_hi])
        for a in arrays:
            a = np.ascontiguousarray(a, dtype=np.float64)
            digest.update(str(a.shape).encode())
            digest.update(a.tobytes())
        return digest.hexdigest()

    # ---- the rounding analysis -----------------------------------------------------------------
    @staticmethod
    def _input_unit() -> float:
        return U / (1.0 - U) * (1.0 + 2.0**-30)

    def _ball_slope(self) -> float:
        """S: how fast the error bound grows with the radius of the ball (the model's constant part).

        Mirrors ``evaluate``: ``S_h = A S (1 + g) + g A m``, ``m_h = A m``; an activation maps
        ``S -> Lip S + gamma_7 Lip (m + S)`` (the last term only when its evaluation rounds).
        """
        slope = self._input_unit()
        move = 1.0
        if self.prefix_fold is not None:
            fold = float(np.abs(self.prefix_fold).max())
            slope = (slope * fold + U * (move * fold + slope * fold)) * _SLACK
            move = move * fold * _SLACK
        for index, affine in enumerate(self.affines):
            g = _gamma(affine.fan_in + 1)
            slope = float(_up(affine.abs_norm * (slope * (1.0 + g) + g * move)))
            move = float(_up(affine.abs_norm * move))
            if index < len(self.activations):
                act = self.activations[index]
                own = 0.0 if act.exact else _gamma(7) * act.max_lipschitz * (move + slope)
                slope = float(_up(act.max_lipschitz * slope + own))
                move = float(_up(act.max_lipschitz * move))
        return slope

    def evaluate(self, x: np.ndarray) -> ServedOutputs:
        """Outputs with E(x) per row (and the model's ball slope S).

        Compiled: one pass per layer over its affine output computes the activation, the norms
        and the error recursion together (``_run_native``); otherwise the numpy reference below.
        The two compute the same outputs bit for bit and bounds that each satisfy the analysis.
        """
        if self._plans is not None:
            outputs, rounding, _ = self._run_native(np.asarray(x, dtype=np.float64), with_bound=True)
            return ServedOutputs(outputs=outputs, rounding=rounding, ball_slope=self.ball_slope)
        return self._evaluate_reference(x)

    def _run_native(
        self, x: np.ndarray, with_bound: bool, trace: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The compiled evaluation: (outputs, E per row, ||a|| per row), ``trace`` gets every h."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"inputs must have shape (rows, {self.n_features}), got {x.shape}")
        x = np.ascontiguousarray(x)
        rows = x.shape[0]
        threads = torch.get_num_threads()
        error = np.empty(rows)
        norm = np.empty(rows)
        d = np.empty_like(x)
        # the arrays themselves, not their .ctypes.data: the kernel reads their buffers (0.9 µs saved per array)
        _native.served_input(
            x, self._input_mean, d, rows, self.n_features, error, norm, self._input_unit(), 4 * U,
            1.0 + _gamma(self.n_features + 6), with_bound, threads,
        )
        a = d
        if self.prefix_fold is not None:  # one more rounding: z = fl(d * fold) (numpy, as the reference)
            a = d * self.prefix_fold
            if with_bound:
                scaled = error * float(np.abs(self.prefix_fold).max())
                norm = _norms(a)
                error = _up(scaled + U * (norm + 2.0 * scaled))
        last = len(self.activations)
        for index, (affine, plan) in enumerate(zip(self.affines, self._plans, strict=True)):
            h = np.ascontiguousarray(affine.apply(a))
            if trace is not None:
                trace.append(h)
            if index == last:
                if with_bound:  # the output layer: its affine error only
                    _native.served_step(plan, h, h, rows, error, norm, True, threads)
                a = h
                continue
            # ReLU, abs, GroupSort overwrite h (nothing else reads it); a spline keeps it for its error terms
            keep = trace is not None or self.activations[index].native_kind() == KIND_PIECEWISE
            out = np.empty_like(h) if keep else h
            _native.served_step(plan, h, out, rows, error, norm, with_bound, threads)
            a = out
        return a, error, norm

    def _evaluate_reference(self, x: np.ndarray) -> ServedOutputs:
        """The numpy evaluation of the analysis, step by step (used without the compiled kernel, and by tests)."""
        d = self._differences(np.asarray(x, dtype=np.float64))
        a = d
        # |fl(x - m) - (x - m)| <= u |x - m| entry-wise, so in norm too
        error = _up(self._input_unit() * _norms(d) * (1.0 + 4 * U))
        if self.prefix_fold is not None:  # one more rounding: z = fl(d * fold)
            a = d * self.prefix_fold
            scaled = error * float(np.abs(self.prefix_fold).max())
            error = _up(scaled + U * (_norms(a) + 2.0 * scaled))
        for index, affine in enumerate(self.affines):
            g = _gamma(affine.fan_in + 1)
            # inherited: A e; own: gamma (A ||a(y)|| + ||b||) with ||a(y)|| <= ||a(x)|| + 2e at x
            magnitude = _norms(a) + 2.0 * error
            h = affine.apply(a)
            error = _up(affine.abs_norm * error + g * (affine.abs_norm * magnitude + affine.bias_norm))
            if index == len(self.activations):
                a = h
                continue
            act = self.activations[index]
            a = act.evaluate(h)
            own = act.evaluation_error(h)
            if not act.exact:
                own = own + _gamma(7) * act.max_lipschitz * 2.0 * error  # |h(y)| <= |h(x)| + 2e, over the ball
            error = _up(act.max_lipschitz * error + own)
        return ServedOutputs(outputs=a, rounding=error, ball_slope=self.ball_slope)

    # ---- evaluation without the bound ---------------------------------------------------------
    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The served outputs only: the same arithmetic as ``evaluate``."""
        if self._plans is not None:
            return self._run_native(np.asarray(x, dtype=np.float64), with_bound=False)[0]
        return self._outputs_reference(x)

    def _outputs_reference(self, x: np.ndarray) -> np.ndarray:
        a = self._standardized(np.asarray(x, dtype=np.float64))
        for index, affine in enumerate(self.affines):
            h = affine.apply(a)
            a = self.activations[index].evaluate(h) if index < len(self.activations) else h
        return a

    def preactivations(self, x: np.ndarray) -> list[np.ndarray]:
        """Every affine output h_1 ... h_L (the last is the output) of the served evaluation."""
        if self._plans is not None:
            trace: list[np.ndarray] = []
            self._run_native(np.asarray(x, dtype=np.float64), with_bound=False, trace=trace)
            return trace
        a = self._standardized(np.asarray(x, dtype=np.float64))
        trace = []
        for index, affine in enumerate(self.affines):
            h = affine.apply(a)
            trace.append(h)
            a = self.activations[index].evaluate(h) if index < len(self.activations) else h
        return trace

    def jacobians(self, x: np.ndarray) -> np.ndarray:
        """Jacobians (B, outputs, inputs) of F at each row (one-sided at kinks, see ``pull_back``)."""
        trace = self.preactivations(x)
        batch = trace[0].shape[0]
        g = np.broadcast_to(np.eye(self.n_outputs), (batch, self.n_outputs, self.n_outputs)).copy()
        for index in range(len(self.affines) - 1, -1, -1):
            if index < len(self.activations):
                g = self.activations[index].pull_back(g, trace[index])
            g = self.affines[index].pull_back(g)
        if self.prefix_fold is not None:
            g = g * self.prefix_fold[None, None, :]
        return g

    def _differences(self, x: np.ndarray) -> np.ndarray:
        """d = fl(x - mean), float64 from float64 inputs: nothing is rounded before standardising."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"inputs must have shape (rows, {self.n_features}), got {x.shape}")
        return x - self.input_mean

    def _standardized(self, x: np.ndarray) -> np.ndarray:
        d = self._differences(x)
        return d if self.prefix_fold is None else d * self.prefix_fold
