"""A large CSV upload converted to Parquet block by block, never held whole.

Why: the small-upload path (``tabular.parse_csv``) reads every cell into a Python string
first, tens of bytes per cell, so a CSV of a few hundred MB would take gigabytes of the API's
memory. An upload over ``upload_stream_over_bytes`` is spooled to disk by the form parser
instead; this module reads that file with pyarrow's CSV reader (one block of
``block_bytes`` at a time) into the row groups of a Parquet file, which the platform then
registers like any dataset by reference (footers, one statistics pass) and trains by streaming.

The rules are the small path's, so a file means the same whatever its size: a header row
(blank lines skipped, names stripped, checked by :func:`tabular.check_csv_header`); every
feature cell a number (surrounding spaces allowed; an empty one names its row and column;
``nan``/``inf`` are read as such and refused by the statistics pass, naming the cell); the
target text, stripped, never empty, given the narrowest type that fits every cell (int,
then float, else text: ``labels.parse_label_column``). That type is known only at the end
of the file, so the target is written as text and, when it turns out numeric, the Parquet
file is rewritten once with the column cast (a pass over row groups, no CSV parsing).

Rows are numbered as the small path numbers them: 0-based data rows, header excluded.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from lipspline.data.errors import DatasetError, fmt_column
from lipspline.data.tabular import check_csv_header

#: bytes of CSV text parsed per block: the converter's memory, whatever the file's size
DEFAULT_BLOCK_BYTES = 8 << 20
#: the target's possible types, narrowest first (as ``parse_label_column`` tries them)
_NARROWEST = ("int64", "float64", "string")


def _read_header(source: BinaryIO) -> tuple[list[str], int]:
    """The header's stripped names and the byte offset where the data rows start (a BOM and blank lines skipped)."""
    offset = 0
    while True:
        line = source.readline()
        if not line:
            raise DatasetError("The CSV file is empty.", problem="empty")
        start = offset
        offset += len(line)
        if start == 0 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8):]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"The header is not valid UTF-8 text (bad byte at offset {start + exc.start}); "
                               "save it as UTF-8.", problem="bad_encoding") from exc
        if text.strip():
            break
    if "\x00" in text:
        raise DatasetError("The file contains NUL bytes; it looks binary, not CSV text.", problem="bad_encoding")
    try:
        (record,) = list(csv.reader([text]))
    except (csv.Error, ValueError) as exc:
        raise DatasetError(f"CSV syntax error in the header: {exc}.", problem="bad_csv") from exc
    return [cell.strip() for cell in record], offset


def _arrow_error(exc: Exception, names: list[str], bad_row: dict[str, Any]) -> DatasetError:
    """A pyarrow parse or conversion error as the DatasetError naming its row and column."""
    message = str(exc)
    if bad_row:
        row = bad_row["number"] - 1 if bad_row["number"] is not None else None
        where = f"Row {row}" if row is not None else "A row"
        return DatasetError(f"{where} has {bad_row['actual']} fields but the header has {bad_row['expected']}.",
                            problem="ragged_row", row=row)
    found = re.search(r"CSV column #(\d+): (?:Row #(\d+): )?CSV conversion error to (\w+): (.*)", message)
    if found:
        column = names[int(found.group(1))]
        row = int(found.group(2)) - 1 if found.group(2) else None
        where = f"Row {row}, " if row is not None else ""
        if found.group(3) == "string":
            return DatasetError(f"{where}{fmt_column(column)} is not valid UTF-8 text; save the file as UTF-8.",
                                problem="bad_encoding", row=row, column=column)
        value = re.sub(r"^invalid value ", "", found.group(4))
        return DatasetError(f"{where}{fmt_column(column)} holds {value[:40]}, which is not a number.",
                            problem="non_numeric", row=row, column=column)
    return DatasetError(f"CSV syntax error: {message[:300]}", problem="bad_csv")


def _first_index(mask: Any) -> int:
    return int(np.argmax(mask.to_numpy(zero_copy_only=False)))


