"""Dataset parsing, validation, scaling and the synthetic circle task.

Everything a client uploads passes through this package before it reaches a model, so the
guiding rule is: reject bad data early, with an error that says *where* it is bad (row and
column) and a short machine code (:attr:`DatasetError.problem`) that an API layer can map
to a response without parsing English.

One module per concern, so a change to one format or check is made in one place:

* :mod:`~lipspline.data.errors` -- :class:`DatasetError` and how errors name locations;
* :mod:`~lipspline.data.dataset` -- the immutable :class:`Dataset` and :data:`Task`;
* :mod:`~lipspline.data.labels` -- task inference and canonical targets;
* :mod:`~lipspline.data.validation` -- the constructor every parser ends in;
* :mod:`~lipspline.data.arrays` -- in-memory rows (JSON) and ``.npz``;
* :mod:`~lipspline.data.tabular` -- CSV and Parquet, with their shared opening;
* :mod:`~lipspline.data.upload` -- choosing the parser from a file name;
* :mod:`~lipspline.data.scaling`, :mod:`~lipspline.data.synthetic`, :mod:`~lipspline.data.splits`.

Only numpy and the standard library are imported eagerly; pyarrow is imported inside
:func:`parse_parquet`, so importing this package stays cheap and works where pyarrow is
missing. No torch: data handling must not depend on the training stack.
"""

from __future__ import annotations

from lipspline.data.arrays import from_arrays, parse_npz
from lipspline.data.dataset import Dataset, Task
from lipspline.data.errors import DatasetError
from lipspline.data.labels import MAX_CLASSIFICATION_LEVELS, infer_task
from lipspline.data.scaling import Scaling, fit_scaling
from lipspline.data.splits import train_validation_split
from lipspline.data.synthetic import make_circle
from lipspline.data.tabular import parse_csv, parse_parquet
from lipspline.data.upload import parse_upload
from lipspline.data.validation import DEFAULT_MAX_BYTES

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_CLASSIFICATION_LEVELS",
    "Dataset",
    "DatasetError",
    "Scaling",
    "Task",
    "fit_scaling",
    "from_arrays",
    "infer_task",
    "make_circle",
    "parse_csv",
    "parse_npz",
    "parse_parquet",
    "parse_upload",
    "train_validation_split",
]
