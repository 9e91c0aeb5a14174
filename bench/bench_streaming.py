"""Streaming training against training from memory: rows/s of one epoch and peak RSS, side by side.

Writes a Parquet dataset of N rows x F float32 features (classification, 10 classes) into a
temporary directory, then in two fresh child processes (so each peak RSS is its own):

* ``memory``: the rows loaded whole into a ``Dataset`` (float64, as an upload is held) and
  trained for one epoch by ``fit``;
* ``stream``: the same objects described, their statistics computed in one pass (the
  registration's work, timed apart), and one epoch of ``fit`` on ``StreamedData``.

Same network, batch size and seed; one torch thread each (``--threads``). Prints a table of rows/s (median of
``--reps`` epochs), the ratio stream/memory, the registration time and each peak RSS.

Run: ``python bench/bench_streaming.py [--rows 2000000] [--features 32] [--reps 1]``
(the issue's scale is ``--rows 10000000``: about 1.3 GB of Parquet and, for the in-memory
side, 2.6 GB of float64 rows).

``--service`` replaces the in-process stream side by the platform path a user takes: the
objects uploaded to a real S3 API (moto's server on loopback), a ``lipspline serve`` deployment
registering them by ``s3://`` URI over HTTP (timed, the API's peak RSS sampled), and a one-epoch
job trained by its worker (rows/s from the epoch's own ``elapsed_s``; the peak RSS of every
worker process, from ``VmHWM``), then one prediction with its certificate.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def run_child(mode: str, paths: list[str], reps: int, threads: int) -> dict:
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

    if threads:
        torch.set_num_threads(threads)
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


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc``)."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            found += [int(c) for c in children]
            frontier += [int(c) for c in children]
    return found


def _peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakWatcher:
    """Samples the peak RSS (VmHWM) of a process and of each process below it, by command line."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid, self.peaks, self._stop = root_pid, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for pid in _descendants(self.root_pid):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                label = f"{pid} " + " ".join(a.decode(errors="replace") for a in argv[1:4])
                self.peaks[label] = max(self.peaks.get(label, 0.0), _peak_rss_mib(pid))

    def __enter__(self) -> PeakWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_service(paths: list[str], workdir: Path) -> dict:
    """The stream side through the platform: S3 objects, registration by URI, a job on the worker."""
    from tests.support.processes import Deployment, embedded_env, wait_for_job
    from tests.support.s3_server import CREDENTIALS, s3_server

    bucket = "bench-streaming"
    result: dict = {}
    with s3_server(workdir) as store:
        client = store.client()
        client.create_bucket(Bucket=bucket)
        began = time.perf_counter()
        for path in paths:
            client.upload_file(path, bucket, f"rows/{Path(path).name}")
        result["upload_s"] = time.perf_counter() - began
        env = embedded_env(workdir, LIPSPLINE_S3_ENDPOINT_URL=store.url, **CREDENTIALS)
        with Deployment(env, workdir, embedded=True).running() as deployment, deployment.client(timeout=3600) as http:
            api_pid = deployment.api.popen.pid
            with PeakWatcher(api_pid) as api_peak:
                began = time.perf_counter()
                created = http.post("/v1/datasets", json={"uri": f"s3://{bucket}/rows/*.parquet", "target": "label"})
                result["register_s"] = time.perf_counter() - began
            assert created.status_code == 201, created.text
            dataset = created.json()
            result["api_register_peak_mb"] = max(v for k, v in api_peak.peaks.items() if k.startswith(f"{api_pid} "))
            with PeakWatcher(api_pid) as peaks:
                job = http.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": CONFIG})
                assert job.status_code == 202, job.text
                done = wait_for_job(http, job.json()["id"], timeout_s=7200)
            assert done["status"] == "succeeded", done
            history = http.get(f"/v1/jobs/{done['id']}/metrics").json()["history"]
            rows = dataset["n_samples"] * (1 - CONFIG["training"]["validation_split"])
            result["rows_per_s"] = [rows / history[-1]["elapsed_s"]]
            result["process_peaks_mb"] = {k: v for k, v in peaks.peaks.items() if not k.startswith(f"{api_pid} ")}
            result["api_peak_mb"] = peaks.peaks.get(next(k for k in peaks.peaks if k.startswith(f"{api_pid} ")), 0.0)
            result["peak_rss_mb"] = max(result["process_peaks_mb"].values())
            model = http.get(f"/v1/models/{done['model_id']}").json()
            result["accuracy"] = model["metrics"]["validation"]["accuracy"]
            origin = {"inputs": [[0.0] * dataset["n_features"]]}
            predicted = http.post(f"/v1/models/{done['model_id']}/predict", json=origin)
            assert predicted.status_code == 200, predicted.text
            result["lipschitz_bound"] = predicted.json()["lipschitz_bound"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--child", choices=["memory", "stream"])
    parser.add_argument("--paths")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of each side (default 1; with --service the worker's own: all cores)")
    parser.add_argument("--service", action="store_true",
                        help="the stream side through S3 (moto), registration by URI and a `lipspline serve` job")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, json.loads(args.paths), args.reps, args.threads)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as folder:
        began = time.perf_counter()
        paths = write_dataset(Path(folder), args.rows, args.features)
        size = sum(Path(p).stat().st_size for p in paths) / 2**20
        print(f"dataset: {args.rows:,} rows x {args.features} float32 features, {len(paths)} objects, "
              f"{size:.0f} MiB of Parquet (written in {time.perf_counter() - began:.1f} s)")
        results = {}
        for mode in ("memory", "stream"):
            if mode == "stream" and args.service:
                results[mode] = run_service(paths, Path(folder))
                continue
            threads = args.threads if args.threads is not None else (0 if args.service else 1)
            argv = [sys.executable, __file__, "--child", mode, "--paths", json.dumps(paths), "--reps", str(args.reps),
                    "--threads", str(threads)]
            out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
            results[mode] = json.loads(out.strip().splitlines()[-1])
    memory, stream = (statistics.median(results[m]["rows_per_s"]) for m in ("memory", "stream"))
    threads = args.threads if args.threads is not None else (0 if args.service else 1)
    print(f"\nnetwork {CONFIG['architecture']['hidden']} deepspline, batch {CONFIG['training']['batch_size']}, "
          f"{threads or 'default'} torch thread(s), one epoch\n")
    print("| side | rows/s (median) | ratio | validation accuracy | peak RSS |")
    print("|---|---|---|---|---|")
    for mode, rate in (("in memory (float64 Dataset)", memory), ("streamed from Parquet", stream)):
        key = "memory" if mode.startswith("in") else "stream"
        print(f"| {mode} | {rate:,.0f} | {rate / memory:.2f} | {results[key]['accuracy']:.3f} | "
              f"{results[key]['peak_rss_mb']:,.0f} MiB |")
    stream = results["stream"]
    print(f"\nregistration (footers + one statistics pass): {stream['register_s']:.1f} s")
    if args.service:
        print(f"through the service: upload to S3 {stream['upload_s']:.1f} s; API peak RSS while registering "
              f"{stream['api_register_peak_mb']:,.0f} MiB, over the job {stream['api_peak_mb']:,.0f} MiB; "
              f"certified L of the model {stream['lipschitz_bound']:.3g}")
        for label, peak in sorted(stream["process_peaks_mb"].items()):
            print(f"  worker process {label}: peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
