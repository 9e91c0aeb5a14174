"""One spline activation layer's kernels, called directly, against ReLU's: where a train step's extra time goes.

For a (rows x channels) float32 bank with 21 knots on [-2, 2] (inputs ~ N(0, 1) x --spread), it times, hot
and interleaved round by round, one thread:

- ReLU: ``torch.relu`` (forward) and ``threshold_backward`` (its backward), the floor;
- the spline kernel's forward, and its backward (input gradient + knot-value gradient);
- where this CPU's kernel saves rises (float32 dense layers on the AVX2 tiles, see "saved rises" in
  ``lipspline/_spline_kernels.c``): the forward that also stores each cell's rise, and the backward that
  reads them, i.e. the before/after of that change on the same data in one run.

It prints the median microseconds of each and the spline's extra over ReLU per layer (forward + backward).
Run: ``OMP_NUM_THREADS=1 python bench/bench_spline_kernel.py`` (``--shape 1000x20`` for the narrow layer of
the 2-20-1 net, where per-call and per-row costs dominate).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lipspline.nn import splines

KNOTS = 21
GRID_MIN, INV_DELTA = -2.0, (KNOTS - 1) / 4.0


def kernel_calls(rows: int, channels: int, spread: float) -> dict[str, Callable[[], None]]:
    """The timed calls, on one shared batch (the saved-rises pair only where the kernel would use it)."""
    native = splines._native
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, channels, generator=gen) * spread
    grad = torch.randn(rows, channels, generator=gen)
    coeffs = torch.randn(channels, KNOTS, generator=gen)
    out, grad_x, grad_c, rises = (torch.empty_like(x), torch.empty_like(x), torch.empty_like(coeffs),
                                  torch.empty_like(x))
    common = (rows, channels, 1, KNOTS, GRID_MIN, INV_DELTA, False, 1)

    def forward(*saved: torch.Tensor) -> Callable[[], None]:  # (tensors, not pointers: the closure keeps them)
        return lambda: native.forward(x.data_ptr(), coeffs.data_ptr(), out.data_ptr(), *common,
                                      *(t.data_ptr() for t in saved))

    def backward(*saved: torch.Tensor) -> Callable[[], None]:
        return lambda: native.backward(x.data_ptr(), coeffs.data_ptr(), grad.data_ptr(), grad_x.data_ptr(),
                                       grad_c.data_ptr(), *common, *(t.data_ptr() for t in saved))

    calls = {
        "relu forward": lambda: torch.relu(x),
        "relu backward": lambda: torch.ops.aten.threshold_backward(grad, x, 0.0),
        "spline forward": forward(),
        "spline backward": backward(),
    }
    if native.saves_rises(False, KNOTS, 1):
        calls["spline forward, saving rises"] = forward(rises)
        calls["spline backward from rises"] = backward(rises)
        calls["spline forward, saving rises"]()  # the backward reads what it stored
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="256x256", help="rows x channels of the layer")
    parser.add_argument("--spread", type=float, default=1.0, help="inputs are N(0, 1) times this")
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    if not splines.native_kernel_available():
        raise SystemExit("the native spline kernel is not built (make install)")
    torch.set_num_threads(1)
    rows, channels = (int(n) for n in args.shape.lower().split("x"))
    calls = kernel_calls(rows, channels, args.spread)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            begin = time.perf_counter()
            for _ in range(args.calls):
                call()
            samples[name].append((time.perf_counter() - begin) / args.calls)
    us = {name: statistics.median(values) * 1e6 for name, values in samples.items()}
    print(f"{rows} x {channels} float32, {KNOTS} knots, inputs N(0, 1) x {args.spread}, one thread; "
          f"medians of {args.rounds} rounds x {args.calls} calls")
    for name, value in us.items():
        print(f"{name:<32}{value:>10.1f} us")
    relu = us["relu forward"] + us["relu backward"]
    print(f"{'extra over ReLU, per layer':<32}{us['spline forward'] + us['spline backward'] - relu:>10.1f} us")
    if "spline backward from rises" in us:
        saved = us["spline forward, saving rises"] + us["spline backward from rises"]
        print(f"{'  with saved rises':<32}{saved - relu:>10.1f} us")


if __name__ == "__main__":
    main()
