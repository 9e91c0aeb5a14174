"""Bounded loopback load test: many tenants, malformed bodies, cross-tenant probes, all at once.

In one run it:

1. starts ``lipspline serve`` (API + embedded worker, SQLite, embedded broker) in a temporary
   data dir on a free port, with the per-key rate limit lifted (``--rate-limited`` keeps the
   defaults, 100/s burst 200; 429s are counted on their own either way);
2. creates three tenants with the real CLI (``lipspline keys create --tenant NAME``), and for
   each uploads its own data set and trains its own small model (circle classification,
   linear regression, quadrant classification with text labels; all 2 features, so a model
   answered across tenants would answer 200, not 422);
3. downloads each model (``/download``: config + safetensors) and rebuilds it locally, the
   reference every answer is checked against;
4. sends ``--requests`` (default 5,000) ``POST /v1/models/{id}/predict`` from ``--concurrency``
   (default 64) closed-loop asyncio senders over keep-alive httpx connections, in a shuffled
   mix: ``--malformed`` (10 %) malformed bodies of eight kinds, ``--cross`` (10 %) requests
   with another tenant's model id (must be 404), the rest valid batches of 1-16 rows on the
   tenant's own model (outputs must equal the local rebuild's, predictions exactly, and
   ``lipschitz_bound`` the model's certified bound);
5. prints a table per kind of request (count, status codes, p50/p99 latency) and the verdicts:
   5xx, cross-tenant answers, wrong answers, malformed bodies that were not a 4xx, 429s,
   transport errors; then /readyz and the server log's unhandled errors. Exit status 1 when a
   verdict fails.

The client shares the machine's cores with the server and its worker: throughput is a
loopback figure, bounded by the client too.

Run: ``python bench/bench_load.py [--quick] [--requests N] [--concurrency C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_service import Server, expect, free_port, lipspline_argv, percentile, wait_ready  # noqa: E402

from lipspline.data import make_circle  # noqa: E402
from lipspline.nn.serialization import model_from_parts  # noqa: E402

TENANTS = ("alpha", "beta", "gamma")
CONFIG = {
    "architecture": {"hidden": [4], "activation": "deepspline"},
    "spline": {"knots": 11, "range": 3.0},
    "objective": {"mode": "bv2", "lambda": 1e-4, "mu": 1e-4},
    "training": {"epochs": 15, "batch_size": 32, "lr": 0.02, "seed": 0, "validation_split": 0.0},
    "device": "cpu",
}
TERMINAL = {"succeeded", "failed", "cancelled"}
#: malformed predict bodies: each must get a 4xx problem
MALFORMED: dict[str, bytes] = {
    "nan": b'{"inputs": [[0.1, NaN]]}',
    "wrong_width": b'{"inputs": [[0.1, 0.2, 0.3]]}',
    "empty": b'{"inputs": []}',
    "strings": b'{"inputs": [["a", "b"]]}',
    "not_json": b'{"inputs": [[0.1, 0.2]',
    "no_inputs": b'{"rows": [[0.1, 0.2]]}',
    "too_deep": b'{"inputs": [[[0.1, 0.2]]]}',
    "huge": b'{"inputs": [[1e300, 0.0]]}',
}
RTOL, ATOL = 1e-5, 1e-6


# --------------------------------------------------------------------------- data sets


def datasets() -> dict[str, dict]:
    rng = np.random.default_rng(3)
    circle = make_circle(400, seed=1)
    x_reg = rng.uniform(-1, 1, size=(400, 2))
    y_reg = x_reg[:, 0] - 2 * x_reg[:, 1] + 0.05 * rng.normal(size=400)
    x_quad = rng.uniform(-1, 1, size=(400, 2))
    y_quad = np.where(x_quad[:, 0] * x_quad[:, 1] > 0, "same", "diff")
    return {
        "alpha": {"name": "circle", "inputs": circle.X.tolist(), "targets": circle.y.tolist()},
        "beta": {"name": "plane", "inputs": x_reg.tolist(), "targets": y_reg.tolist(), "task": "regression"},
        "gamma": {"name": "quadrants", "inputs": x_quad.tolist(), "targets": y_quad.tolist()},
    }


# --------------------------------------------------------------------------- server


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]


def start_serve(env: dict[str, str], log_path: Path, host: str) -> Server:
    """``lipspline serve`` on a free port, ready; SIGINT on stop so it stops its embedded worker."""
    port = free_port(host)
    server = Server("lipspline serve", lipspline_argv(host, port), env, log_path, f"http://{host}:{port}",
                    stop_signal=signal.SIGINT)
    server.start()
    wait_ready(server, lambda c: c.get("/readyz").status_code == 200)
    return server


@dataclass
class Tenant:
    name: str
    key: str
    model_id: str = ""
    bound: float = 0.0
    model: object = None


def set_up_tenants(server: Server) -> dict[str, Tenant]:
    tenants = {}
    for name in TENANTS:
        key = subprocess.run(cli("keys", "create", "--tenant", name), env=server.env, cwd=ROOT, check=True,
                             capture_output=True, text=True, timeout=120).stdout.strip()
        tenants[name] = Tenant(name, key)
    jobs = {}
    for name, body in datasets().items():
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {tenants[name].key}"}) as http:
            dataset = expect(http.post("/v1/datasets", json=body), 201)
            jobs[name] = expect(http.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": CONFIG}), 202)["id"]
    for name, job_id in jobs.items():
        tenant = tenants[name]
        auth = {"Authorization": f"Bearer {tenant.key}"}
        with httpx.Client(base_url=server.base_url, headers=auth, timeout=60) as http:
            deadline = time.monotonic() + 600
            while (state := expect(http.get(f"/v1/jobs/{job_id}"), 200))["status"] not in TERMINAL:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {job_id} not finished: {state}")
                time.sleep(0.1)
            if state["status"] != "succeeded":
                raise RuntimeError(f"{name}: training ended {state['status']}: {state.get('error')}")
            tenant.model_id = state["model_id"]
            tenant.bound = expect(http.get(f"/v1/models/{tenant.model_id}"), 200)["lipschitz"]["certified"]
            download = http.get(f"/v1/models/{tenant.model_id}/download")
            with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
                tenant.model = model_from_parts(json.loads(archive.read("model.json")),
                                                archive.read("weights.safetensors"))
            tenant.model.network.to(torch.float32).eval()  # as the API serves it
    return tenants


# --------------------------------------------------------------------------- load


@dataclass
class Request:
    kind: str  # "valid", "cross", "malformed:<what>"
    tenant: str
    model_id: str
    body: bytes
    rows: np.ndarray | None = None
    owner: str | None = None


@dataclass
class Outcome:
    request: Request
    status: int  # 0: transport error
    latency_s: float
    content_type: str = ""
    body: bytes = b""
    verdict: str = "ok"  # ok, 5xx, leak, wrong, not_4xx, throttled, transport
    note: str = ""


def plan(tenants: dict[str, Tenant], n: int, malformed: float, cross: float, seed: int) -> list[Request]:
    rng = random.Random(seed)
    data_rng = np.random.default_rng(seed)
    names = list(tenants)
    requests = []
    n_malformed, n_cross = round(n * malformed), round(n * cross)
    kinds = ["malformed"] * n_malformed + ["cross"] * n_cross + ["valid"] * (n - n_malformed - n_cross)
    rng.shuffle(kinds)
    for kind in kinds:
        tenant = rng.choice(names)
        if kind == "malformed":
            what = rng.choice(list(MALFORMED))
            requests.append(Request(f"malformed:{what}", tenant, tenants[tenant].model_id, MALFORMED[what]))
        elif kind == "cross":
            owner = rng.choice([t for t in names if t != tenant])
            body = json.dumps({"inputs": [[0.1, -0.2]]}).encode()
            requests.append(Request("cross", tenant, tenants[owner].model_id, body, owner=owner))
        else:
            rows = data_rng.uniform(-1.2, 1.2, size=(rng.randint(1, 16), 2))
            body = json.dumps({"inputs": rows.tolist()}).encode()
            requests.append(Request("valid", tenant, tenants[tenant].model_id, body, rows=rows))
    return requests


def judge(outcome: Outcome, tenants: dict[str, Tenant]) -> None:
    """Check one answer (after the timed run, so checking costs the client no time under load)."""
    request, status = outcome.request, outcome.status
    text = outcome.body[:300].decode(errors="replace")
    if status == 0:
        outcome.verdict = "transport"
    elif status >= 500:
        outcome.verdict, outcome.note = "5xx", text
    elif status == 429:
        outcome.verdict = "throttled"
    elif request.kind == "cross":
        if status != 404:  # anything else says the model was found for a tenant that does not own it
            outcome.verdict, outcome.note = "leak", f"{status} {text}"
    elif request.kind.startswith("malformed"):
        if not (400 <= status < 500 and outcome.content_type.startswith("application/problem+json")):
            outcome.verdict, outcome.note = "not_4xx", f"{status} {text}"
    else:
        if status != 200:
            outcome.verdict, outcome.note = "wrong", f"{status} {text}"
            return
        body = json.loads(outcome.body)
        tenant = tenants[request.tenant]
        model = tenant.model
        expected = model.outputs(request.rows)
        expected_predictions = model.predictions_from_outputs(expected)
        outputs = np.asarray(body["outputs"], dtype=np.float64)
        reference = expected.detach().double().numpy() if hasattr(expected, "detach") else np.asarray(expected)
        if (
            outputs.shape != reference.shape
            or not np.allclose(outputs, reference, rtol=RTOL, atol=ATOL)
            or body["predictions"] != expected_predictions
            or body["lipschitz_bound"] != tenant.bound
        ):
            outcome.verdict, outcome.note = "wrong", f"outputs {outputs.ravel()[:4]} vs {reference.ravel()[:4]}"


async def send_all(url: str, tenants: dict[str, Tenant], requests: list[Request], concurrency: int) -> tuple:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {name: {"Authorization": f"Bearer {t.key}", "content-type": "application/json"}
               for name, t in tenants.items()}
    outcomes: list[Outcome] = []
    queue = collections.deque(requests)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def sender() -> None:
            while queue:
                request = queue.popleft()
                begin = time.perf_counter()
                try:
                    response = await client.post(f"/v1/models/{request.model_id}/predict", content=request.body,
                                                 headers=headers[request.tenant])
                    await response.aread()
                except httpx.TransportError as exc:
                    outcomes.append(Outcome(request, 0, time.perf_counter() - begin, note=repr(exc)))
                else:
                    latency = time.perf_counter() - begin
                    content_type = response.headers.get("content-type", "")
                    outcomes.append(Outcome(request, response.status_code, latency, content_type, response.content))

        begin = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        wall = time.perf_counter() - begin
    for outcome in outcomes:
        judge(outcome, tenants)
    return outcomes, wall


# --------------------------------------------------------------------------- report


def report(outcomes: list[Outcome], wall: float, concurrency: int) -> dict[str, int]:
    groups: dict[str, list[Outcome]] = collections.defaultdict(list)
    for o in outcomes:
        groups[o.request.kind.split(":")[0]].append(o)
        if o.request.kind.startswith("malformed"):
            groups[o.request.kind].append(o)
    groups["all"] = outcomes
    print("| requests | count | status codes | p50 ms | p99 ms | max ms | failed |")
    print("|---|---:|---|---:|---:|---:|---:|")
    order = ["valid", "cross", "malformed", *sorted(k for k in groups if k.startswith("malformed:")), "all"]
    for name in order:
        items = groups.get(name, [])
        if not items:
            continue
        codes = collections.Counter(o.status for o in items)
        latencies = [o.latency_s * 1e3 for o in items]
        failed = sum(1 for o in items if o.verdict not in ("ok", "throttled"))
        code_text = ", ".join(f"{c}: {n}" for c, n in sorted(codes.items()))
        label = {"valid": "valid, own model", "cross": "another tenant's model id", "all": "**all**"}.get(name, name)
        print(f"| {label} | {len(items)} | {code_text} | {percentile(latencies, 50):.1f} "
              f"| {percentile(latencies, 99):.1f} | {max(latencies):.1f} | {failed} |")
    verdicts = collections.Counter(o.verdict for o in outcomes)
    rows = sum(len(o.request.rows) for o in outcomes if o.request.rows is not None and o.verdict == "ok")
    print()
    print(f"throughput: {len(outcomes) / wall:,.0f} requests/s ({rows / wall:,.0f} rows/s of valid predictions), "
          f"{len(outcomes)} requests in {wall:.2f} s at concurrency {concurrency}")
    summary = {
        "5xx": verdicts["5xx"],
        "cross-tenant answers (not 404)": verdicts["leak"],
        "wrong answers on own model": verdicts["wrong"],
        "malformed bodies not answered 4xx problem+json": verdicts["not_4xx"],
        "transport errors": verdicts["transport"],
        "429 (rate limited, counted apart)": verdicts["throttled"],
    }
    print()
    print("| verdict | count |")
    print("|---|---:|")
    for label, n in summary.items():
        print(f"| {label} | {n} |")
    for o in outcomes:
        if o.verdict not in ("ok", "throttled"):
            print(f"first failure: {o.verdict} {o.request.kind} tenant={o.request.tenant} -> {o.status} {o.note}")
            break
    return summary


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--malformed", type=float, default=0.10, help="share of malformed bodies")
    parser.add_argument("--cross", type=float, default=0.10, help="share of requests on another tenant's model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rate-limited", action="store_true", help="keep the default per-key rate limit")
    parser.add_argument("--quick", action="store_true", help="1,000 requests (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.requests = min(args.requests, 1000)

    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"httpx {httpx.__version__}; client and server share the machine; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="lipspline-load-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIPSPLINE_")}
        env["LIPSPLINE_DATA_DIR"] = str(Path(tmp) / "data")
        if not args.rate_limited:
            env["LIPSPLINE_RATE_LIMIT_PER_S"] = "1000000"
            env["LIPSPLINE_RATE_LIMIT_BURST"] = "1000000"
        server = start_serve(env, Path(tmp) / "serve.log", args.host)
        try:
            begin = time.perf_counter()
            tenants = set_up_tenants(server)
            print(f"3 tenants ({', '.join(TENANTS)}), keys from `lipspline keys create`, one model each, "
                  f"trained in {time.perf_counter() - begin:.1f} s; bounds "
                  + ", ".join(f"{t.name} {t.bound:.3g}" for t in tenants.values()))
            # warm-up: connections, each model loaded into the API's cache
            warm = plan(tenants, 60, 0.0, 0.0, args.seed + 1)
            asyncio.run(send_all(server.base_url, tenants, warm, 8))
            requests = plan(tenants, args.requests, args.malformed, args.cross, args.seed)
            outcomes, wall = asyncio.run(send_all(server.base_url, tenants, requests, args.concurrency))
            ready = httpx.get(server.base_url + "/readyz", timeout=10).status_code
        except BaseException:
            print(f"--- serve log tail ---\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            server.stop()
        unhandled = server.log_path.read_text(errors="replace").count("unhandled error")

    print()
    print(f"## predict under load: {args.requests} requests, concurrency {args.concurrency}, "
          f"{args.malformed:.0%} malformed, {args.cross:.0%} cross-tenant, 3 tenants"
          + ("" if args.rate_limited else " (rate limit lifted)"))
    print()
    summary = report(outcomes, wall, args.concurrency)
    print(f"| /readyz after the load | {ready} |")
    print(f"| load average (1 min) after the load | {os.getloadavg()[0]:.2f} |")
    print(f"| unhandled errors in the server log | {unhandled} |")
    bad = sum(n for label, n in summary.items() if not label.startswith("429")) + (ready != 200) + unhandled
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