def _check_block(batch: Any, first_row: int, features: list[str], target: str) -> Any:
    """The block's target stripped; a DatasetError naming the first empty cell."""
    import pyarrow.compute as pc

    for name in features:
        column = batch.column(name)
        if column.null_count:
            row = first_row + _first_index(column.is_null())
            raise DatasetError(f"Row {row}, {fmt_column(name)} is empty.", problem="missing_value", row=row,
                               column=name)
    labels = pc.utf8_trim_whitespace(batch.column(target))
    empty = pc.equal(pc.utf8_length(labels), 0)
    if pc.any(empty).as_py():
        row = first_row + _first_index(empty)
        raise DatasetError(f"Row {row} has an empty target {target!r}.", problem="missing_value", row=row,
                           column=target)
    return labels


def _narrowest(labels: Any, floor: str) -> str:
    """The narrowest of int64, float64, string (no narrower than ``floor``) that holds every label."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for kind in _NARROWEST[_NARROWEST.index(floor):-1]:
        try:
            pc.cast(labels, pa.int64() if kind == "int64" else pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        return kind
    return "string"


def _retype_target(path: Path, target: str, kind: str) -> None:
    """Rewrite the Parquet file at ``path`` with its (text) target cast to ``kind``, a row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_type = pa.int64() if kind == "int64" else pa.float64()
    source = pq.ParquetFile(path)
    schema = source.schema_arrow.set(source.schema_arrow.get_field_index(target), pa.field(target, arrow_type))
    retyped = path.with_name(path.name + ".retyped")
    try:
        with pq.ParquetWriter(retyped, schema) as writer:
            for group in range(source.num_row_groups):
                table = source.read_row_group(group)
                index = table.schema.get_field_index(target)
                writer.write_table(table.set_column(index, target, table.column(target).cast(arrow_type)))
        os.replace(retyped, path)
    finally:
        retyped.unlink(missing_ok=True)


def csv_to_parquet(source: BinaryIO, destination: str | Path, *, target: str,
                   block_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Convert the CSV file ``source`` (binary, seekable) into a Parquet file at ``destination``; returns its rows.

    Raises DatasetError (naming the row and column) for anything the small-upload path refuses;
    nothing is left at ``destination`` then.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    names, data_offset = _read_header(source)
    features = check_csv_header(names, target)
    destination = Path(destination)
    bad_row: dict[str, Any] = {}

    def refuse(row: Any) -> str:  # pyarrow calls this for a row with the wrong number of fields
        bad_row.update(number=row.number, expected=row.expected_columns, actual=row.actual_columns)
        return "error"

    source.seek(data_offset)
    column_types = {name: pa.float64() for name in features} | {target: pa.string()}
    reader_options = {
        # one thread: pyarrow then numbers the rows in its errors (and this machine's cores train models)
        "read_options": pa_csv.ReadOptions(column_names=names, block_size=block_bytes, use_threads=False),
        "parse_options": pa_csv.ParseOptions(invalid_row_handler=refuse),
        "convert_options": pa_csv.ConvertOptions(column_types=column_types, null_values=[""],
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
    }
    rows, kind = 0, _NARROWEST[0]
    schema = pa.schema([pa.field(name, column_types[name]) for name in names])
    try:
        reader = pa_csv.open_csv(source, **reader_options)
        with pq.ParquetWriter(destination, schema) as writer:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                labels = _check_block(batch, rows, features, target)
                if kind != "string":
                    kind = _narrowest(labels, kind)
                index = names.index(target)
                writer.write_table(pa.Table.from_batches([batch]).set_column(index, target, labels))
                rows += batch.num_rows
        if rows == 0:
            raise DatasetError("The CSV file has a header but no data rows.", problem="empty")
        if kind != "string":
            _retype_target(destination, target, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        destination.unlink(missing_ok=True)
        if "Empty CSV file" in str(exc):  # nothing after the header but blank lines
            raise DatasetError("The CSV file has a header but no data rows.", problem="empty") from exc
        raise _arrow_error(exc, names, bad_row) from exc
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    return rows
