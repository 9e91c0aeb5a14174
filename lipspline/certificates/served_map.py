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

import numpy as np
import torch
from torch import nn

from lipspline.certificates._fp import U
from lipspline.certificates.view import ChainView, GroupSortView, PiecewiseView, activation_view, build_view
from lipspline.layers import served_weight

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
        self.weight_t = np.ascontiguousarray(weight.T)
        self.bias = bias
        self.fan_in = weight.shape[1]
        self.abs_norm = _abs_norm(weight)
        self.bias_norm = float(_norms(bias[None, :])[0])

    def apply(self, a: np.ndarray) -> np.ndarray:
        return a @ self.weight_t + self.bias

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
        """Outputs with E(x) per row (and the model's ball slope S)."""
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
        a = self._standardized(np.asarray(x, dtype=np.float64))
        for index, affine in enumerate(self.affines):
            h = affine.apply(a)
            a = self.activations[index].evaluate(h) if index < len(self.activations) else h
        return a

    def preactivations(self, x: np.ndarray) -> list[np.ndarray]:
        """Every affine output h_1 ... h_L (the last is the output) of the served evaluation."""
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
