"""The certified chain, which is also the served map: W_L s_{L-1}(... s_1(W_1 d + b_1) ...) + b_L.

Why this view exists: every bound and the endpoint itself read the same
arrays, so the function the certificates bound is, by construction, the
function the service computes (``served_map.py`` evaluates it in float64 and
bounds its rounding). The input standardisation and the target scaling are
folded into the first and last weights, convolutions are turned into their
exact dense matrices, and every activation is described by what the bounds
need (per-unit slope intervals, Lipschitz constants, BV2 norms, the
piecewise-linear pieces for local bounds).

The served map F starts from ``d = x - input_mean`` (float64) and applies:

* ``W_1 diag(r)``, with ``r`` the reciprocal input scale rounded *down* to 29
  significant bits, so ``W_ij * r_j`` is exact for float32 weights (24 + 29 =
  53 bits); a float64 network's product is rounded once, and F is defined with
  the rounded matrix (the bounds read that very matrix);
* the target scale (regression) rounded down to 24 bits, folded into the last
  weight and bias (exact for float32 parameters); the target mean is a
  constant added by the served map and does not affect any bound;
* a linear spline as the interpolant through its float64 knots (``_spline_view``).

Rounding both scales down keeps a 1-Lipschitz network's certificate at or
below 1 (``r * target <= (1 / s) * s``), and changes predictions by less than
1e-7 relative. A convolution applied to the identity basis gives its dense
matrix exactly (each entry is one kernel weight).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch
from torch import nn

from lipspline.certificates._fp import INF, U, mul_up
from lipspline.certificates.spectral import SCHUR_FLOPS, conv_norm_bound
from lipspline.nn.activations import LEAKY_SLOPE as ACT_LEAKY_SLOPE
from lipspline.nn.activations import AbsoluteValue, GroupSort, LeakyReLU, PReLU, ReLU
from lipspline.nn.layers import served_weight
from lipspline.nn.splines import LinearSpline

#: convolutions whose dense matrix has more entries than this are bounded by ``conv_bound`` instead
DENSE_CONV_LIMIT = 4_000_000
#: and so are those with a side longer than this
DENSE_CONV_MAX_SIDE = 4096
#: significant bits of the folded input scale (a float32 weight times it is exact in float64)
FOLD_BITS = 29
#: significant bits of the folded target scale (likewise, with room to spare)
TARGET_BITS = 24


@dataclass
class PiecewiseView:
    """An element-wise continuous piecewise-linear activation (one function per unit).

    ``t`` (m,) are the breakpoints shared by all units, ``v`` (n, m) the values
    at them, ``s`` (n, m+1) the slope of each cell (cell 0 is (-inf, t_0), cell
    m is (t_{m-1}, inf)). ``s_lo``/``s_hi`` enclose the exact slopes (the
    float64 slopes are within a few ulps; they are widened outwards).
    """

    t: np.ndarray
    v: np.ndarray
    s: np.ndarray
    s_lo: np.ndarray
    s_hi: np.ndarray
    bv2: np.ndarray | None
    name: str
    elementwise: bool = True

    @property
    def n_units(self) -> int:
        return self.s.shape[0]

    def slope_interval(self) -> tuple[np.ndarray, np.ndarray]:
        return self.s_lo.min(axis=1), self.s_hi.max(axis=1)

    def lipschitz(self) -> np.ndarray:
        return np.maximum(np.abs(self.s_lo), np.abs(self.s_hi)).max(axis=1)

    def repeat(self, times: int) -> PiecewiseView:
        """Per-channel description -> per (channel, pixel) unit (conv layers)."""
        if times == 1:
            return self
        rep = lambda a: None if a is None else np.repeat(a, times, axis=0)  # noqa: E731
        return PiecewiseView(self.t, rep(self.v), rep(self.s), rep(self.s_lo), rep(self.s_hi), rep(self.bv2), self.name)


@dataclass
class GroupSortView:
    """GroupSort(2): 1-Lipschitz, Jacobian a permutation, not diagonal.

    Which units form a pair follows the forward pass, which sorts pairs of
    *channels* (axis 1). In the flattened layout the chain uses, units come in
    groups of ``2 * block`` consecutive entries and unit ``j`` of a group pairs
    with unit ``j + block``: ``block`` is 1 after a dense layer and the number
    of pixels per channel after a convolution.
    """

    n_units: int
    block: int = 1
    name: str = "groupsort"
    elementwise: bool = False

    def lipschitz(self) -> np.ndarray:
        return np.ones(self.n_units)

    def repeat(self, times: int) -> GroupSortView:
        """Per-channel description -> per (channel, pixel) unit: partners are ``times`` apart."""
        return GroupSortView(self.n_units * times, self.block * times)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices (first, second) of the two members of every pair; max goes to first, min to second."""
        groups = np.arange(0, self.n_units, 2 * self.block)[:, None]
        first = (groups + np.arange(self.block)[None, :]).ravel()
        return first, first + self.block


