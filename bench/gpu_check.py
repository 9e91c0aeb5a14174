"""The CUDA check, in one run (about 2-4 minutes on one GPU): what a GPU worker must get right.

1. **Spline kernel on the GPU vs the CPU**: the same spline layer (float32 and float64) evaluated
   on CUDA and on CPU, forward and backward (gradients to the input and to the knot values);
   the largest differences, which must be float rounding only.
2. **Training through the worker on ``cuda``**: `lipspline serve` (embedded default) with a
   job whose config says ``"device": "cuda"``; the job must report ``device: cuda`` and succeed,
   and its model's certificate is printed.
3. **The served map's parity**: the endpoint computes the served map on CPU in float64 (the
   guarantee is about what it returns); the trained model's outputs through the API equal the
   CPU float64 forward of the downloaded model, and the certified bound holds on random pairs.
4. **Throughput**: train steps per second of a 784-256-256-10 MLP, deep splines vs ReLU, on CUDA
   (batch 256, Adam, BV2 penalty for splines), medians of interleaved rounds, and the ratio.

Run: ``python bench/gpu_check.py`` on a machine with a GPU (``--skip-service`` leaves out steps 2-3;
``--device cpu`` runs the whole script on CPU as a smoke test of the script itself). Exit code 1
when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_splines import our_network  # noqa: E402

from lipspline.nn.splines import evaluate_splines  # noqa: E402


def kernel_parity(device: str) -> list[str]:
    """Step 1: CUDA (or ``device``) spline evaluation and gradients against the CPU result."""
    failures = []
    print("\n## 1. spline evaluation, device vs CPU\n")
    print("| dtype | forward max abs diff | grad x | grad knots |")
    print("|---|---|---|---|")
    for dtype, tolerance in ((torch.float32, 1e-5), (torch.float64, 1e-12)):
        gen = torch.Generator().manual_seed(0)
        x = (torch.rand(4096, 64, generator=gen, dtype=dtype) * 6 - 3).requires_grad_(True)
        coeffs = torch.randn(64, 21, generator=gen, dtype=dtype).requires_grad_(True)
        results = []
        for where in ("cpu", device):
            xd = x.detach().to(where).requires_grad_(True)
            cd = coeffs.detach().to(where).requires_grad_(True)
            out = evaluate_splines(xd, cd, 2.0)
            out.square().sum().backward()
            results.append((out.detach().cpu(), xd.grad.cpu(), cd.grad.cpu()))
        diffs = [float((a - b).abs().max()) for a, b in zip(results[0], results[1], strict=True)]
        scale = [float(r.abs().max()) or 1.0 for r in results[0]]
        print(f"| {str(dtype).removeprefix('torch.')} | " + " | ".join(f"{d:.3g}" for d in diffs) + " |")
        if any(d > tolerance * s for d, s in zip(diffs, scale, strict=True)):
            failures.append(f"spline kernel {dtype}: device and CPU differ beyond rounding ({diffs})")
    return failures


def throughput(device: str, rounds: int = 7, steps: int = 20) -> None:
    """Step 4: train steps/s, deep splines vs ReLU, 784-256-256-10 at batch 256."""
    print(f"\n## 4. train steps on {device}: 784-256-256-10, batch 256, Adam\n")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 784, generator=gen).to(device)
    y = torch.randint(0, 10, (256,), generator=gen).to(device)
    variants = {}
    for activation in ("deepspline", "relu"):
        net, penalty = our_network([784, 256, 256, 10], activation)
        net = net.to(device)
        variants[activation] = (net, penalty, torch.optim.Adam(net.parameters(), lr=1e-3))
    times: dict[str, list[float]] = {name: [] for name in variants}

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(rounds):
        for name, (net, penalty, optimizer) in variants.items():
            sync()
            began = time.perf_counter()
            for _ in range(steps):
                loss = torch.nn.functional.cross_entropy(net(x), y) + penalty(net)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            sync()
            times[name].append((time.perf_counter() - began) / steps)
    spline, relu = (statistics.median(times[n][1:]) for n in ("deepspline", "relu"))
    print("| activation | ms / step (median) | steps/s | ratio to ReLU |")
    print("|---|---|---|---|")
    for name, value in (("deep spline", spline), ("ReLU", relu)):
        print(f"| {name} | {value * 1e3:.3f} | {1 / value:,.0f} | {value / relu:.2f} |")


def service_checks(device: str) -> list[str]:
    """Steps 2 and 3: a job on ``device`` through the real worker, then the served map's parity."""
    import httpx

    from lipspline.certificates import certify_global
    from lipspline.data import make_circle
    from lipspline.nn.serialization import model_from_parts

    failures: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    port = 18000 + os.getpid() % 1000
    env = dict(os.environ, LIPSPLINE_DATA_DIR=str(work / "data"), LIPSPLINE_DATABASE_URL="",
               LIPSPLINE_BROKER_URL="embedded://")
    with open(work / "serve.log", "wb") as log:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        key_file = work / "data" / "api-key"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if key_file.exists() and httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            return [f"the service did not start:\n{(work / 'serve.log').read_text()[-2000:]}"]
        headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            circle = make_circle(600, seed=0)
            dataset = http.post("/v1/datasets", json={"inputs": circle.X.tolist(), "targets": circle.y.tolist(),
                                                      "name": "circle"}).json()
            config = {"architecture": {"hidden": [16, 16], "activation": "deepspline"},
                      "training": {"epochs": 20, "seed": 0}, "device": device}
            began = time.perf_counter()
            job = http.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": config}).json()
            while (state := http.get(f"/v1/jobs/{job['id']}").json())["status"] not in ("succeeded", "failed"):
                time.sleep(0.5)
            print(f"\n## 2. a job on {device} through the worker\n")
            print(f"status {state['status']}, device {state.get('device')}, {time.perf_counter() - began:.1f} s "
                  f"wall, error {state.get('error')}")
            if state["status"] != "succeeded" or state.get("device") != device:
                return [f"the {device} job did not succeed on {device}: {state}"]
            model = http.get(f"/v1/models/{state['model_id']}").json()
            lipschitz = model["lipschitz"]
            print(f"certificate: L <= {lipschitz['certified']} ({lipschitz['certified_by']}), best lower bound "
                  f"{lipschitz['best_lower']}, tightness {lipschitz['tightness']}")
            print("\n## 3. the served map (CPU, float64) vs the downloaded model\n")
            download = http.get(f"/v1/models/{state['model_id']}/download")
            import io
            import zipfile

            with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
                local = model_from_parts(json.loads(archive.read("model.json")), archive.read("weights.safetensors"))
            rows = np.random.default_rng(1).uniform(-1.5, 1.5, size=(256, 2))
            served = np.asarray(http.post(f"/v1/models/{state['model_id']}/predict",
                                          json={"inputs": rows.tolist()}).json()["outputs"])
            mine = local.outputs(rows).numpy()
            gap = float(np.abs(served - mine).max())
            bound = certify_global(local.network).certified
            pairs = rows[:128], rows[128:]
            out_a, out_b = local.outputs(pairs[0]).numpy(), local.outputs(pairs[1]).numpy()
            ratio = float((np.linalg.norm(out_a - out_b, axis=1) / np.linalg.norm(pairs[0] - pairs[1], axis=1)).max())
            print(f"max |API - local float64 forward| = {gap:.3g}; certified bound {bound:.4g}; "
                  f"largest observed slope {ratio:.4g} (ratio {ratio / bound:.3f} <= 1)")
            if gap > 1e-9 * max(1.0, float(np.abs(mine).max())):
                failures.append(f"served outputs differ from the CPU float64 forward by {gap}")
            if ratio > bound:
                failures.append(f"an observed slope {ratio} exceeds the certified bound {bound}")
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a smoke run of the script")
    parser.add_argument("--skip-service", action="store_true", help="kernel parity and throughput only")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for a smoke run", file=sys.stderr)
        return 2
    began = time.perf_counter()
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"# GPU check on {name} (torch {torch.__version__})")
    failures = kernel_parity(args.device)
    if not args.skip_service:
        failures += service_checks(args.device)
    throughput(args.device)
    print(f"\n{len(failures)} failure(s) in {time.perf_counter() - began:.0f} s")
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
