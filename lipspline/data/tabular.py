"""Tabular uploads: CSV and Parquet, a header of named columns with one of them the target.

Both formats open the same way once their column names are known: find the target column
exactly once, check the remaining names, refuse a table without rows or without features.
That opening lives in :func:`_split_columns`; :class:`_TableFormat` holds the few places
where the two formats word (or order) those checks differently, so the error messages
clients already rely on stay exactly as they were.

pyarrow is imported inside :func:`parse_parquet` only, so importing this module stays cheap
and works where pyarrow is missing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from lipspline.data.dataset import Dataset, Task
from lipspline.data.errors import DatasetError, fmt_column
from lipspline.data.labels import parse_label_column
from lipspline.data.validation import DEFAULT_MAX_BYTES, build_dataset, check_feature_names, open_upload


@dataclass(frozen=True)
class _TableFormat:
    """How one tabular format phrases (and orders) the checks of the shared opening."""

    #: the format as messages name it ("The CSV file ...")
    label: str
    #: where the column names were read from, for the missing-target message
    names_from: str
    #: tail of the duplicate-target message
    duplicate_where: str
    #: message for a table with columns but no data rows
    no_rows: str
    #: CSV header cells are stripped text, so a blank one is a stray delimiter and is reported
    #: by its position in the header (target included) before the feature names are checked
    header_cells_named: bool
    #: Parquet knows its row count from the footer before any column is decoded, so an empty
    #: file is reported ahead of problems with its feature names
    rows_before_names: bool


_CSV = _TableFormat(
    label="CSV",
    names_from="header",
    duplicate_where=" in the header",
    no_rows="The CSV file has a header but no data rows.",
    header_cells_named=True,
    rows_before_names=False,
)

_PARQUET = _TableFormat(
    label="Parquet",
    names_from="file",
    duplicate_where="",
    no_rows="The Parquet file has no rows.",
    header_cells_named=False,
    rows_before_names=True,
)


@dataclass(frozen=True)
class _Columns:
    """Where the target and the features sit in the table's column order."""

    target: int
    features: list[int]
    feature_names: list[str]


def _split_columns(names: list[str], target: str, n_rows: int, fmt: _TableFormat) -> _Columns:
    """The opening shared by the tabular formats, run once the column names and row count are known."""
    count = names.count(target)
    if count == 0:
        raise DatasetError(
            f"Target column {target!r} is not in the {fmt.names_from} (columns: {names}).",
            problem="missing_target",
            column=target,
        )
    if count > 1:
        raise DatasetError(
            f"Target column {target!r} appears {count} times{fmt.duplicate_where}.",
            problem="duplicate_column",
            column=target,
        )
    if fmt.header_cells_named:
        for j, col in enumerate(names):
            if not col:
                raise DatasetError(f"Header column {j} has no name.", problem="bad_header", column=j)
    if n_rows == 0 and fmt.rows_before_names:
        raise DatasetError(fmt.no_rows, problem="empty")
    target_index = names.index(target)
    features = [j for j in range(len(names)) if j != target_index]
    feature_names = check_feature_names([names[j] for j in features], len(features))
    if n_rows == 0:
        raise DatasetError(fmt.no_rows, problem="empty")
    if not features:
        raise DatasetError(f"The {fmt.label} file has no feature columns besides the target.", problem="no_features")
    return _Columns(target=target_index, features=features, feature_names=feature_names)


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------


def check_csv_header(names: list[str], target: str) -> list[str]:
    """The feature column names of a CSV header (stripped cells), checked as :func:`parse_csv` checks them.

    For a file read without holding it (``csv_stream``): its row count is not known yet, so an
    empty file is reported after the pass.
    """
    columns = _split_columns(names, target, 1, _CSV)
    return [names[j] for j in columns.features]


def _decode_text(data: bytes) -> str:
    """Strict UTF-8 (optional BOM): guessing other encodings silently corrupts labels."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"The file is not valid UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8.",
            problem="bad_encoding",
        ) from exc
    if "\x00" in text:
        raise DatasetError("The file contains NUL bytes; it looks binary, not CSV text.", problem="bad_encoding")
    return text


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_records(text: str) -> tuple[list[str] | None, list[list[str]], list[int]]:
    """The header, the data records and each record's line number (blank lines skipped)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if header is None:
                header = [c.strip() for c in record]
                continue
            rows.append(record)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DatasetError(
            f"CSV syntax error near line {reader.line_num}: {exc}.", problem="bad_csv", row=len(rows)
        ) from exc
    return header, rows, lines