ActView = PiecewiseView | GroupSortView


def _widen_slopes(s: np.ndarray, ops: int = 8) -> tuple[np.ndarray, np.ndarray]:
    pad = np.abs(s) * (2 * ops * U) + 2.0**-1000
    return np.nextafter(s - pad, -INF), np.nextafter(s + pad, INF)


def _piecewise(t: list[float], v: np.ndarray, s: np.ndarray, bv2: np.ndarray, name: str) -> PiecewiseView:
    lo, hi = _widen_slopes(s)
    bv2 = np.nextafter(bv2 * (1 + 8 * U), INF)
    return PiecewiseView(np.asarray(t, dtype=np.float64), v, s, lo, hi, bv2, name)


def activation_view(act: nn.Module) -> ActView:
    """Describe one activation module exactly (float64, with outward rounding)."""
    if isinstance(act, GroupSort):
        return GroupSortView(act.num_units)
    if isinstance(act, LinearSpline):
        return _spline_view(act)
    n = getattr(act, "num_units", None)
    if n is None:
        raise TypeError(f"certificates do not know the activation {type(act).__name__}")
    zeros = np.zeros((n, 1))
    if isinstance(act, ReLU):
        return _piecewise([0.0], zeros, np.tile([0.0, 1.0], (n, 1)), np.full(n, 2.0), "relu")
    if isinstance(act, LeakyReLU):
        a = float(ACT_LEAKY_SLOPE)
        return _piecewise([0.0], zeros, np.tile([a, 1.0], (n, 1)), np.full(n, 1.0 + abs(1.0 - a)), "leaky_relu")
    if isinstance(act, AbsoluteValue):
        return _piecewise([0.0], zeros, np.tile([-1.0, 1.0], (n, 1)), np.full(n, 3.0), "abs")
    if isinstance(act, PReLU):
        a = act.effective_slope().detach().to(torch.float64).cpu().numpy()
        s = np.stack([a, np.ones_like(a)], axis=1)
        return _piecewise([0.0], zeros, s, 1.0 + np.abs(1.0 - a), "prelu")
    raise TypeError(f"certificates do not know the activation {type(act).__name__}")


def _spline_view(act: LinearSpline) -> PiecewiseView:
    """A linear spline as the served map defines it: the interpolant through (t_k, c_k), end slopes continued.

    The knots are the float64 numbers ``t`` (``linspace``), not the real grid
    ``-R + k delta``; the slopes are those of that interpolant. Each float64
    slope ``fl(fl(c_{k+1} - c_k) / fl(t_{k+1} - t_k))`` is within gamma_3 of the
    exact one, which the widened interval encloses. BV2 = sum of the jumps of
    the slope + |sigma(0)| + |sigma(1)|, bounded from the same slopes.
    """
    c = act.served_coefficients().detach().to(torch.float64).cpu().numpy()
    t = np.linspace(-act.grid_range, act.grid_range, c.shape[1])
    inner = np.diff(c, axis=1) / np.diff(t)[None, :]
    s = np.concatenate([inner[:, :1], inner, inner[:, -1:]], axis=1)
    lo, hi = _widen_slopes(s)
    k = inner.shape[1]
    jumps = np.abs(np.diff(inner, axis=1)).sum(axis=1) + 8 * U * np.abs(inner).sum(axis=1)
    at_01 = _spline_values(t, c, s, np.array([0.0, 1.0]))
    v_err = 8 * U * (np.abs(c).max(axis=1) + np.abs(s).max(axis=1) * (1.0 + np.abs(t).max()))
    bv2 = (jumps + np.abs(at_01).sum(axis=1) + 2 * v_err) * (1 + 4 * (k + 8) * U) + 2.0**-1000
    return PiecewiseView(t, c, s, lo, hi, np.nextafter(bv2, INF), "deepspline")


