"""Service speed: predict throughput/latency against a bare FastAPI ceiling, and job dispatch latency.

In one run it:

1. starts ``lipspline serve`` (API + embedded worker, SQLite, embedded broker) in a
   temporary data dir on a free port, uploads the circle data set and trains one
   small model (2 hidden deep-spline units, 20 epochs);
2. starts the baseline, ``bench/baseline_app.py``: one POST endpoint that parses a
   body of the same shape with pydantic and returns a constant, served by uvicorn
   with the same settings (one process, same host, plain HTTP). It is the ceiling:
   HTTP + JSON + validation, no model;
3. times ``POST /v1/models/{id}/predict`` on both with the same client (asyncio +
   httpx.AsyncClient, keep-alive, bodies serialised once) for batches of 1 and 1000
   rows at concurrency 1 and 32, after a warm-up. Each cell is split into rounds and
   the servers alternate round by round, so machine noise hits both alike. It
   reports requests/s, rows/s and p50/p99 latency;
   then fairness: the 1-row latency alone and while 16 senders flood the same server
   with 1,000-row batches (a burst of large predicts must not starve small ones);
   then rows/s by body format (JSON against ``application/x-npy``), for the circle
   model and for a 784-feature model (image-sized rows);
4. times job dispatch: ``POST /v1/jobs`` (1-epoch config) until the job shows
   ``started_at`` (polled every 10 ms), one job at a time on an idle worker, plus
   the server-side ``started_at - created_at`` from the job rows;
5. prints markdown tables and stops both servers, also on errors: SIGINT to
   ``lipspline serve`` (its own shutdown path, which stops the embedded worker),
   SIGTERM to the baseline; wait; then anything left in their process groups gets
   SIGTERM, and SIGKILL on timeout.

The client runs on the same machine and shares its cores with the servers: the
absolute numbers (the baseline's most of all) are bounded by the client too.

``--new-connection``: only the 1-row hot path, per request, side by side with the baseline:
each request on a NEW TCP connection (connect, send, read the whole response, close, as many
platform gateways do) and, in the same rounds, on one keep-alive connection. The client is a
plain blocking socket (no HTTP library on the client side), so what differs between the two
servers is the server's work. It prints the p50 / p90 per request and the ratio
baseline p50 / lipspline p50 (the issue's "predict >= 0.8x bare").

Run: ``python bench/bench_service.py [--quick] [--new-connection]`` (``--quick``: fewer requests and
jobs, for a smoke test; ``make bench`` runs the full one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from lipspline.data import make_circle

ROOT = Path(__file__).resolve().parent.parent
BASELINE_APP = ROOT / "bench" / "baseline_app.py"
#: an image-sized model (784 features, as MNIST) for the body-format comparison at width
WIDE_FEATURES = 784
WIDE_CONFIG = {
    "architecture": {"hidden": [64], "activation": "deepspline"},
    "training": {"epochs": 2, "batch_size": 64, "seed": 0},
}
MODEL_CONFIG = {
    "architecture": {"hidden": [2], "activation": "deepspline"},
    "spline": {"knots": 21, "range": 3.0},
    "objective": {"mode": "bv2", "lambda": 1e-4, "mu": 1e-4},
    "training": {"epochs": 20, "batch_size": 32, "lr": 0.01, "seed": 0},
}
DISPATCH_CONFIG = {**MODEL_CONFIG, "training": {**MODEL_CONFIG["training"], "epochs": 1}}
CONCURRENCIES = (1, 32)
#: concurrent senders of 1,000-row batches in the fairness section
HEAVY_SENDERS = 16
BATCHES = (1, 1000)
POLL_S = 0.010
TERMINAL = {"succeeded", "failed", "cancelled"}


# --------------------------------------------------------------------------- servers


#: Authorization header for every request (filled in once the server has written its key)
AUTH: dict[str, str] = {}

def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    base_url: str
    # uvicorn re-raises SIGTERM after its graceful shutdown (default handler: instant exit), so
    # `lipspline serve` would skip stopping its embedded worker; SIGINT lets its cleanup run.
    stop_signal: int = signal.SIGTERM
    process: subprocess.Popen | None = None
    _log: object = None

    def start(self) -> None:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        # own session: on a hung shutdown the whole group (serve + its worker) can be killed
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 30.0) -> None:
        """Signal the server, wait; then end whatever is left of its process group (TERM, wait, KILL)."""
        process = self.process
        if process is not None:
            if process.poll() is None:
                process.send_signal(self.stop_signal)
                try:
                    process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait()
            # children (the embedded worker) live in the group the server leads
            if _signal_group(process.pid, signal.SIGTERM) and not _wait_group(process.pid, timeout_s):
                _signal_group(process.pid, signal.SIGKILL)
                _wait_group(process.pid, 5.0)
        if self._log is not None:
            self._log.close()
            self._log = None


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _wait_group(pgid: int, timeout_s: float) -> bool:
    """True once the group is empty."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _signal_group(pgid, 0):
            return True
        time.sleep(0.05)
    return False


