"""The search space: per TrainingConfig path, a list of values or a range.

Why validate here: a sweep is many jobs; a typo in a path or a value outside a
field's range must be refused before any of them is created, with an error that
names the path. A path is checked against the pydantic model of TrainingConfig
(public names: ``objective.lambda``), and every value by validating the base config's
section that holds the field, with that value set, so the field's own constraints
(``knots >= 3``, ``lambda >= 0``) and its section's rules (even widths for GroupSort)
apply exactly as they do to a single job. A range is checked at both ends; list-valued
fields (``architecture.hidden``) take lists of values only.

Why only the section: validating the whole config per value cost ~30-70 µs (a dump and a
deep copy of the base, every section validated), which made a long list of values a CPU
sink for the API; the section alone costs ~3 µs and refuses exactly the same values (the
other sections are the base's, already valid, and the config-level rule only fills
defaults). Every planned trial is still validated whole (``apply``) before it runs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from api_schemas import TrainingConfig


class SpaceError(ValueError):
    """A space (or a value in it) that cannot be swept; ``field`` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Choice:
    """A finite list of values."""

    path: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    """Numbers in ``[low, high]``, uniform in the value (linear) or in its logarithm (log).

    ``count`` points make it griddable (evenly spaced on its scale); ``integer`` rounds.
    """

    path: str
    low: float
    high: float
    scale: str = "linear"
    count: int | None = None
    integer: bool = False

    def grid(self) -> list[Any]:
        if self.count is None:
            raise SpaceError(f"space.{self.path}", "a range needs a count to be part of a grid")
        if self.count == 1:
            points = np.array([self.low])
        elif self.scale == "log":
            points = np.geomspace(self.low, self.high, self.count)
        else:
            points = np.linspace(self.low, self.high, self.count)
        return self._cast(points)

    def sample(self, rng: np.random.Generator) -> Any:
        if self.scale == "log":
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return self._cast(np.array([value]))[0]

    def _cast(self, points: np.ndarray) -> list[Any]:
        if self.integer:
            return list(dict.fromkeys(int(round(float(p))) for p in points))  # rounding may merge points
        return [float(p) for p in points]


Dimension = Choice | Range


def _field(model: type[BaseModel], name: str) -> tuple[str, Any] | None:
    """The field of ``model`` whose name or alias is ``name``: (attribute name, FieldInfo)."""
    for attribute, info in model.model_fields.items():
        if name in (attribute, info.alias):
            return attribute, info
    return None


def leaf_annotation(path: str) -> Any:
    """The annotation of the config field at ``path``; SpaceError if it is not a leaf field."""
    model: type[BaseModel] = TrainingConfig
    parts = path.split(".")
    for depth, name in enumerate(parts):
        found = _field(model, name)
        if found is None:
            known = ", ".join(info.alias or attr for attr, info in model.model_fields.items())
            where = ".".join(parts[:depth]) or "the config"
            raise SpaceError(f"space.{path}", f"not a config field ({name!r} is not in {where}; known: {known})")
        annotation = found[1].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if depth == len(parts) - 1:
                raise SpaceError(f"space.{path}", "names a section of the config, not a field")
            model = annotation
            continue
        if depth != len(parts) - 1:
            raise SpaceError(f"space.{path}", f"{'.'.join(parts[: depth + 1])} is a field, not a section")
        return annotation
    raise SpaceError(f"space.{path}", "empty path")  # pragma: no cover - split never yields no part


#: the longest representation of a refused value an error message quotes
_SHOWN_CHARS = 80


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def value_check(base: TrainingConfig, path: str) -> Callable[[Any], None]:
    """A check of one value at ``path`` (a leaf, see :func:`leaf_annotation`): SpaceError naming the path.

    It validates the model that holds the field, with the base's other fields of that model and
    the value set, i.e. what :func:`apply` would validate of it, for a fraction of the cost.
    """
    parts = path.split(".")
    model: type[BaseModel] = TrainingConfig
    node: dict[str, Any] = base.to_json()
    for name in parts[:-1]:
        attribute, info = _field(model, name)  # type: ignore[misc]  # leaf_annotation checked the path
        model, node = info.annotation, node[info.alias or attribute]
    key = parts[-1]  # as the path names it, as ``apply`` sets it (the attribute name beside the alias is refused)

    def check(value: Any) -> None:
        try:
            model.model_validate({**node, key: value})
        except ValidationError as error:
            raise SpaceError(f"space.{path}", f"{error.errors()[0]['msg']} (value {_shown(value)})") from None

    return check


