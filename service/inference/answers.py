"""The inference answer: what the served model says about some rows, computed once for every protocol.

``/v1/models/{ref}/predict`` (JSON), ``/v1/models/{ref}/predict/npy`` (binary) and
``/v2/models/{name}/infer`` (Open Inference Protocol) differ only in how they read their rows
and write their answer. Everything between is :func:`answer`: the served map on the rows
(float64 from the raw inputs, with its proven rounding bound per row), the refusal of rows
whose outputs or bound overflow, the 409 of a model without a finite certificate, the labels
(``lipspline.nn.label_rule.label_of``), the certified radii (0 where none is proven), the output bounds
for an ``epsilon``, the optional local proof of the radius, and the float32 variant of all of
these. The routes decode their body, call :func:`answer`, and encode the :class:`Answer`.

Where a 1-row JSON predict spends its time (issue 29, item 4). ``python bench/bench_service.py
--new-connection`` (2-core development machine, the blocking-socket client and both servers on
it) measured 1.29 -> 0.97-0.99 ms p50 with a new connection per request against 0.83-0.89 ms for
``bench/baseline_app.py`` (ratio 0.69 -> 0.84-0.86), and 1.05 -> 0.79-0.80 ms with keep-alive
(0.69 -> 0.91-0.92). Per stage, microseconds per request: the measured rows are medians of
``perf_counter`` timings in-process (5,000 calls, the bench's circle model); the rows marked ~ are
differences of a whole in-process request (an ASGI call without a socket: 790 us before, 690 after
the routing change, 590 after the dependency change; the baseline app 415) and of the HTTP p50s;
all noisy to +-30% on this shared machine:

=====================================================================  =========  ===========
stage                                                                  before     after
=====================================================================  =========  ===========
~ TCP accept, HTTP parse, response write (uvicorn + httptools; both    ~400       ~400
servers pay it: the baseline's new-connection p50 minus its app)
~ FastAPI dependency solving: 12 dependants per predict (query check,  ~160       ~60
two key checks, reference, cache, placement, settings) -> 4 (query
check, ``PredictTarget``: key, scope, rate bucket; the bearer scheme)
~ routing: predict matched after every health/metrics/dataset/job/     ~100       ~15
webhook route -> inference routers first (``service/app.py``)
~ pure ASGI middleware: trailing slash, request id + metrics (one       ~25        ~25
middleware since), body size
access line (``RequestTelemetry``: format + write)                     19         19
body -> float64 rows (``service/http/predict_body.py``)                     6          6
model cache lookup (id: no query; a name: one registry read, thread)   1          1
served map, 1 row (``ServedMap.evaluate``, C kernel)                   47         47
finite check of outputs and rounding bound                             11         3
labels (2), radius (``served_radius`` 30), zeroing (3)                 35         35
answer dataclass (5), orjson encoding (3), response headers            ~10        ~10
=====================================================================  =========  ===========

What remains beyond the baseline is the model's own arithmetic (served map and radius, ~80 us:
``lipspline/certificates``), the access line the service writes per request, and FastAPI's
per-dependant bookkeeping for the query check and the key.

Since 2026-12-07 the served map takes its arrays as buffer objects (``ndarray.ctypes.data`` cost
0.9 us per array, 13 per evaluation) and ``served_radius`` ends with one ``fmax``: one row in a loop,
``ServedMap.evaluate`` 27 -> 14 us and ``served_radius`` 17 -> 10 us on a Xeon model 167. The HTTP
ratios before and after are in docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from lipspline.certificates import ServedOutputs, local_served_radius, served_output_bound, served_radius
from lipspline.nn.label_rule import label_of
from lipspline.nn.model import classes_of
from service.http.problems import ProblemError, invalid_field
from service.inference.model_cache import LoadedModel

#: how much heavier a row is when its radius also gets a local proof (for the compute placement)
LOCAL_BALL_WORK = 50


def v1_overflow(row: int, dtype: str) -> ProblemError:
    """The ``/v1`` refusal of a row whose outputs or rounding bound overflow (float64 only on ``/v1``)."""
    return invalid_field(
        f"inputs.{row}",
        "the values are too large: the model's outputs or their proven rounding bound overflow float64",
    )


@dataclass(frozen=True)
class Answer:
    """The served model's answer for some rows, in numpy arrays (one entry per row unless said).

    ``outputs`` are float64, or float32 values when ``output_dtype`` asked for them; every bound
    below covers what ``outputs`` holds. Classifier-only members are None for regressors,
    ``output_bounds`` is None without ``epsilon``, ``radius_source`` without a local ball.
    """

    task: str
    classes: list | None
    outputs: np.ndarray
    rounding: np.ndarray
    lipschitz_bound: float
    epsilon: float | None
    #: class index per row (``label_of``), into ``classes``
    labels: np.ndarray | None
    #: the certified l2 radius of each row's label, rounding included; 0 where none is proven
    certified_radius: np.ndarray | None
    #: how far each row's outputs can move within ``epsilon`` (may be inf where that bound overflows)
    output_bounds: np.ndarray | None
    #: per row, "global" or "local": which bound gave the radius (with a local ball only)
    radius_source: list[str] | None = None

    @property
    def classifier(self) -> bool:
        return self.task == "classification"

    def predictions(self) -> list:
        """Class labels as in the dataset (classifiers) or the outputs' values (regressors), as JSON values."""
        if self.labels is None:
            return self.outputs.squeeze(-1).tolist()
        assert self.classes is not None
        return classes_of(self.labels, self.classes)

    @property
    def finite_output_bounds(self) -> np.ndarray | None:
        """``output_bounds`` when every one is finite, else None (a bound that overflows states nothing)."""
        if self.output_bounds is None or not np.isfinite(self.output_bounds).all():
            return None
        return self.output_bounds