def wait_ready(server: Server, probe, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if not server.alive():
                raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
            try:
                if probe(client):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{server.name} not ready after {timeout_s:.0f} s:\n{server.log_tail()}")


def lipspline_argv(host: str, port: int) -> list[str]:
    exe = shutil.which("lipspline")
    head = [exe] if exe else [sys.executable, "-m", "service.cli"]
    return [*head, "serve", "--host", host, "--port", str(port)]


# --------------------------------------------------------------------------- setup


def expect(response: httpx.Response, status: int) -> dict:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response.json()


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite returns naive UTC


def train_model(client: httpx.Client, X, y, config: dict = MODEL_CONFIG,
                name: str = "circle") -> tuple[str, str, float]:
    dataset = expect(client.post("/v1/datasets", json={"name": name, "inputs": X.tolist(), "targets": y.tolist()}),
                     201)
    begin = time.perf_counter()
    job = expect(client.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": config}), 202)
    state = wait_job(client, job["id"], timeout_s=600.0)
    if state["status"] != "succeeded":
        raise RuntimeError(f"training job {job['id']} ended {state['status']}: {state.get('error')}")
    return dataset["id"], state["model_id"], time.perf_counter() - begin


def wait_job(client: httpx.Client, job_id: str, timeout_s: float, poll_s: float = 0.05) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = expect(client.get(f"/v1/jobs/{job_id}"), 200)
        if state["status"] in TERMINAL:
            return state
        time.sleep(poll_s)
    raise RuntimeError(f"job {job_id} not finished after {timeout_s:.0f} s")


# --------------------------------------------------------------------------- predict load


@dataclass
class Cell:
    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    requests: int = 0


async def run_block(client: httpx.AsyncClient, path: str, body: bytes, n: int, concurrency: int, cell: Cell) -> None:
    """``n`` requests from ``concurrency`` closed-loop senders; appends to ``cell``."""
    headers = {"content-type": "application/json"}
    remaining = n
    latencies: list[float] = []

    async def sender() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            begin = time.perf_counter()
            response = await client.post(path, content=body, headers=headers)
            await response.aread()
            latencies.append(time.perf_counter() - begin)
            if response.status_code != 200:
                raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:500]}")

    begin = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(min(concurrency, n))))
    cell.wall_s += time.perf_counter() - begin
    cell.latencies += latencies
    cell.requests += n


async def predict_load(targets: dict[str, tuple[str, str]], X, counts: dict[int, int], rounds: int,
                       warmup: int) -> dict[tuple[int, int, str], Cell]:
    """targets: name -> (base_url, path). Returns (batch, concurrency, name) -> Cell."""
    bodies = {b: json.dumps({"inputs": X[:b].tolist()}).encode() for b in BATCHES}
    results: dict[tuple[int, int, str], Cell] = {}
    limits = httpx.Limits(max_connections=max(CONCURRENCIES), max_keepalive_connections=max(CONCURRENCIES))
    clients = {name: httpx.AsyncClient(base_url=url, limits=limits, timeout=120.0, headers=AUTH)
               for name, (url, _) in targets.items()}
    try:
        for batch in BATCHES:
            for concurrency in CONCURRENCIES:
                for name, (_, path) in targets.items():  # warm-up: connections, model cache, code paths
                    await run_block(clients[name], path, bodies[batch], max(warmup, concurrency), concurrency, Cell())
                per_round = [counts[batch] // rounds + (1 if r < counts[batch] % rounds else 0) for r in range(rounds)]
                names = list(targets)
                for r, n in enumerate(per_round):
                    order = names if r % 2 == 0 else names[::-1]
                    for name in order:
                        cell = results.setdefault((batch, concurrency, name), Cell())
                        await run_block(clients[name], targets[name][1], bodies[batch], n, concurrency, cell)
    finally:
        for client in clients.values():
            await client.aclose()
    return results


@dataclass
class MixedCell:
    """1-row latencies alone and while large batches flood the server, and the large batches' rate."""

    alone: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)
    large_requests: int = 0
    large_wall_s: float = 0.0