def _spline_values(t: np.ndarray, v: np.ndarray, s: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Values (units, points) of the piecewise-linear functions (t, v, s) at a few points."""
    cell = np.searchsorted(t, points, side="right")
    anchor = np.maximum(cell - 1, 0)
    return v[:, anchor] + s[:, cell] * (points - t[anchor])[None, :]


def round_up_bits(x: np.ndarray, bits: int) -> np.ndarray:
    """Round |x| up to ``bits`` significant bits (keeps the sign)."""
    mant, exp = np.frexp(np.abs(x))
    mant = np.ceil(np.ldexp(mant, bits))
    return np.copysign(np.ldexp(mant, exp - bits), x)


def reciprocal_down(x: np.ndarray, bits: int) -> np.ndarray:
    """The largest ``bits``-bit number r <= 1/x, per entry of a positive array (exact check, no rounding).

    fl(1/x) cut to ``bits`` bits is within one of its last bits of the answer; exact
    rational arithmetic decides whether to step down once (1/2 stays 0.5, 1/3 does not round up).
    """
    r = round_down_bits(1.0 / x, bits)
    for index in np.flatnonzero(np.isfinite(r) & (r > 0)):
        if Fraction(float(r[index])) * Fraction(float(x[index])) > 1:
            mant, exp = math.frexp(float(r[index]))
            r[index] = math.ldexp(math.floor(math.ldexp(mant, bits)) - 1, exp - bits)
    return r


def round_down_bits(x: np.ndarray, bits: int) -> np.ndarray:
    """Round |x| down to ``bits`` significant bits (keeps the sign)."""
    mant, exp = np.frexp(np.abs(x))
    mant = np.floor(np.ldexp(mant, bits))
    return np.copysign(np.ldexp(mant, exp - bits), x)


def _conv_dense(conv: nn.Conv2d, weight: torch.Tensor, shape: tuple[int, int, int]) -> tuple[np.ndarray, tuple]:
    """Exact dense matrix of a (bias-free) convolution on images of ``shape``."""
    c, h, w = shape
    n_in = c * h * w
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, c, h, w)
    out = nn.functional.conv2d(
        basis, weight.detach().to(torch.float64), None, conv.stride, conv.padding, conv.dilation, conv.groups
    )
    out_shape = tuple(out.shape[1:])
    return out.reshape(n_in, -1).T.contiguous().numpy(), out_shape


def _conv_out_shape(conv: nn.Conv2d, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    _, h, w = shape
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    ph, pw = conv.padding
    dh, dw = conv.dilation
    return conv.out_channels, (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


def conv_bound(conv: nn.Conv2d, weight: torch.Tensor) -> float:
    """Sound ||conv||_2 bound of a zero-padded convolution: the tap sum or the Schur test, the smaller
    (the Schur test within ``SCHUR_FLOPS``, except for AOL layers, which need it to be tight).

    Other padding modes (reflect, replicate) can reuse an input pixel several times, which neither
    proof allows for; they get no finite bound.
    """
    if conv.padding_mode != "zeros":
        return math.inf
    kernel = weight.detach().to(torch.float64).cpu().numpy()
    if getattr(conv, "parametrization", None) == "aol":  # its served kernel was proven this way already
        return conv_norm_bound(kernel)
    return conv_norm_bound(kernel, SCHUR_FLOPS)


@dataclass
class ChainView:
    """Everything the bounds read; built once per network state (see ``fingerprint``)."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activations: list[ActView]
    first_raw: np.ndarray | None
    input_mean: np.ndarray
    input_scale: np.ndarray
    input_fold: np.ndarray
    prefix_factor: float = 1.0
    prefix_note: str | None = None
    n_features: int = 0
    n_outputs: int = 0
    segments: list[tuple[int, int]] = field(default_factory=list)

    @property
    def dense_input(self) -> bool:
        """True when the chain starts at the raw input (no opaque conv prefix)."""
        return self.prefix_note is None

    @property
    def elementwise_only(self) -> bool:
        return all(a.elementwise for a in self.activations)

    @property
    def hidden_units(self) -> int:
        return sum(a.n_units for a in self.activations)


def _segments(acts: list[ActView], n_weights: int) -> list[tuple[int, int]]:
    """Split the chain at non-element-wise activations: [(first weight, last weight)], inclusive."""
    segs = []
    start = 0
    for i, act in enumerate(acts):
        if not act.elementwise:
            segs.append((start, i))
            start = i + 1
    segs.append((start, n_weights - 1))
    return segs


def build_view(network: nn.Module) -> ChainView:
    """Extract the certified chain of a ``SplineNetwork`` (see module docstring)."""
    layers = list(network.layers)
    acts = list(network.activations)
    n_conv = int(getattr(network, "n_conv", 0))
    scale = network.input_scale.detach().to(torch.float64).cpu().numpy()
    mean = network.input_mean.detach().to(torch.float64).cpu().numpy()
    with np.errstate(divide="ignore"):
        fold = reciprocal_down(np.abs(scale), FOLD_BITS)
    # the target scale as the network holds it (float64, no detour through float32), cut to 24 bits
    target = float(round_down_bits(np.float64(network.target_scale.detach().to(torch.float64).cpu()), TARGET_BITS))

    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    views: list[ActView] = []
    prefix = 1.0
    note = None
    start = 0
    if n_conv:
        shape = tuple(network.input_shape)
        dense_ok = True
        s = shape
        for conv in layers[:n_conv]:
            o = _conv_out_shape(conv, s)
            n_in, n_out = s[0] * s[1] * s[2], o[0] * o[1] * o[2]
            if n_in * n_out > DENSE_CONV_LIMIT or max(n_in, n_out) > DENSE_CONV_MAX_SIDE:
                dense_ok = False
            s = o
        if dense_ok:
            s = shape
            for index, conv in enumerate(layers[:n_conv]):
                w = served_weight(conv)
                dense, o = _conv_dense(conv, w, s)
                weights.append(dense)
                bias = conv.bias.detach().to(torch.float64).cpu().numpy() if conv.bias is not None else np.zeros(o[0])
                biases.append(np.repeat(bias, o[1] * o[2]))
                views.append(activation_view(acts[index]).repeat(o[1] * o[2]))
                s = o
        else:
            # Opaque prefix: Lip <= max|r| * prod_l (||conv_l|| * max Lip sigma_l), ||conv_l|| proven.
            prefix = float(np.max(np.abs(fold))) if fold.size else 1.0
            for index, conv in enumerate(layers[:n_conv]):
                lip = float(activation_view(acts[index]).lipschitz().max())
                prefix = mul_up(prefix, conv_bound(conv, served_weight(conv)), lip)
            note = "convolutions too large to densify: bounded by their proven norms x activation Lipschitz"
            start = n_conv
    for index in range(max(n_conv, start), len(layers)):
        layer = layers[index]
        weights.append(served_weight(layer).detach().to(torch.float64).cpu().numpy())
        bias = layer.bias
        biases.append(
            bias.detach().to(torch.float64).cpu().numpy() if bias is not None else np.zeros(weights[-1].shape[0])
        )
        if index < len(acts):
            views.append(activation_view(acts[index]))
    first_raw = None
    if note is None:
        first_raw = weights[0].copy()
        weights[0] = weights[0] * fold[None, :]
    weights[-1] = weights[-1] * target
    biases[-1] = biases[-1] * target
    if not math.isfinite(target):
        prefix = INF
    view = ChainView(
        weights=weights,
        biases=biases,
        activations=views,
        first_raw=first_raw,
        input_mean=mean,
        input_scale=scale,
        input_fold=fold,
        prefix_factor=prefix,
        prefix_note=note,
        n_features=int(network.n_features),
        n_outputs=int(network.n_outputs),
    )
    view.segments = _segments(views, len(weights))
    return view


def fingerprint(network: nn.Module) -> str:
    """Content hash of everything that defines the certified map (cache key)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(repr(network).encode())
    for name, tensor in network.state_dict().items():
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy() if t.dtype != torch.bfloat16 else t.float().numpy())  # buffer protocol: no copy
    for module in network.modules():
        for attr in ("slope_bound", "grid_range", "stride", "padding", "dilation", "groups"):
            if hasattr(module, attr):
                h.update(f"{attr}={getattr(module, attr)!r}".encode())
    h.update(repr(getattr(network, "input_shape", None)).encode())
    return h.hexdigest()
