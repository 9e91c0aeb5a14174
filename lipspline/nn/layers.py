"""Affine layers and the operator norms the objectives and certificates share.

``operator_norm_upper`` is differentiable and used by the training penalties
(coupled / layer-wise spectral) and by the 1-Lipschitz layers while they
train. For a dense layer it is the exact spectral norm (the largest singular
value, through ``torch.linalg.matrix_norm``); for a convolution it is the sum
over kernel taps of each tap's spectral norm, a cheap bound that is always >=
the true operator norm (the convolution is a sum of shifted copies of each
tap's matrix, and a shift with zero padding has norm <= 1).

The exact SVD costs O(mn min(m, n)) per step; for the small networks the
Lipschitz-regularised objectives are meant for (paper 002's 3 x 20) this is
microseconds and, unlike a power iteration, it is stateless, deterministic and
exact, so penalties can be checked against a direct computation.

Two weights per 1-Lipschitz layer, and why
------------------------------------------
A 1-Lipschitz layer stores a free parameter ``V`` and applies ``V / ||V||``
(when ``||V|| > 1``). Training needs that map to be differentiable, so it is
computed with torch's float32 SVD (:func:`rescaled_to_unit_norm`). That number
is *not* reproducible: the SVD takes different code paths with and without
autograd and its result can sit a few ulps on either side of the true norm, so
two evaluations of "the same" weight disagreed by up to 9e-7 relative, and the
weights the certificate read were not the weights the endpoint multiplied by
(a served 1-Lipschitz network measured 1 + 3.9e-6 against a certificate of 1).

Everything outside the differentiable training step therefore uses
:func:`served_weight`: computed once per weight version in float64 from a
*proven* norm bound, rounded to the parameter's dtype, and then proven again on
exactly those rounded numbers, so ``||served weight||_2 <= 1`` is a theorem
about the floats that are multiplied, not an approximation. The forward pass,
validation, the endpoint and the certificate all read that one cached tensor
and so see bit-identical weights.

Three ways to keep a dense layer's norm <= 1
--------------------------------------------
``spectral`` divides V by its spectral norm (paper 003). Only the top singular
value is then 1; the others shrink with it, so signals (and gradients) fade
through depth, which is why such networks trail orthogonal ones on accuracy.
``bjorck`` (Anil, Lucas and Grosse, *Sorting out Lipschitz function
approximation*) iterates ``W <- W (3/2 I - 1/2 W^T W)`` from ``V / ||V||_F``: every
singular value is driven to 1, so the layer preserves norms (gradient-norm
preserving with GroupSort). ``aol`` (Prach and Lampert, *Almost-Orthogonal
Layers*) rescales the columns, ``W = V diag(sum_j |V^T V|_ij)^(-1/2)``: a
closed form with ``||W||_2 <= 1`` in exact arithmetic, no iteration, nearly as
good. Both are only the *training* parametrisation; the served weight is the
same map computed in float64 and then divided by a proven norm bound as above,
so the certificate's "norm <= 1" stays a theorem for every kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

#: The differentiable (training) path divides by (1 + margin) * ||V||: a float32
#: SVD can underestimate the norm by a few ulps and the margin absorbs most of
#: that. It is a heuristic only; the weights that are served and certified come
#: from :func:`served_weight`, whose norm bound is proven.
ONE_LIPSCHITZ_MARGIN = 1e-6

#: Retries of the rounded served weight's proof before giving up on tightness.
#: The extra margin starts at one ulp of the dtype and doubles each retry, so
#: long before this many the divisor is huge and the (tiny) weight passes.
SERVED_MAX_ATTEMPTS = 64


#: Björck iterations of a layer's weight at every training step and for the served weight.
#: From V/||V||_F every singular value s moves to s (3 - s^2) / 2; 15 steps bring
#: s >= 0.05 to 1 within float32 precision, and the served weight is proven anyway.
BJORCK_ITERATIONS = 15

#: the training parametrisations of a 1-Lipschitz dense layer (module docstring)
PARAMETRIZATIONS = ("spectral", "bjorck", "aol")
#: those of a 1-Lipschitz convolution (an orthogonal convolution needs a Fourier-domain parametrisation)
CONV_PARAMETRIZATIONS = ("spectral", "aol")


def bjorck_orthonormalize(weight: Tensor, iterations: int = BJORCK_ITERATIONS) -> Tensor:
    """The nearest (semi-)orthogonal matrix to ``weight`` by Björck's iteration; differentiable.

    Tall matrices get orthonormal columns, wide ones orthonormal rows: ``W^T W`` or ``W W^T``
    is formed on the smaller side, so one step costs O(mn min(m, n)).
    """
    w = weight / torch.linalg.matrix_norm(weight, "fro").clamp(min=torch.finfo(weight.dtype).tiny)
    tall = w.shape[0] >= w.shape[1]
    for _ in range(iterations):
        w = 1.5 * w - 0.5 * (w @ (w.T @ w) if tall else (w @ w.T) @ w)
    return w


def aol_rescale(weight: Tensor) -> Tensor:
    """``V diag(d)`` with ``d_i = (sum_j |V^T V|_ij)^(-1/2)``: spectral norm <= 1 (Prach and Lampert, Thm. 1)."""
    gram = (weight.T @ weight).abs().sum(dim=1)
    return weight * torch.rsqrt(gram.clamp(min=torch.finfo(weight.dtype).tiny))[None, :]


def aol_conv_rescale(kernel: Tensor) -> Tensor:
    """AOL for a convolution: input channel c scaled by ``(sum_{c', s} |P[c, c', s]|)^(-1/2)``; differentiable.

    ``P[c, c', s] = sum_o sum_q K[o, c, q] K[o, c', q + s]`` is the kernel's autocorrelation, the
    row of K^T K that belongs to input channel c (one conv2d of the kernel with itself). The
    scaled kernel has operator norm <= 1 for zero padding, any stride (Prach and Lampert,
    *Almost-Orthogonal Layers*); ``lipspline.certificates.spectral.conv_schur_bound`` proves it.
    """
    kh, kw = kernel.shape[2], kernel.shape[3]
    channels_first = kernel.transpose(0, 1)  # (in, out, kh, kw): a batch of `in` images of `out` channels
    autocorrelation = nn.functional.conv2d(channels_first, channels_first, padding=(kh - 1, kw - 1))
    rows = autocorrelation.abs().sum(dim=(1, 2, 3))
    return kernel * torch.rsqrt(rows.clamp(min=torch.finfo(kernel.dtype).tiny))[None, :, None, None]


def operator_norm_upper(weight: Tensor) -> Tensor:
    """Differentiable l2 operator norm (dense, exact) or upper bound (conv kernel)."""
    if weight.dim() == 2:
        return torch.linalg.matrix_norm(weight, ord=2)
    taps = weight.flatten(2).permute(2, 0, 1)  # (kh*kw, out, in)
    return torch.linalg.matrix_norm(taps, ord=2).sum()


def rescaled_to_unit_norm(weight: Tensor) -> Tensor:
    """V / max(1, (1 + margin) * ||V||): the weight a 1-Lipschitz layer trains with (differentiable)."""
    norm = operator_norm_upper(weight) * (1 + ONE_LIPSCHITZ_MARGIN)
    return weight / torch.clamp(norm, min=1.0)


def proven_norm_bound(weight: Tensor) -> float:
    """Proven upper bound (float64 arithmetic, rounded up) of the operator-norm bound a layer promises.

    Dense: the proven spectral norm. Convolution: the sum over kernel taps of
    each tap's proven spectral norm (>= the norm of the dense matrix); an AOL
    convolution proves its kernel with the Schur test instead
    (:meth:`OneLipschitzConv2d.proven_norm`). The float64 copy of a
    float32/float16/bfloat16 weight is exact, so the bound is about the stored
    numbers themselves.
    """
    # Imported here, not at module level: importing any certificates module runs the package's
    # __init__, which reads this module (view.py reads layer weights) while it is still loading.
    from lipspline.certificates.spectral import conv_tap_sum_bound, proven_spectral_norm

    stored = weight.detach().to("cpu", torch.float64).numpy()
    if weight.dim() == 2:
        return float(proven_spectral_norm(stored))
    return float(conv_tap_sum_bound(stored))


def _unit_norm_rounded(
    v64: Tensor, dtype: torch.dtype, norm_bound: Callable[[Tensor], float] | None = None
) -> Tensor:
    """V rounded to ``dtype`` with a *proven* norm bound <= 1, as close to V / ||V|| as the proof allows.

    Dividing by a proven bound d >= ||V|| gives norm <= 1 in exact arithmetic,
    but the quotient is then rounded (to float64, then to the parameter's
    dtype), which can push the norm a few ulps above 1. So the bound is proven
    again on the rounded numbers, and d is enlarged until that proof succeeds.
    """
    if not bool(torch.isfinite(v64).all()):
        # The training path gives NaN here too (V / inf or inf / inf); NaN is
        # honest: the certificate reads it as an infinite norm.
        return torch.full_like(v64, math.nan, dtype=dtype)
    norm_bound = norm_bound or proven_norm_bound
    bound = norm_bound(v64)
    if bound <= 1.0:
        return v64.to(dtype)  # exact: v64 is a copy of a tensor of this dtype
    if not math.isfinite(bound):  # only float64 weights whose norm overflows float64
        return torch.full_like(v64, math.nan, dtype=dtype)
    divisor = bound
    step = torch.finfo(dtype).eps
    for _attempt in range(SERVED_MAX_ATTEMPTS):
        rounded = (v64 / divisor).to(dtype)
        excess = norm_bound(rounded.to(torch.float64))
        if excess <= 1.0:
            return rounded
        # Rounding pushed the proven norm to ``excess`` > 1: divide by that much
        # more, plus a margin of a few ulps of the dtype (doubling on every
        # retry) for the next rounding, which is as likely to go up again.
        divisor *= excess * (1.0 + step)
        step *= 2.0
    return torch.zeros_like(v64, dtype=dtype)  # unreachable in practice; norm 0 is still sound


@dataclass(frozen=True)
class _ServedCache:
    """One computed served weight and the parameter version it was computed from.

    In-place updates (optimizer steps, ``load_state_dict`` copies) bump the
    parameter's ``_version`` in ``key``; new storage (``.to()``, a ``.data``
    swap, a replaced parameter) changes ``data_ptr``/dtype/device. ``source``,
    a detached alias of the parameter as it was, keeps the old storage alive so
    that new storage can never reuse its address and pass for the cached one.
    ``weight_version`` guards against a caller editing the shared result.
    """

    source: Tensor
    key: tuple
    weight: Tensor
    weight_version: int


def _version_key(param: Tensor) -> tuple:
    return (param._version, param.data_ptr(), param.dtype, param.device, tuple(param.shape), param.stride())


class _ServedWeightMixin:
    """Caching of the served weight for the 1-Lipschitz layers (see the module docstring)."""

    weight: nn.Parameter
    training: bool

    def _parametrized(self, weight: Tensor) -> Tensor:
        """The training parametrisation before the norm rescaling (identity: the spectral kind)."""
        return weight

    def proven_norm(self, weight: Tensor) -> float:
        """The proven norm bound this layer's served weight is held to (``proven_norm_bound``)."""
        return proven_norm_bound(weight)

    def served_weight(self) -> Tensor:
        """The detached weight this layer applies outside training, with a proven norm bound <= 1.

        Computed in float64 on CPU once per weight version, returned in the
        parameter's dtype and on its device. Treat the result as read-only:
        it is shared by every later call until the weight changes.
        """
        param = self.weight
        key = _version_key(param)
        cache = self.__dict__.get("_served_cache")
        if cache is not None and cache.key == key and cache.weight._version == cache.weight_version:
            return cache.weight
        # Normal tensors even under inference_mode: an eval-mode forward with
        # grad enabled saves this weight for the input gradient, which an
        # inference tensor would refuse.
        with torch.inference_mode(False), torch.no_grad():
            v64 = param.detach().to("cpu", torch.float64)
            served = _unit_norm_rounded(self._parametrized(v64), param.dtype, self.proven_norm)
            weight = served.to(param.device).contiguous()
            source = param.detach()
        self.__dict__["_served_cache"] = _ServedCache(source, key, weight, weight._version)
        return weight

    def _clear_served_cache(self) -> None:
        self.__dict__.pop("_served_cache", None)

    def _uses_served_weight(self) -> bool:
        """True unless a gradient for the weight is being recorded in training mode.

        Validation during training (eval mode), the endpoint (no_grad) and the
        certificate must agree bit for bit, so only the training step itself
        takes the differentiable, approximate path.
        """
        return not (self.training and torch.is_grad_enabled() and self.weight.requires_grad)

    def _weight_for_forward(self) -> Tensor:
        if self._uses_served_weight():
            return self.served_weight()
        return self.effective_weight()

    def effective_weight(self) -> Tensor:
        """Differentiable rescaled weight (training penalties, ``SplineNetwork.weights``)."""
        return rescaled_to_unit_norm(self._parametrized(self.weight))

    # Invalidate on the two module-level operations that replace or rewrite the
    # weight wholesale, even though the version key already catches them: this
    # makes the invalidation independent of torch's version-counter details.
    def _apply(self, fn, *args, **kwargs):
        self._clear_served_cache()
        return super()._apply(fn, *args, **kwargs)  # type: ignore[misc]

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._clear_served_cache()
        super()._load_from_state_dict(*args, **kwargs)  # type: ignore[misc]

    def __getstate__(self) -> dict:
        # Pickles and deep copies get their own parameters; a copied cache would only be stale.
        state = super().__getstate__()  # type: ignore[misc]
        state = dict(state)
        state.pop("_served_cache", None)
        return state


