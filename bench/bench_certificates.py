"""Benchmark of the Lipschitz certificates: every bound, the lower bound, the ratio, the time.

Run ``python bench/bench_certificates.py`` (``--quick`` skips LipSDP-Neuron).
Times are medians over several cold runs (the analysis cache is bypassed);
"first cold call" is the very first certification of that network in the
process (it may pay one-off warm-ups: imports, BLAS thread start-up);
"cached" is a repeated call on an unchanged network (content hash + lookup).
The spline net is also drawn with 20 seeds: the median spectral/certified ratio
is printed (and certified/LipSDP where LipSDP runs).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np
import torch

from api_schemas import TrainingConfig
from lipspline.certificates import (
    certify_global,
    empirical_lower_bound,
    jacobian_lower_bound,
    local_bounds,
)
from lipspline.networks import SplineNetwork


def random_spline_net(seed: int = 0) -> SplineNetwork:
    """16-64-64-64-4 deep-spline net with non-monotone random splines (docs/design.md#reference-network)."""
    torch.manual_seed(seed)
    cfg = TrainingConfig(architecture={"hidden": [64, 64, 64], "activation": "deepspline"})
    net = SplineNetwork(cfg, 16, 4)
    with torch.no_grad():
        for s in net.splines():
            s.coefficients.add_(0.1 * torch.randn_like(s.coefficients))
    return net


def circle_net(activation: str, hidden: list[int], seed: int = 0) -> tuple[SplineNetwork, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.uniform(-1, 1, (1000, 2)).astype(np.float32))
    y = ((x**2).sum(1) <= 2 / np.pi).float()
    torch.manual_seed(seed)
    cfg = TrainingConfig(architecture={"hidden": hidden, "activation": activation}, spline={"init": "abs"})
    net = SplineNetwork(cfg, 2, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], y).backward()
        opt.step()
    return net, x


def mnist_mlp() -> SplineNetwork:
    torch.manual_seed(0)
    cfg = TrainingConfig(architecture={"hidden": [1024, 1024], "activation": "relu"})
    return SplineNetwork(cfg, 784, 10)


