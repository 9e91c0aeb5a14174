"""What the training loop reads: rows in memory, or rows streamed from Parquet.

``fit`` asks the data for five things and nothing else: its description (task, classes,
feature names), the standardisation, the batches of one epoch in an order drawn from the
run's shuffle generator, a validation set, and a bounded sample of the training rows (the
spline grids, the margins' scale, the per-epoch training metrics and the out-of-grid check
are measured on it). Two kinds answer:

* :class:`InMemoryData`: a :class:`~lipspline.data.Dataset` held whole, split by
  ``train_validation_split``; the sample is every training row, so a run is exactly what it
  was before streaming existed (same split, same batch order, same weights per seed).
* :class:`StreamedData`: Parquet row groups read as the epoch goes
  (:mod:`lipspline.data.parquet_stream`): memory bounded by the shuffle buffer, whatever the
  dataset's size; validation rows chosen by a stable hash of the row index.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lipspline.data import Dataset, Scaling, fit_scaling, train_validation_split
from lipspline.data.parquet_stream import ParquetStream
from lipspline.data.scaling import MOMENT_CHUNK_ROWS, scaling_from_moments


@dataclass(frozen=True)
class RawRows:
    """Rows in raw units with their encoded targets: what the served map is measured on.

    ``source[index]`` (``source`` itself without an index) are the rows. Held as the index into
    the dataset rather than a copy, so a caller that walks them in chunks (``chunk``) never holds
    a second copy of the split; ``all_rows`` makes the copy for callers that need every row at once.
    """

    source: np.ndarray
    targets: np.ndarray
    index: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return int(self.source.shape[0] if self.index is None else self.index.size)

    def chunk(self, begin: int, end: int) -> np.ndarray:
        return self.source[begin:end] if self.index is None else self.source[self.index[begin:end]]

    def all_rows(self) -> np.ndarray:
        return self.source if self.index is None else self.source[self.index]


class TrainingData(ABC):
    """The rows of one training run, as ``fit`` reads them (see the module docstring)."""

    task: str
    classes: list | None
    feature_names: list[str]
    n_train: int
    n_validation: int

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @abstractmethod
    def fit_scaling(self, *, isotropic: bool) -> Scaling:
        """The standardisation the network will carry (from the training rows, or recorded statistics)."""

    @abstractmethod
    def prepare(self, scaling: Scaling, device: torch.device) -> None:
        """Standardise what is held in memory (validation set, training sample) onto ``device``."""

    @abstractmethod
    def train_sample(self) -> tuple[Tensor, Tensor]:
        """Standardised training rows (all of them in memory, a bounded sample when streamed)."""

    @abstractmethod
    def validation(self) -> tuple[Tensor, Tensor]:
        """Standardised validation rows."""

    @abstractmethod
    def epoch_batches(self, batch_size: int, shuffle: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of training batches, in an order drawn from ``shuffle`` alone."""

    @abstractmethod
    def raw_rows(self, split: str) -> RawRows:
        """``"train"`` (the sample) or ``"validation"`` rows in raw units, for the served metrics."""


#: rows standardised at a time: the float64 temporaries of a chunk, never of the whole split
STANDARDISE_CHUNK_ROWS = MOMENT_CHUNK_ROWS