class OneLipschitzLinear(_ServedWeightMixin, nn.Linear):
    """Dense layer whose weight is P(V) / max(1, ||P(V)||_2): its spectral norm never exceeds 1.

    P is the training parametrisation (module docstring): ``spectral`` (identity), ``bjorck``
    or ``aol``. The parameter keeps its name ``weight`` whatever P is, so saved models of every
    kind load the same way; the config names the kind.
    """

    def __init__(self, *args, parametrization: str = "spectral", **kwargs) -> None:
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"unknown 1-Lipschitz parametrization {parametrization!r}; one of {PARAMETRIZATIONS}")
        super().__init__(*args, **kwargs)
        self.parametrization = parametrization
        if parametrization != "spectral":
            # an orthogonal start: Björck then begins at a fixed point, AOL at an isometry
            with torch.no_grad():
                nn.init.orthogonal_(self.weight)

    def _parametrized(self, weight: Tensor) -> Tensor:
        if self.parametrization == "bjorck":
            return bjorck_orthonormalize(weight)
        if self.parametrization == "aol":
            return aol_rescale(weight)
        return weight

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, parametrization={self.parametrization}"

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self._weight_for_forward(), self.bias)


class OneLipschitzConv2d(_ServedWeightMixin, nn.Conv2d):
    """Convolution whose operator norm is proven <= 1, by one of two parametrisations.

    ``spectral`` (paper 003's rescaling, and every model saved before ``aol`` existed) divides the
    kernel by its tap-sum bound, sum over taps of each tap's spectral norm: sound but up to
    kh * kw times the true norm, so a 3 x 3 layer may pass on as little as a ninth of the signal.
    ``aol`` rescales the input channels by the kernel's autocorrelation (:func:`aol_conv_rescale`),
    norm <= 1 with most directions near 1; its served kernel is proven by the Schur test
    (``conv_schur_bound``). An orthogonal (Björck) convolution would need a Fourier-domain
    parametrisation this service does not have. Zero padding only: both proofs assume it.
    """

    def __init__(self, *args, parametrization: str = "spectral", **kwargs) -> None:
        if parametrization not in CONV_PARAMETRIZATIONS:
            raise ValueError(
                f"unknown 1-Lipschitz convolution parametrization {parametrization!r}; one of {CONV_PARAMETRIZATIONS}"
            )
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError("a 1-Lipschitz convolution needs zero padding (its norm proofs assume it)")
        self.parametrization = parametrization

    def _parametrized(self, weight: Tensor) -> Tensor:
        return aol_conv_rescale(weight) if self.parametrization == "aol" else weight

    def proven_norm(self, weight: Tensor) -> float:
        """AOL kernels: the smaller of the tap sum and the Schur test, which proves AOL's norm <= 1."""
        if self.parametrization != "aol":
            return super().proven_norm(weight)
        from lipspline.certificates.spectral import conv_norm_bound  # (see proven_norm_bound)

        return float(conv_norm_bound(weight.detach().to("cpu", torch.float64).numpy()))

    def effective_weight(self) -> Tensor:
        if self.parametrization == "aol":
            # norm <= 1 by construction; dividing by the tap sum (operator_norm_upper) would undo AOL
            return self._parametrized(self.weight)
        return super().effective_weight()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, parametrization={self.parametrization}"

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self._weight_for_forward(), self.bias)


def effective_weight(layer: nn.Module) -> Tensor:
    """The weight a layer applies while training (after any 1-Lipschitz rescaling); differentiable."""
    if hasattr(layer, "effective_weight"):
        return layer.effective_weight()
    return layer.weight


def served_weight(layer: nn.Module) -> Tensor:
    """The detached weight a layer applies outside training: what the endpoint runs and certificates read.

    For the 1-Lipschitz layers this is the cached, proven-norm weight of
    :meth:`_ServedWeightMixin.served_weight`; plain layers apply their stored
    weight as it is.
    """
    method = getattr(layer, "served_weight", None)
    if method is not None:
        return method()
    return layer.weight.detach()
