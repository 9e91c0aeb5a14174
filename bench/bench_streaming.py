"""Streaming training against training from memory: rows/s of one epoch and peak RSS, side by side.

Writes a Parquet dataset of N rows x F float32 features (classification, 10 classes) into a
temporary directory, then in two fresh child processes (so each peak RSS is its own):

* ``memory``: the rows loaded whole into a ``Dataset`` (float64, as an upload is held) and
  trained for one epoch by ``fit``;
* ``stream``: the same objects described, their statistics computed in one pass (the
  registration's work, timed apart), and one epoch of ``fit`` on ``StreamedData``.

Same network, batch size and seed; one torch thread each. Prints a table of rows/s (median of
``--reps`` epochs), the ratio stream/memory, the registration time and each peak RSS.

Run: ``python bench/bench_streaming.py [--rows 2000000] [--features 32] [--reps 1]``
(the issue's scale is ``--rows 10000000``: about 1.3 GB of Parquet and, for the in-memory
side, 2.6 GB of float64 rows).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = {"architecture": {"hidden": [64, 64], "activation": "deepspline"},
          "training": {"epochs": 1, "batch_size": 256, "lr": 0.01, "seed": 0, "validation_split": 0.05,
                       "early_stopping": False}}


def write_dataset(folder: Path, rows: int, features: int, per_file: int = 1_000_000) -> list[str]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    paths = []
    for k, start in enumerate(range(0, rows, per_file)):
        n = min(per_file, rows - start)
        label = rng.integers(0, 10, n)
        columns = {f"f{j}": (rng.normal(size=n) + 0.4 * label * ((j + label) % 3 == 0)).astype(np.float32)
                   for j in range(features)}
        path = folder / f"part-{k:03d}.parquet"
        pq.write_table(pa.table({**columns, "label": label}), path, row_group_size=131_072)
        paths.append(str(path))
    return paths


def run_child(mode: str, paths: list[str], reps: int) -> dict:
    """One side in this (child) process: {'rows_per_s': [...], 'register_s': …, 'peak_rss_mb': …}."""
    import numpy as np
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    import torch

    from api_schemas import TrainingConfig
    from lipspline.data import from_arrays
    from lipspline.data.parquet_stream import ParquetStream, check_columns, compute_statistics, describe_objects
    from lipspline.training.data import StreamedData
    from lipspline.training.loop import fit

    torch.set_num_threads(1)
    config = TrainingConfig.model_validate(CONFIG)
    result: dict = {"rows_per_s": []}
    if mode == "memory":
        tables = [pq.read_table(p) for p in paths]
        names = [n for n in tables[0].column_names if n != "label"]
        X = np.concatenate([np.stack([t[n].to_numpy().astype(np.float64) for n in names], axis=1) for t in tables])
        y = np.concatenate([t["label"].to_numpy() for t in tables])
        del tables
        data = from_arrays(X, y, task="classification")
        del X, y
        n_rows = data.n_samples
    else:
        filesystem = pafs.LocalFileSystem()
        began = time.perf_counter()
        objects, schema = describe_objects(filesystem, paths)
        features = check_columns(schema, "label", None)
        stats = compute_statistics(filesystem, objects, features, "label", "classification")
        result["register_s"] = time.perf_counter() - began
        stream = ParquetStream(filesystem, objects, features, "label", stats, config.training.validation_split, 0)
        data = StreamedData(stream)
        n_rows = stats.n_rows
    for _ in range(reps):
        began = time.perf_counter()
        fitted = fit(data, config)
        result["rows_per_s"].append(n_rows * (1 - config.training.validation_split) / (time.perf_counter() - began))
    result["accuracy"] = fitted.model.metrics["validation"]["accuracy"]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--child", choices=["memory", "stream"])
    parser.add_argument("--paths")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, json.loads(args.paths), args.reps)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as folder:
        began = time.perf_counter()
        paths = write_dataset(Path(folder), args.rows, args.features)
        size = sum(Path(p).stat().st_size for p in paths) / 2**20
        print(f"dataset: {args.rows:,} rows x {args.features} float32 features, {len(paths)} objects, "
              f"{size:.0f} MiB of Parquet (written in {time.perf_counter() - began:.1f} s)")
        results = {}
        for mode in ("memory", "stream"):
            argv = [sys.executable, __file__, "--child", mode, "--paths", json.dumps(paths), "--reps", str(args.reps)]
            out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
            results[mode] = json.loads(out.strip().splitlines()[-1])
    memory, stream = (statistics.median(results[m]["rows_per_s"]) for m in ("memory", "stream"))
    print(f"\nnetwork {CONFIG['architecture']['hidden']} deepspline, batch {CONFIG['training']['batch_size']}, "
          "1 torch thread, one epoch\n")
    print("| side | rows/s (median) | ratio | validation accuracy | peak RSS |")
    print("|---|---|---|---|---|")
    for mode, rate in (("in memory (float64 Dataset)", memory), ("streamed from Parquet", stream)):
        key = "memory" if mode.startswith("in") else "stream"
        print(f"| {mode} | {rate:,.0f} | {rate / memory:.2f} | {results[key]['accuracy']:.3f} | "
              f"{results[key]['peak_rss_mb']:,.0f} MiB |")
    print(f"\nregistration (footers + one statistics pass): {results['stream']['register_s']:.1f} s")


if __name__ == "__main__":
    main()