def _standardised(X: np.ndarray, targets: np.ndarray, task: str, scaling: Scaling,
                  device: torch.device, index: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
    """Rows ``X[index]`` (all rows without ``index``) standardised into one float32 tensor.

    Chunk by chunk into the preallocated result: the whole split's float64 copies (the fancy
    index, ``X - mean``, the division) would each be as large as the data; a chunk's are bounded.
    The arithmetic per element is the same ``(x - mean) / scale`` rounded to float32.
    """
    rows = X.shape[0] if index is None else int(index.size)
    out = torch.empty((rows, *X.shape[1:]), dtype=torch.float32)
    view = out.numpy()
    for begin in range(0, rows, STANDARDISE_CHUNK_ROWS):
        end = min(rows, begin + STANDARDISE_CHUNK_ROWS)
        part = X[begin:end] if index is None else X[index[begin:end]]
        view[begin:end] = (part - scaling.input_mean) / scaling.input_scale
    picked = targets if index is None else targets[index]
    if task == "regression":
        y = torch.as_tensor((picked - scaling.target_mean) / scaling.target_scale, dtype=torch.float32)
    else:
        y = torch.as_tensor(picked, dtype=torch.int64)
    return out.to(device), y.to(device)


class InMemoryData(TrainingData):
    """A whole :class:`Dataset` in memory, split by the seed (``train_validation_split``)."""

    def __init__(self, dataset: Dataset, validation_split: float, seed: int) -> None:
        self.dataset = dataset
        self.task, self.classes, self.feature_names = dataset.task, dataset.classes, list(dataset.feature_names)
        self.train_index, self.validation_index = train_validation_split(dataset.n_samples, validation_split, seed)
        self.n_train, self.n_validation = int(self.train_index.size), int(self.validation_index.size)
        self._train: tuple[Tensor, Tensor] | None = None
        self._validation: tuple[Tensor, Tensor] | None = None

    def fit_scaling(self, *, isotropic: bool) -> Scaling:
        return fit_scaling(self.dataset, isotropic=isotropic, rows=self.train_index)

    def prepare(self, scaling: Scaling, device: torch.device) -> None:
        targets = self.dataset.encoded_targets()
        X = self.dataset.X
        self._train = _standardised(X, targets, self.task, scaling, device, self.train_index)
        self._validation = _standardised(X, targets, self.task, scaling, device, self.validation_index)

    def train_sample(self) -> tuple[Tensor, Tensor]:
        assert self._train is not None, "prepare() first"
        return self._train

    def validation(self) -> tuple[Tensor, Tensor]:
        assert self._validation is not None, "prepare() first"
        return self._validation

    def epoch_batches(self, batch_size: int, shuffle: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        x_train, y_train = self.train_sample()
        order = torch.randperm(self.n_train, generator=shuffle).to(x_train.device)
        for begin in range(0, self.n_train, batch_size):
            batch = order[begin : begin + batch_size]
            yield x_train[batch], y_train[batch]

    def raw_rows(self, split: str) -> RawRows:
        index = self.train_index if split == "train" else self.validation_index
        return RawRows(self.dataset.X, self.dataset.encoded_targets()[index], index)


class StreamedData(TrainingData):
    """Parquet rows read row group by row group (:class:`ParquetStream`), shuffled in a bounded buffer.

    Reading runs one row group ahead on a thread (pyarrow releases the GIL while it decodes),
    so the optimizer steps while the next rows arrive. The standardisation comes from the
    statistics recorded at registration (all rows), not from a pass at job start.
    """

    def __init__(self, stream: ParquetStream) -> None:
        self.stream = stream
        self.task, self.classes = stream.task, stream.classes
        self.feature_names = list(stream.features)
        self.n_validation = stream.n_validation_estimate
        self.n_train = stream.n_rows - self.n_validation
        self._sample: tuple[Tensor, Tensor] | None = None
        self._validation: tuple[Tensor, Tensor] | None = None
        self._raw: dict[str, RawRows] = {}
        self._scaling: Scaling | None = None
        self._device = torch.device("cpu")

    def fit_scaling(self, *, isotropic: bool) -> Scaling:
        stats = self.stream.statistics
        target = None if self.task != "regression" else (stats.target_mean, stats.target_std)
        return scaling_from_moments(np.asarray(stats.mean), np.asarray(stats.std), self.task, target,
                                    isotropic=isotropic)

    def prepare(self, scaling: Scaling, device: torch.device) -> None:
        self._scaling, self._device = scaling, device
        sample = self.stream.sample()
        self._sample = _standardised(sample.train_inputs, sample.train_targets, self.task, scaling, device)
        self._validation = _standardised(
            sample.validation_inputs, sample.validation_targets, self.task, scaling, device
        )
        self._raw = {"train": RawRows(sample.train_inputs, sample.train_targets),
                     "validation": RawRows(sample.validation_inputs, sample.validation_targets)}

    def train_sample(self) -> tuple[Tensor, Tensor]:
        assert self._sample is not None, "prepare() first"
        return self._sample

    def validation(self) -> tuple[Tensor, Tensor]:
        assert self._validation is not None, "prepare() first"
        return self._validation

    def raw_rows(self, split: str) -> RawRows:
        return self._raw[split]

    def epoch_batches(self, batch_size: int, shuffle: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        assert self._scaling is not None, "prepare() first"
        seed = int(torch.randint(0, 2**62, (1,), generator=shuffle))
        mean = self._scaling.input_mean.astype(np.float32)
        inverse_scale = (1.0 / self._scaling.input_scale).astype(np.float32)
        for X, targets in _read_ahead(self.stream.training_batches(batch_size, seed)):
            x = torch.from_numpy((X - mean) * inverse_scale)
            if self.task == "regression":
                t = (targets - self._scaling.target_mean) / self._scaling.target_scale
                y = torch.from_numpy(t.astype(np.float32))
            else:
                y = torch.from_numpy(targets.astype(np.int64, copy=False))
            yield x.to(self._device), y.to(self._device)


_DONE = object()


def _read_ahead(batches: Iterator, depth: int = 4) -> Iterator:
    """``batches``, produced on a thread ``depth`` items ahead of the consumer.

    The producer stops when the consumer goes away (a cancelled epoch): it gives up on a
    full queue once told to stop, so no thread outlives the epoch for long.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            failure.append(exc)
        finally:
            while not stop.is_set():
                try:
                    ready.put(_DONE, timeout=0.1)
                    break
                except queue.Full:
                    continue

    thread = threading.Thread(target=produce, name="parquet-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join(timeout=5)
