"""Spline activation speed: ours vs ReLU (the floor) vs the reference `deepsplines`.

For each network (784-256-256-10 at batch 256; 2-20-1 at batch 1000, where the
per-call overhead dominates) it times, interleaved round by round so machine
noise hits every variant alike:

- train step: forward + backward + regulariser (BV2 for splines, weight decay
  for all) + Adam step;
- inference: forward under ``torch.no_grad``.

On a CPU with AVX-512 it also times the same spline net on the narrower AVX2 tiles of the
kernel ("8-wide tiles"), so the two kernels are compared in the same run. Where the kernel saves
each cell's rise in the forward (float32 dense layers on the AVX2 tiles), it also times the same
net without them ("rises not saved"): the before/after of that change in one run. Where the C++ autograd
node is built (``make install`` builds it; ``lipspline/nn/native_autograd.py``), it also times the
same net through the Python node ("Python node"): the before/after of that node in one run.

It prints medians (ms) and ratios to ReLU; ``--instances 3`` builds three copies of every network and
averages them (identical networks differ by a few % in one process). Run: ``python bench/bench_splines.py``
(``make bench`` installs the reference library first, without its torchvision
dependency, which it does not need for its activation modules).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from api_schemas import TrainingConfig
from lipspline.nn import splines
from lipspline.nn.networks import SplineNetwork
from lipspline.nn.splines import native_kernel_available, native_saved_rises, native_tiles
from lipspline.objectives import Objective, data_loss

KNOTS = 21
GRID_RANGE = 2.0


def our_network(widths: list[int], activation: str) -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]:
    config = TrainingConfig.model_validate({
        "architecture": {"hidden": widths[1:-1], "activation": activation},
        "spline": {"knots": KNOTS, "range": GRID_RANGE},
        "objective": {"mode": "bv2", "lambda": 1e-4, "mu": 1e-4},
    })
    network = SplineNetwork(config, widths[0], widths[-1])
    objective = Objective(config.objective, network)

    def penalty(net: nn.Module) -> torch.Tensor:
        return sum(objective.penalties(net).values())

    return _Standardized(network), lambda m: penalty(m.inner)


class _Standardized(nn.Module):
    """Time the trainable core (what a training step runs), not the scaling buffers."""

    def __init__(self, inner: SplineNetwork) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.forward_standardized(x)


def reference_network(widths: list[int]) -> tuple[nn.Module, Callable[[nn.Module], torch.Tensor]] | None:
    try:
        from deepsplines.ds_modules import DeepBSpline
    except ImportError:
        return None
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(DeepBSpline("fc", widths[i + 1], size=KNOTS, range_=GRID_RANGE, init="relu"))
    network = nn.Sequential(*layers)

    def penalty(net: nn.Module) -> torch.Tensor:
        decay = 1e-4 * sum((m.weight**2).sum() for m in net if isinstance(m, nn.Linear))
        bv2 = sum(
            (m.totalVariation(mode="additive") + m.fZerofOneAbs(mode="additive")).sum()
            for m in net
            if isinstance(m, DeepBSpline)
        )
        return decay + 1e-4 * bv2

    return network, penalty


def make_step(model: nn.Module, penalty, x: torch.Tensor, y: torch.Tensor, loss: str):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        total = data_loss(loss, model(x), y) + penalty(model)
        total.backward()
        optimizer.step()

    def infer() -> None:
        with torch.no_grad():
            model(x)

    return step, infer


def _with_python_node(fn: Callable[[], None]) -> Callable[[], None]:
    """Run ``fn`` with the spline's Python autograd node instead of the C++ one (same kernels)."""

    def run() -> None:
        node, splines._autograd_node = splines._autograd_node, None
        try:
            fn()
        finally:
            splines._autograd_node = node

    return run