def median_ms(fn, runs: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_one(name: str, net: SplineNetwork, x: torch.Tensor, *, lipsdp: bool, runs: int, rows: list) -> None:
    t0 = time.perf_counter()
    certify_global(net, use_cache=False)  # first call: includes warm-ups (imports, LAPACK threads)
    first_ms = (time.perf_counter() - t0) * 1e3
    certs = []
    total = median_ms(lambda: certs.append(certify_global(net, use_cache=False)), runs)
    cert = certs[-1]
    per_bound = {k: statistics.median(c.timings_ms.get(k, float("nan")) for c in certs) for k in cert.bounds}
    norms_ms = statistics.median(c.timings_ms.get("weight_norms", 0.0) for c in certs)
    certify_global(net)
    cached = median_ms(lambda: certify_global(net), runs)
    lower_emp = empirical_lower_bound(net, x, max_pairs=20000)
    lower_jac = jacobian_lower_bound(net, x[:128], ascent_steps=10)
    lower = max(lower_emp, lower_jac)
    for bound, value in sorted(cert.bounds.items(), key=lambda kv: -kv[1]):
        rows.append((name, bound, value, value / lower, per_bound[bound]))
    if lipsdp:
        t0 = time.perf_counter()
        sdp = certify_global(net, include_lipsdp=True, lipsdp_time_limit_s=300, use_cache=False)
        ms = sdp.timings_ms.get("lipsdp_neuron", (time.perf_counter() - t0) * 1e3)
        if "lipsdp_neuron" in sdp.bounds:
            value = sdp.bounds["lipsdp_neuron"]
            rows.append((name, "lipsdp_neuron (verified)", value, value / lower, ms))
            ratio = cert.certified / value
            rows.append((name, f"  certified/LipSDP = {ratio:.2f}x (default certificate)", float("nan"),
                         float("nan"), float("nan")))
        else:
            rows.append((name, "lipsdp_neuron: " + sdp.skipped.get("lipsdp_neuron", "?")[:48], float("nan"),
                         float("nan"), ms))
    rows.append((name, f"CERTIFIED ({cert.certified_by})", cert.certified, cert.certified / lower, total))
    rows.append((name, "  first cold call in the process", cert.certified, cert.certified / lower, first_ms))
    rows.append((name, "  cached repeat call", cert.certified, cert.certified / lower, cached))
    rows.append((name, "  (shared weight norms)", float("nan"), float("nan"), norms_ms))
    rows.append((name, "lower: empirical pairs", lower_emp, lower_emp / lower, float("nan")))
    rows.append((name, "lower: jacobian+ascent", lower_jac, lower_jac / lower, float("nan")))
    ratio_sp = cert.bounds["spectral_product"] / cert.certified
    rows.append((name, f"  spectral/certified = {ratio_sp:.2f}x", float("nan"), float("nan"), float("nan")))
    for eps in (0.01, 0.1):
        local_bounds(net, x[:8], eps)
        t0 = time.perf_counter()
        lbs = local_bounds(net, x[:64], eps)
        ms = (time.perf_counter() - t0) * 1e3 / len(lbs)
        mean = float(np.mean([lb.bound for lb in lbs]))
        rows.append((name, f"local l2 eps={eps} (mean, per input)", mean, mean / lower, ms))


def kernel_floor(rows: list, runs: int) -> None:
    """The bare BLAS/LAPACK kernels a proven-norm LipLT of the 784-1024-1024-10 MLP cannot avoid.

    Proving ||A||_2 <= s needs the Gram matrix and a Cholesky of s^2 I - A^T A
    (``spectral.py``); LipLT needs that for W1, W2 and the product W2 W1. Timed
    in float64 (float32 for scale), one-threaded as the certificate runs and
    with both cores: a floor under any certificate built this way, before
    Lanczos, rounding terms and Python.
    """
    from scipy.linalg.blas import dgemm, dsyrk, ssyrk
    from scipy.linalg.lapack import dpotrf

    from lipspline.certificates._blas import single_threaded_blas

    rng = np.random.default_rng(0)
    w1 = np.asfortranarray(rng.standard_normal((1024, 784)))
    w2 = np.asfortranarray(rng.standard_normal((1024, 1024)))
    spd = {n: np.asfortranarray(w2[:n, :n].T @ w2[:n, :n] + n * np.eye(n)) for n in (784, 1024)}
    kernels = [
        ("dsyrk W1^T W1 (784, k 1024)", lambda: dsyrk(1.0, w1, trans=1)),
        ("dpotrf 784", lambda: dpotrf(spd[784], lower=0, overwrite_a=0)),
        ("dsyrk W2^T W2 (1024, k 1024)", lambda: dsyrk(1.0, w2, trans=1)),
        ("dpotrf 1024", lambda: dpotrf(spd[1024], lower=0, overwrite_a=0)),
        ("dgemm W2 W1 (1024x1024x784)", lambda: dgemm(1.0, w2, w1)),
        ("dsyrk (W2W1)^T (W2W1) (784, k 1024)", lambda: dsyrk(1.0, w1, trans=1)),
        ("dpotrf 784 (product)", lambda: dpotrf(spd[784], lower=0, overwrite_a=0)),
    ]
    for threads in (1, 2):
        name = f"floor: kernels, {threads} thread{'s' if threads > 1 else ''}"
        total, spectral_only = 0.0, 0.0
        scope = single_threaded_blas() if threads == 1 else contextlib.nullcontext()
        with scope:
            for index, (label, fn) in enumerate(kernels):
                fn()
                ms = median_ms(fn, runs)
                total += ms
                spectral_only += ms if index < 4 else 0.0
                rows.append((name, label, float("nan"), float("nan"), ms))
            w2s = w2.astype(np.float32, order="F")
            ssyrk(1.0, w2s, trans=1)
            rows.append((name, "  (ssyrk W2^T W2 in float32, for scale)", float("nan"), float("nan"),
                         median_ms(lambda: ssyrk(1.0, w2s, trans=1), runs)))  # noqa: B023
        rows.append((name, "sum: spectral product (W1, W2 proven)", float("nan"), float("nan"), spectral_only))
        rows.append((name, "sum: LipLT (W1, W2, W2 W1 proven)", float("nan"), float("nan"), total))


def spline_seeds(rows: list, lipsdp: bool, seeds: int = 20) -> None:
    """Median over seeds of spectral/certified (and certified/LipSDP) on the random spline net."""
    ratios, sdp_ratios, sdp_ms = [], [], []
    for seed in range(seeds):
        net = random_spline_net(seed)
        cert = certify_global(net, use_cache=False)
        ratios.append(cert.bounds["spectral_product"] / cert.certified)
        if lipsdp:
            sdp = certify_global(net, include_lipsdp=True, lipsdp_time_limit_s=300, use_cache=False)
            if "lipsdp_neuron" in sdp.bounds:
                sdp_ratios.append(cert.certified / sdp.bounds["lipsdp_neuron"])
                sdp_ms.append(sdp.timings_ms["lipsdp_neuron"])
    name = f"spline 16-64-64-64-4 x{seeds}"
    below = sum(r < 5.0 for r in ratios)
    rows.append((name, f"spectral/certified median {statistics.median(ratios):.2f}x ({below} seeds < 5x)",
                 float("nan"), float("nan"), float("nan")))
    for start in range(0, len(ratios), 10):
        chunk = " ".join(f"{r:.2f}" for r in ratios[start : start + 10])
        rows.append((name, f"  seeds {start}-{start + 9}: {chunk}", float("nan"), float("nan"), float("nan")))
    if sdp_ratios:
        rows.append((name, f"certified/LipSDP median {statistics.median(sdp_ratios):.2f}x (max {max(sdp_ratios):.2f}x)",
                     float("nan"), float("nan"), statistics.median(sdp_ms)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip LipSDP-Neuron")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    rows: list = []
    net = random_spline_net()
    x = torch.randn(2000, 16)
    bench_one("spline 16-64-64-64-4", net, x, lipsdp=not args.quick, runs=args.runs, rows=rows)
    spline_seeds(rows, lipsdp=not args.quick)
    c_spline, xc = circle_net("deepspline", [2])
    bench_one("circle spline 2-2-1", c_spline, xc, lipsdp=not args.quick, runs=args.runs, rows=rows)
    c_relu, xc = circle_net("relu", [10])
    bench_one("circle relu 2-10-1", c_relu, xc, lipsdp=not args.quick, runs=args.runs, rows=rows)
    mlp = mnist_mlp()
    xm = torch.rand(512, 784)
    bench_one("relu MLP 784-1024-1024-10", mlp, xm, lipsdp=False, runs=args.runs, rows=rows)
    kernel_floor(rows, runs=args.runs)

    header = f"{'network':<28} {'bound':<44} {'value':>12} {'/lower':>9} {'time ms':>10}"
    print(header)
    print("-" * len(header))
    last = None
    for name, bound, value, ratio, ms in rows:
        if last is not None and name != last:
            print()
        last = name
        fmt = lambda v, f: ("" if v != v else format(v, f))  # noqa: E731
        print(f"{name:<28} {bound:<44} {fmt(value, '12.4f'):>12} {fmt(ratio, '9.2f'):>9} {fmt(ms, '10.3f'):>10}")


if __name__ == "__main__":
    main()
