"""A large ``.npz`` upload converted to Parquet a block of rows at a time, never held whole.

The small-upload path (``arrays.parse_npz``) loads ``X`` and ``y`` whole and then copies ``X``
to float64; an upload over ``upload_stream_over_bytes`` is spooled to disk instead, and this
module reads the ``X.npy`` member of the spooled zip as a stream (decompressed as it is read),
``block_bytes`` of rows at a time, into the row groups of a Parquet file that the platform
registers like any dataset by reference. ``y`` (one value per row) is read whole.

The rules are the small path's: arrays ``X`` (numeric, one row per sample, more than two
dimensions flattened per sample) and ``y`` (1-D, as long as ``X``), their headers checked
before anything is inflated (``arrays.check_npz_members``: no pickles, no zip bombs), feature
columns named ``x1 … xd``, the target ``y``; non-finite values are refused by the statistics
pass, naming the row and column. An ``X`` saved in Fortran order (one column after another)
cannot be read row by row from the zip stream: its payload is first copied, sequentially, to a
plain file beside the destination, from which each block of rows is read back as one run per
column (disk, not memory, pays for the copy).
"""

from __future__ import annotations

import contextlib
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from lipspline.data.arrays import check_npz_members, read_npy_header
from lipspline.data.errors import DatasetError
from lipspline.data.validation import default_feature_names

#: bytes of ``X`` read per block: the converter's memory, whatever the file's size
DEFAULT_BLOCK_BYTES = 8 << 20
#: the target column's name in the Parquet file (the array's name in the upload)
TARGET = "y"


def _open_payload(zf: zipfile.ZipFile, member: str) -> tuple[Any, bool]:
    """The member opened just past its .npy header, and whether its data is in Fortran order."""
    handle = zf.open(member)
    _, fortran_order, _ = read_npy_header(handle)
    return handle, bool(fortran_order)


def _target_array(values: np.ndarray) -> Any:
    import pyarrow as pa

    if values.dtype.kind == "U":
        return pa.array(values.tolist(), type=pa.string())
    return pa.array(values)


def npz_to_parquet(source: BinaryIO, destination: str | Path, *, max_bytes: int,
                   block_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Convert the ``.npz`` file ``source`` (binary, seekable) into a Parquet file at ``destination``; returns its rows.

    ``max_bytes`` bounds what the arrays may decompress to, as for a small upload. Raises
    DatasetError for anything the small-upload path refuses; nothing is left at ``destination`` then.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    destination = Path(destination)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DatasetError("The .npz upload is not a zip archive.", problem="bad_npz") from exc
    try:
        with zf:
            headers = check_npz_members(zf, max_bytes)
            (x_shape, x_dtype), (y_shape, _) = headers["X"], headers["y"]
            if x_dtype.kind not in "biuf":
                raise DatasetError(f"Array 'X' must be numeric, got {x_dtype}.", problem="non_numeric", column="X")
            if len(x_shape) < 2:
                raise DatasetError(f"Array 'X' must have one row per sample (2-D or more), got shape {x_shape}.",
                                   problem="bad_shape", column="X")
            if len(y_shape) != 1:
                raise DatasetError(f"Array 'y' must be 1-D, got shape {y_shape}.", problem="bad_shape", column="y")
            rows, features = x_shape[0], math.prod(x_shape[1:])
            if rows == 0:
                raise DatasetError("The dataset has no rows.", problem="empty")
            if y_shape[0] != rows:
                raise DatasetError(f"'X' has {rows} rows but 'y' has {y_shape[0]} values.",
                                   problem="length_mismatch", column="y")
            if features == 0:
                raise DatasetError("The dataset has no feature columns.", problem="no_features")
            with zf.open("y.npy") as handle:
                y = np.lib.format.read_array(handle, allow_pickle=False)
            names = default_feature_names(features)
            target_type = _target_array(y[:1]).type
            schema = pa.schema([*(pa.field(n, pa.float64()) for n in names), pa.field(TARGET, target_type)])
            handle, fortran_order = _open_payload(zf, "X.npy")
            per_block = max(1, block_bytes // (features * x_dtype.itemsize))
            if fortran_order:
                spool = destination.with_name(destination.name + ".columns")
                blocks = _fortran_row_blocks(handle, x_shape, x_dtype, per_block, spool)
            else:
                blocks = _row_blocks(handle, rows, features, x_dtype, per_block)
            with handle, contextlib.closing(blocks), pq.ParquetWriter(destination, schema) as writer:
                for first, block in blocks:
                    columns = block.astype(np.float64, copy=False)
                    arrays = [pa.array(columns[:, j]) for j in range(features)]
                    arrays.append(_target_array(y[first:first + len(block)]))
                    writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
    except DatasetError:
        destination.unlink(missing_ok=True)
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        destination.unlink(missing_ok=True)
        raise DatasetError(f"Could not read the .npz file: {exc}.", problem="bad_npz") from exc
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    return rows


def _row_blocks(handle: Any, rows: int, features: int, dtype: np.dtype, per_block: int) -> Iterator:
    """(first row, block) pairs read from a C-ordered payload, ``per_block`` rows at a time."""
    row_bytes = features * dtype.itemsize
    for first in range(0, rows, per_block):
        count = min(per_block, rows - first)
        data = handle.read(count * row_bytes)
        if len(data) != count * row_bytes:
            raise DatasetError("Array 'X' holds fewer rows than its header declares.", problem="bad_npz", column="X")
        yield first, np.frombuffer(data, dtype=dtype).reshape(count, features)


def _fortran_row_blocks(handle: Any, shape: tuple[int, ...], dtype: np.dtype, per_block: int,
                        spool: Path) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, block) pairs of a Fortran-ordered payload, ``per_block`` rows at a time.

    The payload is copied to ``spool`` in bounded chunks; each block of rows is then read back
    as one run per column (positioned reads, no memory map: mapped pages would count against
    the process), and flattened per sample in C order as ``reshape`` flattens the small path's
    array. ``spool`` is removed when the blocks are done or abandoned (the caller closes this
    generator).
    """
    rows, features = shape[0], math.prod(shape[1:])
    size = dtype.itemsize
    remaining = rows * features * size
    try:
        with open(spool, "wb") as out:
            while remaining > 0:
                chunk = handle.read(min(DEFAULT_BLOCK_BYTES, remaining))
                if not chunk:
                    raise DatasetError("Array 'X' holds fewer values than its header declares.",
                                       problem="bad_npz", column="X")
                out.write(chunk)
                remaining -= len(chunk)
        with open(spool, "rb") as columns:
            for first in range(0, rows, per_block):
                count = min(per_block, rows - first)
                runs = np.empty((features, count), dtype=dtype)  # runs[f] = rows first.. of column f
                for column in range(features):
                    columns.seek((column * rows + first) * size)
                    columns.readinto(memoryview(runs[column]).cast("B"))
                # runs.T is the block with its sample axes flattened in Fortran order: undo that
                block = runs.T.reshape((count, *shape[1:]), order="F")
                yield first, np.ascontiguousarray(block).reshape(count, features)
    finally:
        spool.unlink(missing_ok=True)
