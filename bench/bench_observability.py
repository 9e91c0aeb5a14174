"""The cost of observability on the predict hot path: metrics + request id + JSON access log, on vs off.

In one run it:

1. starts ``lipspline serve`` in a temporary data dir and trains the small circle model of
   ``bench_service.py`` (it is only the trainer here);
2. starts two ``lipspline api`` processes on that same database, alike but for one thing:
   * **on**: what a deployment runs: per-request Prometheus metrics (route template,
     status, latency histogram, predict rows), the request id (read, bound, echoed) and
     one JSON access line per request, written to a file at INFO;
   * **off**: ``LIPSPLINE_REQUEST_TELEMETRY=false`` (no metrics middleware, no request id,
     no access line) and logging at WARNING;
3. times 1-row ``POST /v1/models/{id}/predict`` on both with the same client
   (``bench_service.run_block``: asyncio + httpx keep-alive) at concurrency 1 and 16,
   in rounds that alternate between the two servers, so machine noise hits both alike;
4. prints a table: requests/s, p50 and p99 per server, and on/off ratios; the overhead
   (1 - throughput ratio) must stay under 5 %.

Run: ``python bench/bench_observability.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import tempfile
from pathlib import Path

import httpx
from bench_service import (
    Cell,
    Server,
    expect,
    free_port,
    lipspline_argv,
    percentile,
    run_block,
    train_model,
    wait_ready,
)

from lipspline.data import make_circle

CONCURRENCIES = (1, 16)
HOST = "127.0.0.1"


def api_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "service.cli", "api", "--host", HOST, "--port", str(port)]


async def measure(servers: dict[str, str], path: str, body: bytes, requests: int, rounds: int,
                  warmup: int) -> dict[tuple[int, str], Cell]:
    cells: dict[tuple[int, str], Cell] = {}
    limits = httpx.Limits(max_connections=max(CONCURRENCIES), max_keepalive_connections=max(CONCURRENCIES))
    clients = {name: httpx.AsyncClient(base_url=url, limits=limits, timeout=60, headers=headers)
               for name, (url, headers) in servers.items()}
    try:
        for client in clients.values():
            await run_block(client, path, body, warmup, 4, Cell())
        for concurrency in CONCURRENCIES:
            for round_index in range(rounds):
                # alternate which server goes first, round by round
                order = list(clients) if round_index % 2 == 0 else list(reversed(clients))
                for name in order:
                    cell = cells.setdefault((concurrency, name), Cell())
                    await run_block(clients[name], path, body, requests // rounds, concurrency, cell)
    finally:
        for client in clients.values():
            await client.aclose()
    return cells


def print_table(cells: dict[tuple[int, str], Cell]) -> float:
    print("| concurrency | server | requests/s | p50 ms | p99 ms | on/off throughput | overhead |")
    print("|---|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    for concurrency in CONCURRENCIES:
        off, on = cells[(concurrency, "off")], cells[(concurrency, "on")]
        rate = {name: cell.requests / cell.wall_s for name, cell in (("off", off), ("on", on))}
        for name, cell in (("off", off), ("on", on)):
            ratio = rate["on"] / rate["off"]
            extra = f"{ratio:.3f} | {100 * (1 - ratio):+.1f} %" if name == "on" else " | "
            print(f"| {concurrency} | {name} | {rate[name]:.0f} | {1000 * percentile(cell.latencies, 50):.2f} | "
                  f"{1000 * percentile(cell.latencies, 99):.2f} | {extra} |")
        worst = max(worst, 1 - rate["on"] / rate["off"])
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke test)")
    args = parser.parse_args()
    requests, rounds, warmup = (1200, 6, 100) if args.quick else (8000, 10, 400)
    workdir = Path(tempfile.mkdtemp(prefix="lipspline-bench-obs-"))
    base_env = dict(os.environ, LIPSPLINE_DATA_DIR=str(workdir / "data"), LIPSPLINE_DATABASE_URL="",
                    LIPSPLINE_BROKER_URL="embedded://", LIPSPLINE_RATE_LIMIT_PER_S="1000000",
                    LIPSPLINE_RATE_LIMIT_BURST="1000000", OMP_NUM_THREADS="1")
    trainer_port = free_port(HOST)
    trainer = Server("serve", lipspline_argv(HOST, trainer_port), base_env, workdir / "serve.log",
                     f"http://{HOST}:{trainer_port}", stop_signal=signal.SIGINT)
    variants = {
        "on": {"LIPSPLINE_LOG_FORMAT": "json", "LIPSPLINE_LOG_LEVEL": "INFO"},
        "off": {"LIPSPLINE_REQUEST_TELEMETRY": "false", "LIPSPLINE_LOG_LEVEL": "WARNING"},
    }
    apis: dict[str, Server] = {}
    try:
        trainer.start()
        wait_ready(trainer, lambda c: c.get("/readyz").status_code == 200)
        key = (workdir / "data" / "api-key").read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}
        circle = make_circle(300, seed=0)
        X, y = circle.X, circle.y
        with httpx.Client(base_url=trainer.base_url, headers=headers, timeout=60) as client:
            _, model_id, _ = train_model(client, X, y)
        trainer.stop()
        for name, extra in variants.items():
            port = free_port(HOST)
            env = dict(base_env, LIPSPLINE_RECONCILE_EVERY_S="0", **extra)
            apis[name] = Server(name, api_argv(port), env, workdir / f"api-{name}.log", f"http://{HOST}:{port}")
            apis[name].start()
        for server in apis.values():
            wait_ready(server, lambda c: c.get("/readyz").status_code == 200)
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
                expect(client.post(f"/v1/models/{model_id}/predict", json={"inputs": [[0.1, 0.2]]}), 200)  # load it
        body = json.dumps({"inputs": X[:1].tolist()}).encode()
        servers = {name: (server.base_url, headers) for name, server in apis.items()}
        cells = asyncio.run(measure(servers, f"/v1/models/{model_id}/predict", body, requests, rounds, warmup))
        print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
              f"{platform.python_version()}; 1-row predict, {requests} requests per cell in {rounds} "
              "alternating rounds\n")
        worst = print_table(cells)
        access_lines = sum(1 for line in (workdir / "api-on.log").read_text().splitlines()
                           if '"logger":"lipspline.access"' in line)
        print(f"\nJSON access lines written by 'on': {access_lines}; worst overhead {100 * worst:.1f} %")
        return 0 if worst < 0.05 else 1
    finally:
        for server in [*apis.values(), trainer]:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
