"""1-Lipschitz convolutions: tap-sum rescaling vs AOL, on 8 x 8 digits read as images.

The same one_lipschitz CNN (conv channels [16, 32], 3 x 3 kernels, stride 2, hidden [128],
GroupSort), trained with nothing but ``robustness.target_radius = d_train / 8``, once with
``objective.one_lipschitz_conv = spectral`` (each kernel divided by its tap sum) and once with
``aol`` (input channels rescaled by the kernel's autocorrelation, proven by the Schur test).
Splits, radii (d/16, d/8, d/4 of the test split's own d) and scoring are those of
``bench/bench_robustness.py``: certified accuracy read from the served map's sound global
certificate. It prints clean accuracy, CRA, the certified L and the training time per seed, then
the medians side by side.

Run: ``python bench/bench_aol_conv.py`` (3 seeds, about 5 minutes on 2 cores) or ``--seeds 1``.
"""

from __future__ import annotations

import argparse
import statistics

from bench_robustness import Result, lipspline_method, make_split

KINDS = ("spectral", "aol")
CNN = {"kind": "cnn", "input_shape": [1, 8, 8], "conv_channels": [16, 32], "kernel_size": 3, "conv_stride": 2,
       "hidden": [128]}


def run(kind: str, seed: int) -> Result:
    """bench_robustness's LipSpline run (train on the pool, score the test rows) with this CNN."""

    def overrides(split, seed: int, options: dict) -> dict:
        return {"architecture": CNN, "objective": {"one_lipschitz_conv": kind},
                "robustness": {"target_radius": split.d_train / 8}, "training": {"seed": seed}}

    return lipspline_method(overrides)(make_split("digits", seed), seed, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[Result]] = {kind: [] for kind in KINDS}
    for seed in range(args.seeds):
        for kind in KINDS:
            result = run(kind, seed)
            results[kind].append(result)
            print(f"seed {seed} {kind:<9} clean {result.clean:5.1f}  CRA {' / '.join(f'{v:.1f}' for v in result.cra)}  "
                  f"L {result.lipschitz:.4f}  {result.seconds:.1f} s", flush=True)
    print(f"\nmedians of {args.seeds} seeds (digits 8 x 8, 500 test rows; CRA at d/16, d/8, d/4)\n")
    print("| convolutions | clean | CRA d/16 | CRA d/8 | CRA d/4 | certified L | training s |")
    print("|---|---|---|---|---|---|---|")
    for kind, rows in results.items():
        cra = [statistics.median(r.cra[i] for r in rows) for i in range(3)]
        print(f"| {kind} | {statistics.median(r.clean for r in rows):.1f} | "
              + " | ".join(f"{v:.1f}" for v in cra)
              + f" | {statistics.median(r.lipschitz for r in rows):.4f} | "
              f"{statistics.median(r.seconds for r in rows):.1f} |")


if __name__ == "__main__":
    main()
