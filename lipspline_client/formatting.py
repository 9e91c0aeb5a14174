"""Human text for the CLI's tables and lines: every value readable, never a Python repr.

``text`` turns any value of the API's JSON (numbers, strings, lists, nested mappings, pydantic
models, timestamps, nulls) into one readable cell: ``loss 0.31, accuracy 0.9`` instead of
``{'loss': 0.31, 'accuracy': 0.9}``, ``-`` instead of ``None``. ``field_rows`` flattens a record
into (field, value) rows for the ``show`` commands, nested members as dotted names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel

#: what a missing value (null, NaN) reads as
MISSING = "-"


def plain(value: Any) -> Any:
    """A pydantic model as its JSON-mode dict, an Enum as its value; anything else unchanged."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Enum):
        return value.value
    return value


def number(value: float | int) -> str:
    """Integers as they are, floats to 4 significant digits (NaN and None: ``-``)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if value is None or math.isnan(value):
        return MISSING
    return f"{value:.4g}"


def timestamp(value: datetime | date | str | None, *, short: bool = False) -> str:
    """``2026-12-06 06:15:12 UTC`` (seconds, the zone named); ``short``: ``2026-12-06 06:15`` (a table's
    column: minutes, the zone left out, every time the API gives being UTC). A string is parsed first."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime) and short:
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, datetime):
        zone = value.tzname()
        shown = value.replace(microsecond=0).replace(tzinfo=None).isoformat(sep=" ")
        return f"{shown} {zone}" if zone else shown
    return value.isoformat()


def text(value: Any) -> str:
    """One readable line for any value; nested mappings as ``key value, key value``, lists joined by commas."""
    value = plain(value)
    if value is None:
        return MISSING
    if isinstance(value, bool | int | float):
        return number(value)
    if isinstance(value, datetime | date):
        return timestamp(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if not value:
            return MISSING
        return ", ".join(f"{key} {_inner(item)}" for key, item in value.items())
    if isinstance(value, Iterable):
        items = list(value)
        return ", ".join(_inner(item) for item in items) if items else MISSING
    return str(value)


def _inner(value: Any) -> str:
    """A value inside a mapping or a list: nested groups in parentheses so the reading stays unambiguous."""
    value = plain(value)
    shown = text(value)
    if isinstance(value, Mapping | list | tuple) and value and ("," in shown or " " in shown):
        return f"({shown})"
    return shown


def field_rows(record: Any, *, exclude: Iterable[str] = (), prefix: str = "") -> list[tuple[str, str]]:
    """(field, value) rows of a record: nested mappings flattened to dotted names (``progress.losses.total``),
    lists of scalars joined, lists of records one row each (``sparsity.layers.0``)."""
    mapping = plain(record)
    skipped = set(exclude)
    rows: list[tuple[str, str]] = []
    for key, value in mapping.items():
        if key in skipped:
            continue
        name = f"{prefix}{key}"
        value = plain(value)
        if (key.endswith("_at") or key == "at") and isinstance(value, str):
            rows.append((name, timestamp(value)))
        elif isinstance(value, Mapping) and value:
            rows += field_rows(value, prefix=f"{name}.")
        elif isinstance(value, list) and value and all(isinstance(plain(v), Mapping) for v in value):
            for index, item in enumerate(value):
                rows.append((f"{name}.{index}", text(item)))
        else:
            rows.append((name, text(value)))
    return rows


def rule_text(rule: Any) -> str:
    """A sweep's selection rule in words: ``max_accuracy with certified Lipschitz <= 20``, ``knee``..."""
    rule = plain(rule) or {}
    name = rule.get("rule", "?")
    if name == "max_accuracy":
        bound = rule.get("max_lipschitz")
        return "max_accuracy" + (f" with certified Lipschitz <= {number(bound)}" if bound is not None else "")
    if name == "max_certified_accuracy":
        return f"max_certified_accuracy at l2 radius {number(rule.get('radius'))}"
    if name == "knee":
        return "knee of the accuracy vs log-bound front"
    others = {k: v for k, v in rule.items() if k != "rule"}
    return f"{name} ({text(others)})" if others else str(name)


def tags_text(tags: Iterable[str] | None) -> str:
    """Tags as ``a, b`` (``-`` when there are none)."""
    return text(list(tags or []))