def with_values(base: dict, params: dict[str, Any]) -> dict:
    """A copy of the JSON config ``base`` with each dotted path set to its value."""
    config = _deep_copy(base)
    for path, value in params.items():
        node = config
        parts = path.split(".")
        for name in parts[:-1]:
            node = node.setdefault(name, {})
        node[parts[-1]] = value
    return config


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def apply(base: TrainingConfig, params: dict[str, Any]) -> TrainingConfig:
    """The trial's config: ``base`` with ``params`` set; SpaceError naming the path whose value is refused.

    Built from the fields ``base`` was given (``explicit_json``), so the defaults a trial's value
    implies (a ``robustness.target_radius``'s architecture, objective and loop) fill what the base
    did not choose; the result is spelled out like every job's config. Paths are the public names
    only (``objective.lambda``, never the attribute ``lambda_``), as ``value_check`` has them.
    """
    try:
        return TrainingConfig.model_validate(with_values(base.explicit_json(), params), by_alias=True, by_name=False)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        culprit = next((p for p in params if location.startswith(p) or p.startswith(location)), None)
        field = f"space.{culprit}" if culprit else f"base_config.{location}"
        message = f"{first['msg']} (value {params.get(culprit)!r})" if culprit else first["msg"]
        raise SpaceError(field, message) from None


def _is_integer_field(annotation: Any) -> bool:
    return annotation is int


def _is_number_field(annotation: Any) -> bool:
    return annotation in (int, float) or annotation == (float | None) or annotation == (int | None)


def parse_space(raw: dict[str, Any], base: TrainingConfig) -> list[Dimension]:
    """Check every path and value against TrainingConfig and ``base``; the dimensions, in the given order."""
    if not raw:
        raise SpaceError("space", "the space is empty: give at least one path with values or a range")
    dimensions: list[Dimension] = []
    for path, spec in raw.items():
        annotation = leaf_annotation(path)
        field = f"space.{path}"
        if isinstance(spec, list):
            if not spec:
                raise SpaceError(field, "an empty list of values")
            check = value_check(base, path)
            for value in spec:
                check(value)
            dimensions.append(Choice(path, tuple(spec)))
            continue
        if not isinstance(spec, dict):
            raise SpaceError(field, "give a list of values or a range {low, high, scale, count}")
        unknown = set(spec) - {"low", "high", "scale", "count"}
        if unknown:
            raise SpaceError(field, f"unknown range keys {sorted(unknown)} (low, high, scale, count)")
        if not _is_number_field(annotation):
            raise SpaceError(field, "a range needs a numeric field; give a list of values instead")
        low, high = spec.get("low"), spec.get("high")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
            raise SpaceError(field, "a range needs finite numbers low and high")
        if low > high:
            raise SpaceError(field, f"low ({low}) is above high ({high})")
        scale = spec.get("scale", "linear")
        if scale not in ("linear", "log"):
            raise SpaceError(field, f"scale must be 'linear' or 'log', not {scale!r}")
        if scale == "log" and low <= 0:
            raise SpaceError(field, "a log range needs low > 0")
        count = spec.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000):
            raise SpaceError(field, "count must be a whole number from 1 to 1000")
        integer = _is_integer_field(annotation)
        check = value_check(base, path)
        for end in (low, high):
            check(int(round(end)) if integer else float(end))
        dimensions.append(Range(path, float(low), float(high), scale, count, integer))
    return dimensions


def grid(dimensions: list[Dimension]) -> list[dict[str, Any]]:
    """Every combination (the first path varies slowest); SpaceError if a range has no count."""
    axes = [list(d.values) if isinstance(d, Choice) else d.grid() for d in dimensions]
    return [dict(zip([d.path for d in dimensions], combo, strict=True)) for combo in itertools.product(*axes)]


def grid_size(dimensions: list[Dimension]) -> int | None:
    """The number of grid points; None when a range has no count (the grid is unbounded)."""
    size = 1
    for d in dimensions:
        if isinstance(d, Range) and d.count is None:
            return None
        size *= len(d.values) if isinstance(d, Choice) else len(d.grid())
    return size


def sample(dimensions: list[Dimension], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` points drawn independently (lists uniformly, ranges on their scale); the same for the same seed."""
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        point = {}
        for d in dimensions:
            if isinstance(d, Choice):
                point[d.path] = _plain(d.values[int(rng.integers(len(d.values)))])
            else:
                point[d.path] = d.sample(rng)
        points.append(point)
    return points


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
