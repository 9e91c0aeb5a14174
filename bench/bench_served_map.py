"""The served map's cost: float64 evaluation with the proven rounding bound, against the float32 forward.

Baselines: what the endpoint did before the served map existed: cast the raw rows
to float32, run the torch network under ``no_grad`` (standardisation inside, in
float32) and derive the radii from the real-arithmetic formula; and the floor of
float64 arithmetic: the same network converted to float64, its plain torch forward
with the same post-processing (the served map's goal is at most 1.2x this one). Candidate: the
served map, float64 from the raw rows, with ``evaluate`` (outputs, E(x) and the
ball coefficients) and the radius and output bound that include the rounding.
A third row times the served outputs alone (no bound), to separate the two costs.

A second table prices predict's opt-in ``local_ball`` (the radius from the best proof:
a local bound per row over B(x, rho), docs/design.md#local-radius) against the default
global radius, on the two smaller models: what a client pays per request for asking.

Models: the service's small (2, 2, 1) deep-spline circle model, a (16, 64, 64, 4)
deep-spline MLP and a 784-1024-1024-10 ReLU MLP (the largest dense model the
certificate benchmarks use). Batches of 1 and 1,000 rows; each cell is the median
of interleaved rounds (baseline and candidate alternate, so noise hits both).
Single-threaded torch and BLAS, as an API worker thread would run.

Run: ``python bench/bench_served_map.py [--quick]``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from api_schemas import TrainingConfig  # noqa: E402
from lipspline.certificates import (  # noqa: E402
    ServedMap,
    certified_radius,
    local_bounds,
    output_deviation_bound,
    served_output_bound,
    served_radius,
)
from lipspline.nn.networks import SplineNetwork  # noqa: E402

try:
    from lipspline.certificates.served_map import native_available as served_native
except ImportError:  # a tree from before the compiled pass (to measure "before" with this script)

    def served_native() -> bool:
        return False

#: the certified bound the derived numbers use (its value does not change the cost)
LIPSCHITZ = 10.0
#: the ball of the local-radius table
LOCAL_BALL = 0.1
MODELS = {
    "circle (2, 2, 1) deepspline": (2, [2], 1, "deepspline"),
    "(16, 64, 64, 4) deepspline": (16, [64, 64], 4, "deepspline"),
    "784-1024-1024-10 relu": (784, [1024, 1024], 10, "relu"),
}


def build(n_in: int, hidden: list[int], n_out: int, activation: str) -> SplineNetwork:
    torch.manual_seed(0)
    config = TrainingConfig.model_validate({"architecture": {"hidden": hidden, "activation": activation}})
    rng = np.random.default_rng(0)
    net = SplineNetwork(
        config,
        n_in,
        n_out,
        input_mean=torch.from_numpy(rng.normal(size=n_in)),
        input_scale=torch.from_numpy(rng.uniform(0.5, 2, n_in)),
    )
    return net.eval()


def baseline(net: SplineNetwork, x: np.ndarray, lipschitz: float) -> None:
    with torch.no_grad():
        out = net(torch.from_numpy(x.astype(np.float32))).to(torch.float64)
    certified_radius(out.numpy(), lipschitz)
    output_deviation_bound(lipschitz, 0.1)
    out.tolist()


def baseline64(net64: SplineNetwork, x: np.ndarray, lipschitz: float) -> None:
    """The floor of float64 arithmetic: the same network's plain float64 torch forward (same post-processing)."""
    with torch.no_grad():
        out = net64(torch.from_numpy(x))
    certified_radius(out.numpy(), lipschitz)
    output_deviation_bound(lipschitz, 0.1)
    out.tolist()


def served_with_bound(served: ServedMap, x: np.ndarray, lipschitz: float) -> None:
    result = served.evaluate(x)
    served_radius(result, lipschitz)
    served_output_bound(result, lipschitz, 0.1)
    result.outputs.tolist()


def served_with_local_radius(net: SplineNetwork, served: ServedMap, x: np.ndarray, lipschitz: float) -> None:
    """What predict does with ``local_ball``: the global radius, then a local proof for every row."""
    result = served.evaluate(x)
    radius = served_radius(result, lipschitz)
    bounds = np.array([min(c.bound, lipschitz) for c in local_bounds(net, x, LOCAL_BALL)])
    np.maximum(radius, served_radius(result, bounds, cap=LOCAL_BALL))
    result.outputs.tolist()


def served_outputs_only(served: ServedMap, x: np.ndarray, lipschitz: float) -> None:
    served.outputs(x).tolist()


def time_call(fn, repeats: int) -> float:
    began = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - began) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounds = 3 if args.quick else 9
    print(f"served map: {'compiled pass' if served_native() else 'numpy reference (no compiled kernel)'}, "
          f"torch threads {torch.get_num_threads()}")
    print("| model | batch | float32 forward | float64 forward | served float64 + bound "
          "| ratio to float32 | ratio to float64 | served outputs only |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, spec in MODELS.items():
        net = build(*spec)
        net64 = copy.deepcopy(net).double()
        served = ServedMap(net)
        for batch in (1, 1000):
            x = np.random.default_rng(batch).normal(size=(batch, spec[0]))
            repeats = max(1, int(2000 / batch)) if spec[0] < 100 else max(1, int(50 / batch))
            samples: dict[str, list[float]] = {"base": [], "base64": [], "full": [], "outputs": []}
            calls = {
                "base": lambda net=net, x=x: baseline(net, x, LIPSCHITZ),
                "base64": lambda net64=net64, x=x: baseline64(net64, x, LIPSCHITZ),
                "full": lambda served=served, x=x: served_with_bound(served, x, LIPSCHITZ),
                "outputs": lambda served=served, x=x: served_outputs_only(served, x, LIPSCHITZ),
            }
            for _ in range(rounds):
                for key, call in calls.items():
                    samples[key].append(time_call(call, repeats))
            base, base64, full, outputs = (
                statistics.median(samples[k]) * 1e3 for k in ("base", "base64", "full", "outputs")
            )
            print(f"| {name} | {batch} | {base:.3f} ms | {base64:.3f} ms | {full:.3f} ms | {full / base:.2f}x "
                  f"| {full / base64:.2f}x | {outputs:.3f} ms |")
    local_table(rounds)


def local_table(rounds: int) -> None:
    print()
    print(f"| model | batch | predict radius: global (default) | with local_ball={LOCAL_BALL} | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, spec in list(MODELS.items())[:2]:
        net = build(*spec)
        served = ServedMap(net)
        for batch in (1, 100):
            x = np.random.default_rng(batch).normal(size=(batch, spec[0]))
            repeats = max(1, int(200 / batch))
            samples: dict[str, list[float]] = {"global": [], "local": []}
            calls = {
                "global": lambda served=served, x=x: served_with_bound(served, x, LIPSCHITZ),
                "local": lambda net=net, served=served, x=x: served_with_local_radius(net, served, x, LIPSCHITZ),
            }
            for _ in range(rounds):
                for key, call in calls.items():
                    samples[key].append(time_call(call, repeats))
            plain, local = (statistics.median(samples[k]) * 1e3 for k in ("global", "local"))
            print(f"| {name} | {batch} | {plain:.3f} ms | {local:.3f} ms | {local / plain:.1f}x |")


if __name__ == "__main__":
    main()