def certified_bound(loaded: LoadedModel) -> float:
    """The model's certified Lipschitz bound, or the 409 ``no-certificate`` problem."""
    if loaded.certified is None:
        raise ProblemError(409, "Conflict", f"model {loaded.id!r} has no finite certificate", kind="no-certificate")
    return loaded.certified


def answer(
    loaded: LoadedModel,
    x: np.ndarray,
    epsilon: float | None = None,
    *,
    output_dtype: DTypeLike = np.float64,
    local_ball: float | None = None,
    on_overflow: Callable[[int, str], Exception] = v1_overflow,
) -> Answer:
    """The served map on the rows ``x`` (float64, checked by the caller) and what the certificate says of it.

    ``output_dtype``: float64, or float32 (outputs cast, bounds widened to cover the cast at every
    point the radius and output bound speak about: ``ServedOutputs.as_float32``). ``local_ball``:
    rows whose global radius is below it also get a radius proven by a local bound in B(x, ball).
    ``on_overflow(row, dtype)``: the error for the first row whose outputs or rounding bound are not
    finite in float64 (``dtype`` "float64"), or whose outputs overflow float32 (``"float32"``).
    Raises the 409 ``no-certificate`` problem before any work for a model without a certificate.
    """
    lipschitz = certified_bound(loaded)
    narrow = np.dtype(output_dtype) == np.float32
    if not narrow and np.dtype(output_dtype) != np.float64:
        raise ValueError(f"output_dtype must be float64 or float32, not {output_dtype!r}")
    served = served_rows(loaded, x, on_overflow=on_overflow)
    if narrow:
        served = served.as_float32(lipschitz)
        finite = np.isfinite(served.outputs).all(axis=1)
        if not finite.all():
            raise on_overflow(int(np.flatnonzero(~finite)[0]), "float32")
    model = loaded.model
    labels = radius = sources = None
    if model.task == "classification":
        labels = label_of(served.outputs)
        radius = served_radius(served, lipschitz)
        radius = np.where(np.isfinite(radius), radius, 0.0)
        if local_ball is not None:
            radius, sources = _best_radius(loaded, x, served, lipschitz, radius, local_ball)
    bounds = None if epsilon is None else served_output_bound(served, lipschitz, epsilon)
    return Answer(
        task=model.task,
        classes=model.classes,
        outputs=served.outputs.astype(np.float32) if narrow else served.outputs,
        rounding=served.rounding,
        lipschitz_bound=lipschitz,
        epsilon=epsilon,
        labels=labels,
        certified_radius=radius,
        output_bounds=bounds,
        radius_source=sources,
    )


def served_rows(
    loaded: LoadedModel, x: np.ndarray, *, on_overflow: Callable[[int, str], Exception] = v1_overflow
) -> ServedOutputs:
    """The served map on the rows, refusing (``on_overflow(row, "float64")``) the first row whose outputs or
    rounding bound overflow float64. What :func:`answer` starts from; ``certify`` uses it on its own."""
    served = loaded.served_map.evaluate(x)
    if np.isfinite(served.rounding).all() and np.isfinite(served.outputs).all():
        return served  # the common case, in two whole-array reductions
    finite = np.isfinite(served.outputs).all(axis=1) & np.isfinite(served.rounding)
    raise on_overflow(int(np.flatnonzero(~finite)[0]), "float64")


def work_of(loaded: LoadedModel, rows: int, local_ball: float | None = None) -> int:
    """The work units of an answer (rows x parameters, heavier with a local proof): ``ComputePlacement.run``."""
    work = rows * loaded.work_per_row
    return work * LOCAL_BALL_WORK if local_ball is not None else work


def _best_radius(
    loaded: LoadedModel, x: np.ndarray, served: ServedOutputs, certified: float, radius: np.ndarray, ball: float
) -> tuple[np.ndarray, list[str]]:
    """Per row, the larger of the global radius and the local one proven inside B(x, ball).

    Only rows the global bound leaves below ``ball`` are worth a local proof (``local_served_radius``
    caps it by the ball and by the stored global certificate).
    """
    todo = np.flatnonzero(radius < ball)
    sources = ["global"] * len(radius)
    if todo.size == 0:
        return radius, sources
    with loaded.lock:  # the analysis caches inside the certificate module are per network
        local_radius = local_served_radius(loaded.model.network, x[todo], served.rows(todo), certified, ball)
    better = local_radius > radius[todo]
    radius = radius.copy()
    radius[todo[better]] = local_radius[better]
    for i in todo[better]:
        sources[int(i)] = "local"
    return radius, sources
