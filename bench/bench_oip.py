"""OIP infer throughput beside ``/v1/.../predict``, for batches of 1 and 1,000 rows, JSON and binary.

In one run it starts ``lipspline serve`` (embedded default) in a temporary data dir, trains
one small model (bench_service's MODEL_CONFIG), registers it as ``circle`` with a
``production`` alias, and times, on one keep-alive connection, sequential requests of:

* ``POST /v1/models/{id}/predict`` (JSON) and ``/predict/npy`` (binary .npy);
* ``POST /v2/models/circle/infer`` with JSON tensors, and with the binary tensor extension
  (inputs and outputs as raw bytes), asking for the same answer as /v1 (outputs, labels,
  rounding bounds, radii, the bound).

Each kind is sent in interleaved rounds (kind after kind, round after round) after a
warm-up, so machine noise hits all alike. It prints requests/s and rows/s from the median
request time, the p50/p99 latency, and each row's ratio to ``/v1 predict`` JSON of the
same batch. The client runs on the same machine and shares its cores with the server.

Run: ``python bench/bench_oip.py [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from bench_service import AUTH, Server, expect, free_port, lipspline_argv, percentile, train_model, wait_ready

from lipspline.data import make_circle

BATCHES = (1, 1000)
NAME = "circle"


def npy(rows: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, rows)
    return buffer.getvalue()


def oip_json(rows: np.ndarray) -> bytes:
    tensor = {"name": "input", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def oip_binary(rows: np.ndarray) -> tuple[bytes, str]:
    raw = rows.astype("<f8").tobytes()
    header = json.dumps({"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP64",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    return header + raw, str(len(header))


def requests_for(model_id: str, rows: np.ndarray) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    """kind -> (path, body, headers): the same rows sent four ways."""
    binary, length = oip_binary(rows)
    return {
        "/v1 predict, JSON": (f"/v1/models/{model_id}/predict", json.dumps({"inputs": rows.tolist()}).encode(),
                              {"content-type": "application/json"}),
        "/v1 predict/npy, binary": (f"/v1/models/{model_id}/predict/npy", npy(rows),
                                    {"content-type": "application/x-npy"}),
        "/v2 infer, JSON": (f"/v2/models/{NAME}/infer", oip_json(rows), {"content-type": "application/json"}),
        "/v2 infer, binary": (f"/v2/models/{NAME}/infer", binary, {"content-type": "application/octet-stream",
                                                                   "Inference-Header-Content-Length": length}),
    }


def measure(client: httpx.Client, kinds: dict, count: int, rounds: int, warmup: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for path, body, headers in kinds.values():
        for _ in range(warmup):
            expect_ok(client.post(path, content=body, headers=headers))
    per_round = max(1, count // rounds)
    for _ in range(rounds):
        for kind, (path, body, headers) in kinds.items():
            for _ in range(per_round):
                begin = time.perf_counter()
                expect_ok(client.post(path, content=body, headers=headers))
                times[kind].append(time.perf_counter() - begin)
    return times


def expect_ok(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:300]}")


def print_table(results: dict[int, dict[str, list[float]]]) -> None:
    print("| batch | request | req/s (median) | rows/s | p50 / p99 ms | vs /v1 predict JSON |")
    print("|---:|---|---:|---:|---:|---:|")
    for batch, times in results.items():
        base = statistics.median(times["/v1 predict, JSON"])
        for kind, values in times.items():
            median = statistics.median(values)
            print(f"| {batch:,} | {kind} | {1 / median:,.0f} | {batch / median:,.0f} "
                  f"| {median * 1e3:.2f} / {percentile(values, 99) * 1e3:.2f} | {base / median:.2f}x |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke test)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--requests-small", type=int, default=400, help="requests per kind, batch 1")
    parser.add_argument("--requests-large", type=int, default=60, help="requests per kind, batch 1000")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    if args.quick:
        args.requests_small, args.requests_large, args.rounds, args.warmup = 60, 12, 2, 3
    counts = {1: args.requests_small, 1000: args.requests_large}

    circle = make_circle(1000, seed=0)
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"httpx {httpx.__version__}; one client, sequential requests on one keep-alive connection")
    with tempfile.TemporaryDirectory(prefix="lipspline-bench-oip-") as tmp:
        tmp_path = Path(tmp)
        port = free_port(args.host)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIPSPLINE_")}
        env.update(LIPSPLINE_DATA_DIR=str(tmp_path / "data"), LIPSPLINE_RATE_LIMIT_PER_S="1000000",
                   LIPSPLINE_RATE_LIMIT_BURST="1000000")
        server = Server("lipspline serve", lipspline_argv(args.host, port), env, tmp_path / "lipspline.log",
                        f"http://{args.host}:{port}", stop_signal=signal.SIGINT)
        try:
            server.start()
            wait_ready(server, lambda c: c.get("/readyz").status_code == 200)
            AUTH["Authorization"] = "Bearer " + (tmp_path / "data" / "api-key").read_text().strip()
            with httpx.Client(base_url=server.base_url, timeout=120.0, headers=AUTH) as client:
                _, model_id, train_s = train_model(client, circle.X, circle.y)
                expect(client.post("/v1/registered-models", json={"name": NAME}), 201)
                expect(client.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": model_id}), 201)
                expect(client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 1}), 200)
                print(f"model {model_id} trained in {train_s:.1f} s, registered as {NAME}@production")
                results = {}
                for batch in BATCHES:
                    rows = np.resize(circle.X, (batch, circle.X.shape[1])).astype(np.float64)
                    results[batch] = measure(client, requests_for(model_id, rows), counts[batch], args.rounds,
                                             args.warmup)
        except BaseException:
            print(f"--- server log tail ---\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            server.stop()
    print()
    print(f"## OIP infer vs /v1 predict ({counts[1]} requests per kind for batch 1, {counts[1000]} for batch 1000, "
          f"{args.rounds} interleaved rounds, after warm-up)")
    print()
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