async def mixed_load(targets: dict[str, tuple[str, str]], X, small_requests: int, heavy_senders: int,
                     rounds: int) -> dict[str, MixedCell]:
    """Fairness: one closed-loop sender of 1-row predicts, alone and beside ``heavy_senders`` senders
    of 1,000-row predicts; servers alternate round by round. The 1-row p99 under load is the measure."""
    small = json.dumps({"inputs": X[:1].tolist()}).encode()
    large = json.dumps({"inputs": X[:1000].tolist()}).encode()
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=heavy_senders + 2, max_keepalive_connections=heavy_senders + 2)
    cells = {name: MixedCell() for name in targets}
    clients = {name: httpx.AsyncClient(base_url=url, limits=limits, timeout=120.0, headers=AUTH)
               for name, (url, _) in targets.items()}

    async def post(client: httpx.AsyncClient, path: str, body: bytes) -> float:
        begin = time.perf_counter()
        response = await client.post(path, content=body, headers=headers)
        await response.aread()
        if response.status_code != 200:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:300]}")
        return time.perf_counter() - begin

    try:
        for r in range(rounds):
            names = list(targets) if r % 2 == 0 else list(targets)[::-1]
            for name in names:
                client, path, cell = clients[name], targets[name][1], cells[name]
                n = small_requests // rounds
                for _ in range(n):
                    cell.alone.append(await post(client, path, small))
                done = asyncio.Event()

                async def heavy(client: httpx.AsyncClient = client, path: str = path, cell: MixedCell = cell,
                                done: asyncio.Event = done) -> None:
                    while not done.is_set():
                        await post(client, path, large)
                        cell.large_requests += 1

                begin = time.perf_counter()
                flood = [asyncio.create_task(heavy()) for _ in range(heavy_senders)]
                await asyncio.sleep(0.2)  # the flood is under way before the first measured request
                for _ in range(n):
                    cell.loaded.append(await post(client, path, small))
                done.set()
                await asyncio.gather(*flood)
                cell.large_wall_s += time.perf_counter() - begin
    finally:
        for client in clients.values():
            await client.aclose()
    return cells


def binary_throughput(base_url: str, model_id: str, X, repeats: int, rows_per_request: int = 10_000) -> dict:
    """Rows/s of one client sending ``application/x-npy`` bodies, against 1,000-row JSON bodies.

    Sequential requests on one keep-alive connection; the median request time of each kind.
    """
    import io

    import numpy as np

    rows = np.resize(np.asarray(X, dtype=np.float64), (rows_per_request, X.shape[1]))
    buffer = io.BytesIO()
    np.save(buffer, rows)
    binary = buffer.getvalue()
    json_rows = min(1000, rows_per_request)
    as_json = json.dumps({"inputs": rows[:json_rows].tolist()}).encode()
    times: dict[str, list[float]] = {"npy": [], "json": []}
    with httpx.Client(base_url=base_url, timeout=120.0, headers=AUTH) as client:
        for _ in range(repeats + 2):  # the first two of each are warm-up
            for kind, path, body, ctype in (
                ("npy", f"/v1/models/{model_id}/predict/npy", binary, "application/x-npy"),
                ("json", f"/v1/models/{model_id}/predict", as_json, "application/json"),
            ):
                begin = time.perf_counter()
                response = client.post(path, content=body, headers={"content-type": ctype})
                times[kind].append(time.perf_counter() - begin)
                if response.status_code != 200:
                    raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:300]}")
    return {
        "features": X.shape[1],
        "npy_rows": rows_per_request,
        "json_rows": json_rows,
        "npy_rows_per_s": rows_per_request / statistics.median(times["npy"][2:]),
        "json_rows_per_s": json_rows / statistics.median(times["json"][2:]),
    }


def _raw_request(host: str, path: str, body: bytes, keep_alive: bool) -> bytes:
    """The bytes of one ``POST path`` with a JSON body, as a minimal HTTP/1.1 client sends them."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n")
    for name, value in AUTH.items():
        head += f"{name}: {value}\r\n"
    if not keep_alive:
        head += "connection: close\r\n"
    return (head + "\r\n").encode() + body


def _read_response(sock: socket.socket) -> int:
    """Read one whole response (headers, then content-length bytes); its status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"connection closed mid-response: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed mid-body")
        rest += chunk
    return int(head.split(b" ", 2)[1])


