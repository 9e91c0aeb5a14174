"""A small table type that renders both as Markdown (docs/results.md) and as aligned text (the terminal)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers with ``digits`` significant figures; None/NaN as an em dash, so gaps are visible."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞"
        return f"{value:.{digits}g}"
    return str(value)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"table {self.title!r} has {len(self.columns)} columns, got a row of {len(cells)}")
        self.rows.append(list(cells))

    def column(self, name: str) -> list[Any]:
        """The raw (unformatted) values of one column, for tests and invariant checks."""
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |"]
        lines.append("|" + "|".join(" --- " for _ in self.columns) + "|")
        lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in self.rows]
        lines += [""] + [f"- {note}" for note in self.notes] if self.notes else []
        return "\n".join(lines)

    def to_text(self) -> str:
        cells = [self.columns] + [[fmt(c) for c in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        out = [self.title, "  ".join(h.ljust(w) for h, w in zip(self.columns, widths, strict=True))]
        out.append("  ".join("-" * w for w in widths))
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
        out += [f"  * {note}" for note in self.notes]
        return "\n".join(out)
