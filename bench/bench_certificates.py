"""Benchmark of the Lipschitz certificates: every bound, the lower bound, the ratio, the time.

Run ``python bench/bench_certificates.py`` (``--quick`` skips LipSDP-Neuron);
``python bench/bench_certificates.py --goals`` prints only the two goal tables of issue 29
(``goal_tables``): certified / verified LipSDP-Neuron on random 16-64-64-64-4 nets with
the certification time, and certified / best lower bound on nets trained here with a seed
(a 2-D classifier and 1-D regressors).
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
import math
import statistics
import time

import numpy as np
import torch

from api_schemas import TrainingConfig
from lipspline.certificates import analysis as analysis_module
from lipspline.certificates import (
    certify_global,
    empirical_lower_bound,
    jacobian_lower_bound,
    local_bounds,
)
from lipspline.nn.networks import SplineNetwork


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


def median_ms(fn, runs: int) -> float:
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


def trained_classifier_2d(hidden: list[int], seed: int = 0) -> tuple[SplineNetwork, np.ndarray]:
    """A deep-spline classifier of the circle (``make_circle``), trained by ``fit`` with a seed."""
    from lipspline.data.synthetic import make_circle
    from lipspline.training.loop import fit

    data = make_circle(1000, seed=seed)
    config = TrainingConfig.model_validate(
        {"architecture": {"hidden": hidden, "activation": "deepspline"}, "training": {"epochs": 40, "seed": seed}}
    )
    return fit(data, config).model.network, np.asarray(data.X, dtype=np.float64)


#: the 1-D regression targets of the goal table (x uniform on [-1, 1], 1 % noise)
REGRESSION_TARGETS = {
    "sin(3x)": lambda x: np.sin(3 * x),
    "|x|-sin(5x)/2": lambda x: np.abs(x) - 0.5 * np.sin(5 * x),
    "tanh(4x)": lambda x: np.tanh(4 * x),
}


def trained_regressor_1d(target: str, hidden: list[int], seed: int = 0) -> tuple[SplineNetwork, np.ndarray]:
    """A deep-spline regressor of a 1-D function, trained by ``fit`` with a seed."""
    from lipspline.data.arrays import from_arrays
    from lipspline.training.loop import fit

    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (500, 1))
    y = REGRESSION_TARGETS[target](x[:, 0]) + 0.01 * rng.standard_normal(500)
    config = TrainingConfig.model_validate(
        {"architecture": {"hidden": hidden, "activation": "deepspline"}, "training": {"epochs": 40, "seed": seed}}
    )
    return fit(from_arrays(x, y, task="regression"), config).model.network, x


def best_lower(net: SplineNetwork, x: np.ndarray) -> float:
    """max(empirical pairs, Jacobian hill climb from the data, and for one input the exact constant)."""
    from lipspline.certificates import exact_lipschitz_1d

    lower = max(empirical_lower_bound(net, x, max_pairs=20000), jacobian_lower_bound(net, x[:256], ascent_steps=20))
    if x.shape[1] == 1:
        lower = max(lower, exact_lipschitz_1d(net))
    return lower


#: bounds added by issue 29 (``prev/lower`` leaves them out: the certificate as it was, on the same net)
NEW_BOUNDS = ("partition", "lipsdp_layerwise")


@contextlib.contextmanager
def full_scaling_search():
    """Certify with the LipLT scaling search run to its end, for the "before" columns.

    The certificate stops that search early when another bound is far below it (``GIVE_UP_ABOVE``):
    right for the certificate, whose value cannot change, but the columns that leave the new bounds out
    would then report the stopped search, looser than the certificate before issue 29 ever was.
    """
    saved = analysis_module.GIVE_UP_ABOVE
    analysis_module.GIVE_UP_ABOVE = math.inf
    try:
        yield
    finally:
        analysis_module.GIVE_UP_ABOVE = saved


def goal_tables(seeds: int = 20, runs: int = 3) -> None:
    """The two goal tables of issue 29, each ratio measured side by side in this one run.

    Table 1: random 16-64-64-64-4 spline nets (``random_spline_net``), per seed the default
    certificate (``certify_global``, cold: analysis cache bypassed; time = median of ``runs``)
    against the verified LipSDP-Neuron bound (barrier solver, seconds).
    Table 2: nets trained here (``fit``, seeded; and the Adam loop of ``circle_net``): certified /
    best lower bound (``best_lower``); ``prev/lower`` is the same ratio for the minimum of the
    bounds that existed before issue 29 (``NEW_BOUNDS`` left out; same net, same run); the
    domain column is the bound proven on the data's box (``domain_bound``), reported beside the
    global certificate, where the certificate API has one.
    """
    ratios, before, times, bys = [], [], [], []
    print(f"{'seed':>4} {'certified':>10} {'by':<16} {'LipSDP':>10} {'cert/LipSDP':>11} {'before/LipSDP':>13} "
          f"{'ms':>8} {'layerwise ms':>12}")
    for seed in range(seeds):
        net = random_spline_net(seed)
        certs: list = []
        ms = median_ms(lambda: certs.append(certify_global(net, use_cache=False)), runs)  # noqa: B023
        cert = certs[-1]
        sdp = certify_global(net, include_lipsdp=True, lipsdp_time_limit_s=300, use_cache=False)
        value = sdp.bounds.get("lipsdp_neuron", float("nan"))
        ratio = cert.certified / value
        # the certificate without the layer-wise LipSDP bound (same net, same run): the "before" column
        with full_scaling_search():
            full = certify_global(net, use_cache=False)
        previous = min(v for k, v in full.bounds.items() if k != "lipsdp_layerwise") / value
        ratios.append(ratio)
        before.append(previous)
        times.append(ms)
        bys.append(cert.certified_by)
        layerwise_ms = cert.timings_ms.get("lipsdp_layerwise", float("nan"))
        print(f"{seed:>4} {cert.certified:>10.4f} {cert.certified_by:<16} {value:>10.4f} {ratio:>11.3f} "
              f"{previous:>13.3f} {ms:>8.1f} {layerwise_ms:>12.1f}")
    finite = [r for r in ratios if r == r]
    print(
        f"random 16-64-64-64-4 x{seeds}: certified/LipSDP median {statistics.median(finite):.3f}x "
        f"(max {max(finite):.3f}x; without lipsdp_layerwise {statistics.median(before):.3f}x), "
        f"certification median {statistics.median(times):.1f} ms "
        f"(max {max(times):.1f} ms); certified by: "
        + ", ".join(f"{k} {bys.count(k)}" for k in sorted(set(bys)))
    )
    print()
    nets = [("2-D circle classifier 2-16-16-1", *trained_classifier_2d([16, 16]))]
    nets.append(("2-D circle classifier 2-10-10-1", *trained_classifier_2d([10, 10])))
    for activation, hidden in (("relu", [10]), ("deepspline", [16, 16])):  # the Adam loop of ``circle_net``
        net, xc = circle_net(activation, hidden)
        nets.append((f"2-D circle {activation} 2-{'-'.join(map(str, hidden))}-1 (loop)", net, xc.double().numpy()))
    for target, hidden in (("sin(3x)", [16, 16]), ("|x|-sin(5x)/2", [10, 10, 10]), ("tanh(4x)", [32])):
        nets.append((f"1-D {target} 1-{'-'.join(map(str, hidden))}-1", *trained_regressor_1d(target, hidden)))
    print(f"{'trained net':<40} {'certified':>10} {'by':<14} {'lower':>10} {'cert/lower':>10} {'prev/lower':>10} "
          f"{'domain':>10} {'dom/lower':>9} {'ms':>8}")
    for name, net, x in nets:
        certs = []
        ms = median_ms(lambda: certs.append(certify_global(net, use_cache=False)), runs)  # noqa: B023
        cert = certs[-1]
        lower = best_lower(net, x)
        domain = float("nan")
        try:
            from lipspline.certificates import domain_bound
        except ImportError:  # a tree without the domain bound (the "before" column)
            domain_bound = None
        if domain_bound is not None:
            domain = domain_bound(net, x.min(axis=0), x.max(axis=0)).certified
        # the certificate without the bounds added for issue 29 (same net, same run): the "before" column
        with full_scaling_search():
            full = certify_global(net, use_cache=False)
        previous = min(v for k, v in full.bounds.items() if k not in NEW_BOUNDS)
        print(f"{name:<40} {cert.certified:>10.4f} {cert.certified_by:<14} {lower:>10.4f} "
              f"{cert.certified / lower:>10.3f} {previous / lower:>10.3f} {domain:>10.4f} {domain / lower:>9.3f} "
              f"{ms:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip LipSDP-Neuron")
    parser.add_argument("--goals", action="store_true", help="only the goal tables of issue 29")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    if args.goals:
        goal_tables(runs=min(args.runs, 3))
        return
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
