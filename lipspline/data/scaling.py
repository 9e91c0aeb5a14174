"""Standardisation kept with a model, so the served model works in the client's raw units.

The scaling a model is trained with changes the Lipschitz constant of the map it serves;
:func:`fit_scaling` documents by how much, and how ``isotropic`` scaling avoids the change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lipspline.data.dataset import Dataset
from lipspline.data.errors import DatasetError


def _as_vector(values: Any, key: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"Scaling field {key!r} must be a list of numbers.", problem="bad_scaling") from exc
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise DatasetError(f"Scaling field {key!r} must be a flat list of finite numbers.", problem="bad_scaling")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Scaling:
    """Affine maps kept with a model so it works on raw client inputs.

    ``z = (x - input_mean) / input_scale``; for regression the network predicts standardized
    targets and ``y_raw = y_std * target_scale + target_mean``. Storing the maps (rather than
    asking clients to standardize) keeps the served model's contract in raw units. Note the
    model's Lipschitz bound is in standardized units; in raw units it is multiplied by
    ``target_scale / min(input_scale)``.
    """

    input_mean: np.ndarray
    input_scale: np.ndarray
    target_mean: float = 0.0
    target_scale: float = 1.0

    def __post_init__(self) -> None:
        mean = _as_vector(self.input_mean, "input_mean")
        scale = _as_vector(self.input_scale, "input_scale")
        if mean.shape != scale.shape:
            raise DatasetError("input_mean and input_scale must have the same length.", problem="bad_scaling")
        if np.any(scale <= 0):
            raise DatasetError("input_scale must be positive.", problem="bad_scaling")
        if not (math.isfinite(self.target_mean) and math.isfinite(self.target_scale) and self.target_scale > 0):
            raise DatasetError("target_mean must be finite and target_scale positive.", problem="bad_scaling")
        object.__setattr__(self, "input_mean", mean)
        object.__setattr__(self, "input_scale", scale)
        object.__setattr__(self, "target_mean", float(self.target_mean))
        object.__setattr__(self, "target_scale", float(self.target_scale))

    @property
    def n_features(self) -> int:
        """Input dimension these maps were fitted for."""
        return int(self.input_mean.shape[0])

    def transform_inputs(self, X: np.ndarray) -> np.ndarray:
        """Raw inputs -> standardized network inputs."""
        return (np.asarray(X, dtype=np.float64) - self.input_mean) / self.input_scale

    def transform_targets(self, y: np.ndarray) -> np.ndarray:
        """Raw regression targets -> standardized training targets."""
        return (np.asarray(y, dtype=np.float64) - self.target_mean) / self.target_scale

    def inverse_targets(self, y_std: np.ndarray) -> np.ndarray:
        """Standardized network outputs -> raw regression predictions."""
        return np.asarray(y_std, dtype=np.float64) * self.target_scale + self.target_mean

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict; floats are written with full precision by ``json``."""
        return {
            "input_mean": [float(v) for v in self.input_mean],
            "input_scale": [float(v) for v in self.input_scale],
            "target_mean": self.target_mean,
            "target_scale": self.target_scale,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Scaling:
        """Inverse of :meth:`to_json`; validates, since the dict may come from disk or a client."""
        if not isinstance(d, dict):
            raise DatasetError("Scaling must be a JSON object.", problem="bad_scaling")
        try:
            return cls(
                input_mean=d["input_mean"],
                input_scale=d["input_scale"],
                target_mean=float(d.get("target_mean", 0.0)),
                target_scale=float(d.get("target_scale", 1.0)),
            )
        except DatasetError:
            raise
        except KeyError as exc:
            raise DatasetError(f"Scaling is missing field {exc.args[0]!r}.", problem="bad_scaling") from exc
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"Scaling has a malformed field: {exc}.", problem="bad_scaling") from exc


def _safe_scale(std: np.ndarray, mean: np.ndarray) -> np.ndarray:
    # A column that is constant up to rounding noise carries no information; dividing by its
    # tiny std would blow rounding noise up to O(1) values, so it gets scale 1.
    tiny = 1e-12 * np.maximum(1.0, np.abs(mean))
    return np.where(std > tiny, std, 1.0)


#: Isotropic scaling of a classifier: below this largest feature std, the inputs are scaled up until
#: it is reached and the logits down by the same factor (see :func:`fit_scaling`). Measured: two moons
#: in units a thousand times smaller trained to 54 % accuracy; the rule was chosen on tasks whose
#: largest std is 0.17-0.41, which this floor leaves as they were.
MIN_ISOTROPIC_CLASSIFIER_STD = 0.125

#: rows read at a time when the moments are taken over a subset of the rows (``fit_scaling(rows=...)``)
MOMENT_CHUNK_ROWS = 65536