def _feature_cell(cell: str, i: int, line: int, column: str) -> float:
    """One feature cell as a float, or the DatasetError naming its row, line and column."""
    try:
        return float(cell)
    except ValueError:
        if not cell:
            raise DatasetError(f"Row {i} (line {line}), {fmt_column(column)} is empty.", problem="missing_value",
                               row=i, column=column) from None
        raise DatasetError(
            f"Row {i} (line {line}), {fmt_column(column)} holds {cell[:40]!r}, which is not a number.",
            problem="non_numeric",
            row=i,
            column=column,
        ) from None


def parse_csv(
    data: bytes,
    *,
    target: str,
    task: Task | None = None,
    name: str = "dataset",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Dataset:
    """Parse a CSV upload with a header row; ``target`` names the label column.

    Blank lines are skipped. Cells are stripped of surrounding whitespace. Feature cells must
    parse as floats; the target may hold text (class labels).
    """
    open_upload(data, task, max_bytes)
    header, rows, lines = _csv_records(_decode_text(data))
    if header is None:
        raise DatasetError("The CSV file is empty.", problem="empty")
    columns = _split_columns(header, target, len(rows), _CSV)

    X = np.empty((len(rows), len(columns.features)), dtype=np.float64)
    labels: list[str] = []
    width = len(header)
    for i, record in enumerate(rows):
        if len(record) != width:
            raise DatasetError(
                f"Row {i} (line {lines[i]}) has {len(record)} fields but the header has {width}.",
                problem="ragged_row",
                row=i,
            )
        for k, j in enumerate(columns.features):
            X[i, k] = _feature_cell(record[j].strip(), i, lines[i], header[j])
        label = record[columns.target].strip()
        if not label:
            raise DatasetError(
                f"Row {i} (line {lines[i]}) has an empty target {target!r}.",
                problem="missing_value",
                row=i,
                column=target,
            )
        labels.append(label)
    y = parse_label_column(labels)
    if task == "regression" and y.dtype.kind == "U":
        bad = next(i for i, c in enumerate(labels) if not _parses_as_float(c))
        raise DatasetError(
            f"Row {bad} (line {lines[bad]}), target {target!r} holds {labels[bad][:40]!r}; regression needs numbers.",
            problem="non_numeric",
            row=bad,
            column=target,
        )
    return build_dataset(X, y, task=task, feature_names=columns.feature_names, name=name, target_name=target)


# ---------------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------------


def parse_parquet(
    data: bytes,
    *,
    target: str,
    task: Task | None = None,
    name: str = "dataset",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Dataset:
    """Parse a Parquet upload; numeric columns other than ``target`` become features.

    The row-group metadata (declared uncompressed size) is checked before any column is decoded.
    """
    open_upload(data, task, max_bytes)
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(pa.BufferReader(data))
        meta = pfile.metadata
        # Encodings (dictionary, RLE) can make even the "uncompressed" row-group size far
        # smaller than the decoded table, so also bound the float64 matrix we will build.
        declared = max(
            sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)),
            meta.num_rows * meta.num_columns * 8,
        )
        if declared > max_bytes:
            raise DatasetError(
                f"The Parquet file declares {declared} bytes of data, over the {max_bytes}-byte limit.",
                problem="too_large",
            )
        table = pfile.read()
    except DatasetError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetError(f"Could not read the Parquet file: {exc}.", problem="bad_parquet") from exc

    names = [str(c) for c in table.column_names]
    columns = _split_columns(names, target, table.num_rows, _PARQUET)

    def first_null(col: Any) -> int:
        return int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))

    features = []
    for j in columns.features:
        col_name = names[j]
        col = table.column(j)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
            raise DatasetError(
                f"{fmt_column(col_name)} has type {col.type}, not a number.", problem="non_numeric", column=col_name
            )
        if col.null_count:
            row = first_null(col)
            raise DatasetError(
                f"Row {row}, {fmt_column(col_name)} is empty.", problem="missing_value", row=row, column=col_name
            )
        features.append(np.asarray(col.to_numpy(), dtype=np.float64))
    X = np.column_stack(features)

    ycol = table.column(columns.target)
    if ycol.null_count:
        row = first_null(ycol)
        raise DatasetError(f"Row {row} has no target {target!r}.", problem="missing_value", row=row, column=target)
    ytype = ycol.type
    if pa.types.is_dictionary(ytype):
        ytype = ytype.value_type
    if pa.types.is_string(ytype) or pa.types.is_large_string(ytype):
        y: np.ndarray = np.array([str(v) for v in ycol.to_pylist()], dtype=str)
    elif pa.types.is_integer(ytype) or pa.types.is_floating(ytype) or pa.types.is_boolean(ytype):
        y = np.asarray(ycol.to_numpy())
    else:
        raise DatasetError(
            f"Target {target!r} has type {ycol.type}, not numbers or text labels.", problem="non_numeric", column=target
        )
    return build_dataset(X, y, task=task, feature_names=columns.feature_names, name=name, target_name=target)