def _without_saved_rises(fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        with native_saved_rises(False):
            fn()

    return run


def _with_tiles(width: int, fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        with native_tiles(width):
            fn()

    return run


def time_block(fn: Callable[[], None], repeats: int, sync: Callable[[], None]) -> float:
    """Median seconds of one call over a block of calls."""
    samples = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - begin)
    return statistics.median(samples)


def _variant_calls(widths: list[int], batch: int, device: torch.device) -> dict[str, tuple]:
    """(train step, inference) callables of every variant, warmed up, on one shared batch."""
    torch.manual_seed(0)
    x = torch.randn(batch, widths[0], device=device)
    if widths[-1] == 1:
        y, loss = (torch.rand(batch, device=device) > 0.5).float(), "bce"
    else:
        y, loss = torch.randint(0, widths[-1], (batch,), device=device), "cross_entropy"
    variants: dict[str, tuple] = {
        "relu": our_network(widths, "relu"),
        "lipspline": our_network(widths, "deepspline"),
    }
    with native_tiles(16) as tile_widths:
        if device.type == "cpu" and 16 in tile_widths:  # the same net on the AVX2 tiles, for the A/B
            variants["lipspline 8-wide tiles"] = our_network(widths, "deepspline")
    with native_saved_rises(True) as saves:
        if device.type == "cpu" and saves:  # the same net with the saved rises switched off
            variants["lipspline rises not saved"] = our_network(widths, "deepspline")
    if device.type == "cpu" and splines.native_autograd_available():  # the same net through the Python node
        variants["lipspline Python node"] = our_network(widths, "deepspline")
    reference = reference_network(widths)
    if reference is not None:
        variants["deepsplines (ref)"] = reference
    fns = {}
    for label, (model, penalty) in variants.items():
        model.to(device)
        fns[label] = make_step(model, penalty, x, y, loss)
        if label == "lipspline 8-wide tiles":
            fns[label] = tuple(_with_tiles(8, fn) for fn in fns[label])
        if label == "lipspline Python node":
            fns[label] = tuple(_with_python_node(fn) for fn in fns[label])
        if label == "lipspline rises not saved":
            fns[label] = tuple(_without_saved_rises(fn) for fn in fns[label])
        for _ in range(5):  # warm-up: allocator, kernel dispatch, Adam state
            fns[label][0]()
            fns[label][1]()
    return fns


def run_case(
    name: str, widths: list[int], batch: int, rounds: int, repeats: int, device: torch.device, instances: int = 1
) -> list[tuple]:
    """Median times of every variant, timed round by round in turn.

    With ``instances`` > 1 each variant is built that many times alike and every copy is timed in the
    rounds; a variant's time is then the mean of its copies' medians. Identical networks in one process
    differ by up to 5 % (where their tensors land in memory), and averaging over copies damps that.
    """
    copies = [_variant_calls(widths, batch, device) for _ in range(instances)]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    steps: dict[tuple[str, int], list[float]] = {}
    infers: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for copy, fns in enumerate(copies):
            for label, (step, infer) in fns.items():
                steps.setdefault((label, copy), []).append(time_block(step, repeats, sync))
                infers.setdefault((label, copy), []).append(time_block(infer, repeats, sync))

    def mean_median(samples: dict[tuple[str, int], list[float]], label: str) -> float:
        return statistics.fmean(statistics.median(samples[(label, copy)]) for copy in range(instances))

    base_step, base_infer = mean_median(steps, "relu"), mean_median(infers, "relu")
    rows = []
    for label in copies[0]:
        s, i = mean_median(steps, label), mean_median(infers, label)
        rows.append((name, label, s * 1e3, s / base_step, i * 1e3, i / base_infer))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--instances", type=int, default=1, help="copies of each network, averaged (see run_case)")
    args = parser.parse_args()
    device = torch.device(args.device)
    with native_tiles(16) as tile_widths:
        print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
              f"native CPU kernel: {native_kernel_available()} (float32 tiles: {tile_widths or 'none'}), "
              f"C++ autograd node: {splines.native_autograd_available()}, K={KNOTS}")
    with native_saved_rises(True) as saves:
        print(f"saved rises (float32 dense layers): {'yes' if saves else 'no, not on this CPU or build'}")
    copies = f", mean over {args.instances} copies of each network" if args.instances > 1 else ""
    print(f"medians over {args.rounds} interleaved rounds x {args.repeats} calls{copies}")
    big, small = ([784, 256, 256, 10], 256), ([2, 20, 1], 1000)
    rows = run_case("784-256-256-10 b256", *big, args.rounds, args.repeats, device, args.instances)
    rows += run_case("2-20-1 b1000", *small, args.rounds, args.repeats, device, args.instances)
    header = f"{'network':<22}{'activation':<24}{'step ms':>10}{'step/ReLU':>11}{'infer ms':>10}{'infer/ReLU':>12}"
    print(header)
    print("-" * len(header))
    for net, label, step_ms, step_ratio, infer_ms, infer_ratio in rows:
        print(f"{net:<22}{label:<24}{step_ms:>10.3f}{step_ratio:>10.2f}x{infer_ms:>10.3f}{infer_ratio:>11.2f}x")
    if not any(label == "deepsplines (ref)" for _, label, *_ in rows):
        print("(reference library not installed: pip install --no-deps deepsplines==1.0.0)")


if __name__ == "__main__":
    main()
