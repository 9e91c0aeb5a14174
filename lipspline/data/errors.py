"""The one error type for bad client data, and the helpers that say where the data is bad.

Every check in this package reports through :class:`DatasetError`, so an API layer maps any
data problem to a response from its structured fields alone. The helpers here exist so that
every parser names rows, columns and non-finite values in the same words.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class DatasetError(ValueError):
    """Bad data supplied by a client.

    Subclasses :class:`ValueError` so generic callers still treat it as bad input, while the
    API layer can read the structured fields instead of parsing the message:

    * ``problem`` -- short machine code, e.g. ``'nan'``, ``'inf'``, ``'ragged_row'``,
      ``'non_numeric'``, ``'missing_value'``, ``'empty'``, ``'no_features'``, ``'single_class'``,
      ``'missing_target'``, ``'duplicate_column'``, ``'bad_header'``, ``'bad_encoding'``,
      ``'bad_csv'``, ``'bad_npz'``, ``'bad_parquet'``, ``'bad_shape'``, ``'length_mismatch'``,
      ``'too_large'``, ``'bad_task'``, ``'unsupported_format'``, ``'bad_scaling'``.
    * ``row`` -- 0-based index of the offending data row (header excluded), or ``None``.
    * ``column`` -- name (or index, when no name exists) of the offending column, or ``None``.

    ``str(err)`` is a human sentence that already names the row/column.
    """

    def __init__(self, message: str, *, problem: str, row: int | None = None, column: str | int | None = None):
        super().__init__(message)
        self.problem = problem
        self.row = row
        self.column = column

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, so every API endpoint reports data errors the same way."""
        return {"problem": self.problem, "message": str(self), "row": self.row, "column": self.column}


def fmt_column(column: str | int) -> str:
    """Names are quoted and indices are not, so a column called ``"3"`` and column 3 read differently."""
    return f"column {column!r}" if isinstance(column, str) else f"column {column}"


def first_nonfinite(values: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN/Inf in row-major order: the cell a client would find first."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.argwhere(bad)[0])


def nonfinite_problem(value: float) -> tuple[str, str]:
    """NaN and Inf get separate codes because they usually have different causes upstream."""
    return ("nan", "is NaN") if math.isnan(value) else ("inf", "is infinite")