def connection_latency(targets: dict[str, tuple[str, str]], X, requests: int, rounds: int,
                       warmup: int) -> dict[tuple[str, str], list[float]]:
    """1-row predict latency per request: a new connection each time, and one keep-alive connection.

    Blocking sockets, one request at a time; the servers alternate round by round, the two modes
    within each round. Returns (mode, server) -> latencies in seconds.
    """
    body = json.dumps({"inputs": X[:1].tolist()}).encode()
    out: dict[tuple[str, str], list[float]] = {}
    for url, path in targets.values():
        host, port = url.removeprefix("http://").rsplit(":", 1)
        for _ in range(warmup):
            with socket.create_connection((host, int(port))) as sock:
                sock.sendall(_raw_request(host, path, body, keep_alive=False))
                _read_response(sock)
    for r in range(rounds):
        names = list(targets) if r % 2 == 0 else list(targets)[::-1]
        for name in names:
            url, path = targets[name]
            host, port = url.removeprefix("http://").rsplit(":", 1)
            address = (host, int(port))
            fresh, kept = _raw_request(host, path, body, False), _raw_request(host, path, body, True)
            times = out.setdefault(("new connection", name), [])
            for _ in range(requests // rounds):
                begin = time.perf_counter()
                with socket.create_connection(address) as sock:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sock.sendall(fresh)
                    status = _read_response(sock)
                times.append(time.perf_counter() - begin)
                if status != 200:
                    raise RuntimeError(f"POST {path}: {status}")
            times = out.setdefault(("keep-alive", name), [])
            with socket.create_connection(address) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(requests // rounds):
                    begin = time.perf_counter()
                    sock.sendall(kept)
                    status = _read_response(sock)
                    times.append(time.perf_counter() - begin)
                    if status != 200:
                        raise RuntimeError(f"POST {path}: {status}")
    return out


def print_connection_table(latencies: dict[tuple[str, str], list[float]]) -> None:
    print("| client | lipspline p50 / p90 ms | baseline p50 / p90 ms | ratio (baseline p50 / lipspline p50) "
          "| lipspline - baseline p50 ms |")
    print("|---|---:|---:|---:|---:|")
    for mode in ("new connection", "keep-alive"):
        ours, base = latencies[(mode, "lipspline")], latencies[(mode, "baseline")]
        ours_p50, base_p50 = statistics.median(ours), statistics.median(base)
        print(f"| {mode} ({len(ours)} req) | {ours_p50 * 1e3:.3f} / {percentile(ours, 90) * 1e3:.3f} "
              f"| {base_p50 * 1e3:.3f} / {percentile(base, 90) * 1e3:.3f} | {base_p50 / ours_p50:.2f} "
              f"| {(ours_p50 - base_p50) * 1e3:+.3f} |")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else float("nan")


# --------------------------------------------------------------------------- dispatch


def dispatch_latency(client: httpx.Client, dataset_id: str, jobs: int) -> list[dict]:
    """One job at a time on an idle worker: POST -> first poll that shows started_at."""
    samples = []
    for _ in range(jobs):
        begin = time.perf_counter()
        job = expect(client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": DISPATCH_CONFIG}), 202)
        posted = time.perf_counter()
        deadline = begin + 120.0
        while True:
            state = expect(client.get(f"/v1/jobs/{job['id']}"), 200)
            if state.get("started_at") or state["status"] != "queued":
                seen = time.perf_counter()
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"job {job['id']} still queued after 120 s")
            time.sleep(POLL_S)
        final = wait_job(client, job["id"], timeout_s=300.0)
        if final["status"] != "succeeded":
            raise RuntimeError(f"dispatch job {job['id']} ended {final['status']}: {final.get('error')}")
        server = (parse_time(final["started_at"]) - parse_time(final["created_at"])).total_seconds()
        samples.append({"post": posted - begin, "observed": seen - begin, "server": server,
                        "first_status": state["status"]})
    return samples


# --------------------------------------------------------------------------- report


def fmt_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:.1f} / {percentile(values, 99) * 1e3:.1f}"


def print_predict_table(results: dict[tuple[int, int, str], Cell]) -> None:
    print("| scenario | lipspline req/s | baseline req/s | ratio | lipspline p50/p99 ms | baseline p50/p99 ms "
          "| lipspline rows/s | baseline rows/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for batch in BATCHES:
        for concurrency in CONCURRENCIES:
            ours, base = results[(batch, concurrency, "lipspline")], results[(batch, concurrency, "baseline")]
            ours_rps, base_rps = ours.requests / ours.wall_s, base.requests / base.wall_s
            print(f"| batch {batch}, concurrency {concurrency} ({ours.requests} req) | {ours_rps:,.0f} "
                  f"| {base_rps:,.0f} | {ours_rps / base_rps:.2f} | {fmt_ms(ours.latencies)} "
                  f"| {fmt_ms(base.latencies)} | {ours_rps * batch:,.0f} | {base_rps * batch:,.0f} |")


def print_mixed_table(cells: dict[str, MixedCell], heavy_senders: int) -> None:
    print("| server | 1-row p50 / p99 ms, alone | 1-row p50 / p99 ms, under load | p99 ratio (load / alone) "
          "| 1,000-row req/s during the load |")
    print("|---|---:|---:|---:|---:|")
    for name, cell in cells.items():
        ratio = percentile(cell.loaded, 99) / percentile(cell.alone, 99)
        print(f"| {name} | {fmt_ms(cell.alone)} | {fmt_ms(cell.loaded)} | {ratio:.1f} "
              f"| {cell.large_requests / cell.large_wall_s:,.1f} |")


def print_dispatch_table(samples: list[dict]) -> None:
    print("| measure | median ms | p90 ms | min ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    rows = [
        ("POST /v1/jobs round trip", [s["post"] for s in samples]),
        (f"POST -> started_at seen (client, {POLL_S * 1e3:.0f} ms polls)", [s["observed"] for s in samples]),
        ("started_at - created_at (server rows)", [s["server"] for s in samples]),
    ]
    for label, values in rows:
        print(f"| {label} | {statistics.median(values) * 1e3:.1f} | {percentile(values, 90) * 1e3:.1f} "
              f"| {min(values) * 1e3:.1f} | {max(values) * 1e3:.1f} |")
    missed = sum(1 for s in samples if s["first_status"] != "running")
    if missed:
        print(f"({missed} of {len(samples)} jobs were already past running at the first poll that saw them started)")


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests and jobs (smoke test)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--requests-small", type=int, default=300, help="requests per cell, batch 1")
    parser.add_argument("--requests-large", type=int, default=60, help="requests per cell, batch 1000")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up requests per server and cell")
    parser.add_argument("--jobs", type=int, default=10, help="jobs for the dispatch latency")
    parser.add_argument("--new-connection", action="store_true",
                        help="only the 1-row latency per request, new connection each time and keep-alive")
    parser.add_argument("--requests-connection", type=int, default=2000,
                        help="requests per server and client mode for --new-connection")
    args = parser.parse_args()
    if args.quick:
        args.requests_small, args.requests_large = 60, 12
        args.rounds, args.warmup, args.jobs = 2, 5, 3
    counts = {1: args.requests_small, 1000: args.requests_large}
    rounds = max(1, min(args.rounds, *counts.values()))

    circle = make_circle(1000, seed=0)
    X, y = circle.X, circle.y
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"httpx {httpx.__version__}")
    print(f"client: asyncio + httpx.AsyncClient in this process, on the same machine: it shares the "
          f"{os.cpu_count()} cores with both servers (and the lipspline worker), so the ceiling is partly the client's")

    with tempfile.TemporaryDirectory(prefix="lipspline-bench-") as tmp:
        tmp_path = Path(tmp)
        lip_port = free_port(args.host)
        lip_env = {k: v for k, v in os.environ.items() if not k.startswith("LIPSPLINE_")}
        lip_env["LIPSPLINE_DATA_DIR"] = str(tmp_path / "data")
        # the bench measures serving, not throttling: lift the per-key rate limit
        lip_env["LIPSPLINE_RATE_LIMIT_PER_S"] = "1000000"
        lip_env["LIPSPLINE_RATE_LIMIT_BURST"] = "1000000"
        lip = Server("lipspline serve", lipspline_argv(args.host, lip_port), lip_env, tmp_path / "lipspline.log",
                     f"http://{args.host}:{lip_port}", stop_signal=signal.SIGINT)
        base_port = free_port(args.host)
        base = Server("baseline", [sys.executable, str(BASELINE_APP), "--host", args.host, "--port", str(base_port)],
                      dict(os.environ), tmp_path / "baseline.log", f"http://{args.host}:{base_port}")
        try:
            lip.start()
            base.start()
            start = time.perf_counter()
            wait_ready(lip, lambda c: c.get("/readyz").status_code == 200)
            wait_ready(base, lambda c: c.post("/v1/models/x/predict", json={"inputs": [[0.0, 0.0]]}).status_code == 200)
            # the embedded default wrote the default tenant's API key on first start; both servers
            # get the same Authorization header, so the baseline parses the same request bytes
            AUTH["Authorization"] = "Bearer " + (tmp_path / "data" / "api-key").read_text().strip()
            print(f"servers ready in {time.perf_counter() - start:.1f} s "
                  f"(lipspline on :{lip_port}, baseline on :{base_port})")

            with httpx.Client(base_url=lip.base_url, timeout=60.0, headers=AUTH) as client:
                dataset_id, model_id, train_s = train_model(client, X, y)
                model = expect(client.get(f"/v1/models/{model_id}"), 200)
                check = expect(client.post(f"/v1/models/{model_id}/predict",
                                           json={"inputs": X[:2].tolist(), "epsilon": 0.1}), 200)
            print(f"model {model_id}: trained in {train_s:.1f} s (job wall time incl. queueing), "
                  f"certified l2 bound {model['lipschitz']['certified']:.4g}, "
                  f"metrics {json.dumps(model['metrics'], default=str)[:160]}")
            print(f"predict check: predictions {check['predictions']}, output_bound {check.get('output_bound')}")

            targets = {
                "lipspline": (lip.base_url, f"/v1/models/{model_id}/predict"),
                "baseline": (base.base_url, f"/v1/models/{model_id}/predict"),
            }
            if args.new_connection:
                n = 300 if args.quick else args.requests_connection
                connections = connection_latency(targets, X, n, max(2, rounds * 2), args.warmup * 5)
                print()
                print(f"## 1-row predict per request: new connection vs keep-alive ({n} requests per server "
                      f"and mode, {max(2, rounds * 2)} interleaved rounds, blocking socket client)")
                print()
                print_connection_table(connections)
                return 0
            results = asyncio.run(predict_load(targets, X, counts, rounds, args.warmup))
            mixed = asyncio.run(mixed_load(targets, X, args.requests_small, HEAVY_SENDERS, rounds))
            binary = binary_throughput(lip.base_url, model_id, X, 3 if args.quick else 15)
            wide_X = np.random.default_rng(0).normal(size=(400, WIDE_FEATURES))
            with httpx.Client(base_url=lip.base_url, timeout=60.0, headers=AUTH) as client:
                _, wide_id, _ = train_model(client, wide_X, (wide_X[:, 0] > 0).astype(int), WIDE_CONFIG, "wide")
            wide = binary_throughput(lip.base_url, wide_id, wide_X, 3 if args.quick else 10, rows_per_request=1000)
            with httpx.Client(base_url=lip.base_url, timeout=60.0, headers=AUTH) as client:
                samples = dispatch_latency(client, dataset_id, args.jobs)
        except BaseException:
            for server in (lip, base):
                print(f"--- {server.name} log tail ---\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            lip.stop()
            base.stop()

    print()
    print(f"## predict: lipspline vs bare FastAPI (ceiling); {counts[1]} requests per cell for batch 1, "
          f"{counts[1000]} for batch 1000, {rounds} interleaved rounds, after warm-up")
    print("ratio = lipspline req/s / baseline req/s; latency is per request, client-side")
    print()
    print_predict_table(results)
    print()
    print(f"## fairness: 1-row predicts beside {HEAVY_SENDERS} senders of 1,000-row predicts "
          f"({args.requests_small} 1-row requests per server and condition, {rounds} interleaved rounds)")
    print()
    print_mixed_table(mixed, HEAVY_SENDERS)
    print()
    print("## predict rows/s by body format (lipspline, one client, sequential, medians)")
    print()
    print("| features | body | rows per request | rows/s | vs JSON |")
    print("|---:|---|---:|---:|---:|")
    for result in (binary, wide):
        print(f"| {result['features']} | JSON | {result['json_rows']:,} | {result['json_rows_per_s']:,.0f} | 1.00x |")
        print(f"| {result['features']} | application/x-npy | {result['npy_rows']:,} | "
              f"{result['npy_rows_per_s']:,.0f} | {result['npy_rows_per_s'] / result['json_rows_per_s']:.2f}x |")
    print()
    print(f"## job dispatch ({len(samples)} jobs, 1 epoch, one at a time on the idle embedded worker)")
    print()
    print_dispatch_table(samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