def fit_scaling(dataset: Dataset, *, isotropic: bool = False, rows: np.ndarray | None = None) -> Scaling:
    """Per-feature mean/std standardization (and target standardization for regression).

    ``rows``: the moments of those rows only (a training split), bit for bit what the same
    call on ``dataset`` cut to them gives, but without that float64 copy (:func:`row_moments`).

    ``isotropic`` (used by ``one_lipschitz`` training) keeps the served map exactly as
    Lipschitz as the network inside it. Per-feature scales would multiply the constant
    by ``target_scale / min(input_scale)``: a 1-Lipschitz network could serve a map far
    above 1, or (when that ratio is small) be unable to fit a slope-1 target at all.
    So every feature and the regression target share one scale ``s`` (the largest
    feature std), which cancels. A classifier's inputs use ``max(s, 1)``, which can only shrink
    the constant, unless ``s`` is below ``MIN_ISOTROPIC_CLASSIFIER_STD`` (m): then inputs and
    logits share the scale ``s / m``, which cancels like a regression target's, and the network
    sees features of largest std m whatever the data's units. Without that, a 1-Lipschitz
    network on tiny inputs can only move its logits by as little as the inputs move, and its
    training (biases moving by lr-sized steps) drowned that signal. Centring never changes it.
    """
    target = None
    if dataset.task == "regression":
        y = (dataset.y if rows is None else dataset.y[rows]).astype(np.float64)
        target = (float(y.mean()), float(y.std()))
    X = dataset.X
    if rows is None:
        mean, std = X.mean(axis=0), X.std(axis=0)
    elif X.ndim != 2 or X.shape[1] < 2 or not X.flags.c_contiguous:
        # one column (numpy sums it pairwise, which a chunked sum would not reproduce; it is small
        # anyway) or rows not in C order (row_moments' bit-for-bit argument assumes C order)
        mean, std = X[rows].mean(axis=0), X[rows].std(axis=0)
    else:
        mean, std = row_moments(X, rows)
    return scaling_from_moments(mean, std, dataset.task, target, isotropic=isotropic)


def row_moments(X: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and population std of ``X[index]`` (C-ordered, two or more columns) by chunks.

    Bit for bit what ``X[index].mean(axis=0)`` and ``.std(axis=0)`` give (numpy adds the rows of
    such an array one after another, and so does this: each chunk's reduction starts from the
    running sum), without their two float64 copies of the whole split.
    """
    count = int(index.size)
    total: np.ndarray | None = None
    for begin in range(0, count, MOMENT_CHUNK_ROWS):
        total = _running_sum(total, X[index[begin:begin + MOMENT_CHUNK_ROWS]])
    assert total is not None
    mean = total / count
    squares: np.ndarray | None = None
    for begin in range(0, count, MOMENT_CHUNK_ROWS):
        deviation = X[index[begin:begin + MOMENT_CHUNK_ROWS]] - mean
        np.multiply(deviation, deviation, out=deviation)
        squares = _running_sum(squares, deviation)
    assert squares is not None
    return mean, np.sqrt(squares / count)


def _running_sum(total: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    """``total + rows[0] + rows[1] + ...`` in that order (numpy's axis-0 order for a C-ordered block)."""
    if total is None:
        return np.add.reduce(rows, axis=0)
    return np.add.reduce(np.concatenate([total[None], rows]), axis=0)


def scaling_from_moments(
    mean: np.ndarray, std: np.ndarray, task: str, target: tuple[float, float] | None, *, isotropic: bool = False
) -> Scaling:
    """:func:`fit_scaling` from the data's moments alone (per-feature mean and population std,
    the target's mean and std for regression): what a streamed dataset's one statistics pass
    records, so data too large for memory is standardised by the same rule."""
    mean = np.asarray(mean, dtype=np.float64)
    scale = _safe_scale(np.asarray(std, dtype=np.float64), mean)
    if isotropic:
        common = float(scale.max()) if scale.size else 1.0
        if task == "regression":
            assert target is not None
            return Scaling(input_mean=mean, input_scale=np.full_like(scale, common), target_mean=target[0],
                           target_scale=common)
        if common < MIN_ISOTROPIC_CLASSIFIER_STD:
            # inputs and logits scaled by one factor, which cancels in the served map's constant
            common /= MIN_ISOTROPIC_CLASSIFIER_STD
            return Scaling(input_mean=mean, input_scale=np.full_like(scale, common), target_scale=common)
        scale = np.full_like(scale, max(common, 1.0))
    if task == "regression":
        assert target is not None
        t_mean = target[0]
        t_scale = float(_safe_scale(np.asarray([target[1]]), np.asarray([t_mean]))[0])
    else:
        t_mean, t_scale = 0.0, 1.0
    return Scaling(input_mean=mean, input_scale=scale, target_mean=t_mean, target_scale=t_scale)
