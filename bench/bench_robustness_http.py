"""Certified robust accuracy measured from outside: through HTTP, from what ``/v1/.../predict`` returns.

``bench_robustness.py`` scores LipSpline in-process (``fit`` + ``certify_global``). A user sees only
the service, so this script asks the same question the way a platform would: it starts
``lipspline serve`` (embedded default) in a temporary data dir, uploads the training pool of
``bench_robustness``'s split (same datasets, seeds and test rows), submits one job per method,
sends the test rows to ``POST /v1/models/{id}/predict`` and counts a test row as certified at r
when its returned label is right and its returned ``certified_radius`` is >= r. The radii are
d/16, d/8, d/4 with d the *test* split's median distance to the nearest point of another class,
as in ``bench_robustness``; the target radius is d_train / 8 (``--target-fraction``).

Methods: ``target`` (``robustness.target_radius`` and the seed, nothing else), ``one_lipschitz``
(``objective.mode: one_lipschitz``, hidden [128, 128]), ``default`` (only the seed), and ``sweep``:
one ``POST /v1/sweeps`` per split over ``robustness.target_radius`` in d_train * (1/16, 1/8, 1/4),
``select: {rule: max_certified_accuracy, radius: d_train / 8}``; the model the service selects is
scored at every radius, and at d/16 and d/4 also the trial the same rule picks at d_train / 16 and
d_train / 4 from the trials' validation curves in the sweep's answer (what a sweep selected at that
radius would return: the trials are seeded, so they would be the same).

Run: ``python bench/bench_robustness_http.py [--datasets digits,wine] [--seeds 1] [--methods target]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from bench_robustness import DATASETS, RADIUS_FRACTIONS, Split, make_split, scores
from bench_service import expect, wait_job

from lipspline.sweeps.selection import Selection, TrialOutcome, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.processes import Deployment, wait_for_sweep  # noqa: E402 - the e2e suite's live deployment

METHODS = ("target", "one_lipschitz", "default", "sweep")


def method_config(method: str, split: Split, seed: int, target_fraction: float) -> dict:
    config: dict = {"training": {"seed": seed}}
    if method == "target":
        config["robustness"] = {"target_radius": split.d_train * target_fraction}
    elif method == "one_lipschitz":
        config.update(objective={"mode": "one_lipschitz"}, architecture={"hidden": [128, 128]})
    return config


def served_scores(client: httpx.Client, model_id: str, split: Split) -> tuple[float, list[float], float]:
    """Clean accuracy and CRA (%) at the split's radii, from the predict answers; and the served bound."""
    answer = expect(client.post(f"/v1/models/{model_id}/predict", json={"inputs": split.x_test.tolist()}), 200)
    labels = np.array([int(label) for label in answer["predictions"]])
    radius = np.array(answer["certified_radius"], dtype=np.float64)
    clean, cra = scores(labels == split.y_test, radius, split.radii)
    return clean, cra, float(answer["lipschitz_bound"])


def run_method(client: httpx.Client, dataset_id: str, split: Split, method: str, seed: int,
               target_fraction: float) -> tuple[float, list[float], float, float]:
    """Train ``method`` on the uploaded pool, score the test rows: clean %, CRA %, served bound, job seconds."""
    config = method_config(method, split, seed, target_fraction)
    began = time.perf_counter()
    job = expect(client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": config}), 202)
    state = wait_job(client, job["id"], timeout_s=1800.0, poll_s=0.5)
    if state["status"] != "succeeded":
        raise RuntimeError(f"{split.name} {method}: the job ended {state['status']}: {state.get('error')}")
    seconds = time.perf_counter() - began
    clean, cra, bound = served_scores(client, state["model_id"], split)
    print(f"  {split.name} seed {seed} {method}: clean {clean:.1f} %, CRA {' / '.join(f'{v:.1f}' for v in cra)} %, "
          f"L {bound:.4g}, {seconds:.0f} s", flush=True)
    return clean, cra, bound, seconds


def run_sweep(client: httpx.Client, dataset_id: str, split: Split,
              seed: int) -> tuple[float, list[float], float, float]:
    """One sweep over the target radius, selected by the service at d_train / 8 (module docstring)."""
    radii = [split.d_train * f for f in RADIUS_FRACTIONS]
    body = {"dataset_id": dataset_id,
            "base_config": {"training": {"seed": seed}, "robustness": {"extra_radii": radii}},
            "space": {"robustness.target_radius": radii}, "strategy": "grid",
            "budget": {"max_trials": len(radii), "max_concurrent": 1},
            "select": {"rule": "max_certified_accuracy", "radius": radii[1]}}
    began = time.perf_counter()
    sweep = wait_for_sweep(client, expect(client.post("/v1/sweeps", json=body), 202)["id"], timeout_s=3600)
    seconds = time.perf_counter() - began
    if sweep["selected"] is None:
        raise RuntimeError(f"{split.name}: the sweep selected nothing: {sweep['note']}")
    outcomes = [TrialOutcome(t["trial"], t["score"], t["certified_lipschitz"], tuple(t["certified_accuracy"]["radii"]),
                             tuple(t["certified_accuracy"]["global"]))
                for t in sweep["trials"] if t["status"] == "succeeded"]
    models = {t["trial"]: t["model_id"] for t in sweep["trials"]}
    trained_for = {t["trial"]: split.d_train / t["params"]["robustness.target_radius"] for t in sweep["trials"]}
    picked = [select(outcomes, Selection("max_certified_accuracy", radius=r)) for r in radii]
    if picked[1] != sweep["selected"]["trial"]:
        raise RuntimeError(f"{split.name}: the service selected trial {sweep['selected']['trial']}, "
                           f"the rule picks {picked[1]}")
    cra = []
    for index, trial in enumerate(picked):
        if trial is None:  # no trial certifies a validation row at this radius: no model, nothing certified
            cra.append(0.0)
            continue
        clean_i, cra_i, bound_i = served_scores(client, models[trial], split)
        cra.append(cra_i[index])
        if index == 1:
            clean, bound = clean_i, bound_i
    chosen = " / ".join("none" if t is None else f"d/{round(trained_for[t])}" for t in picked)
    print(f"  {split.name} seed {seed} sweep: clean {clean:.1f} %, CRA {' / '.join(f'{v:.1f}' for v in cra)} %, "
          f"L {bound:.4g}, {seconds:.0f} s (selected: trained for {chosen})", flush=True)
    return clean, cra, bound, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="digits", help=f"comma-separated, of {','.join(DATASETS)}")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (0, 1, ...)")
    parser.add_argument("--methods", default="target", help=f"comma-separated, of {','.join(METHODS)}")
    parser.add_argument("--target-fraction", type=float, default=1 / 8, help="target radius = d_train times this")
    args = parser.parse_args()
    methods = args.methods.split(",")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}")

    rows: dict[tuple[str, str], list[tuple[float, list[float], float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="lipspline-bench-cra-") as tmp:
        env = {"LIPSPLINE_DATA_DIR": str(Path(tmp) / "data")}
        with Deployment(env, Path(tmp), embedded=True).running() as deployment, \
                deployment.client(timeout=300.0) as client:
            for name in args.datasets.split(","):
                for seed in range(args.seeds):
                    split = make_split(name, seed)
                    body = {"name": f"{name}-{seed}", "inputs": split.x_pool.tolist(),
                            "targets": [int(v) for v in split.y_pool]}
                    dataset_id = expect(client.post("/v1/datasets", json=body), 201)["id"]
                    for method in methods:
                        rows.setdefault((name, method), []).append(
                            run_sweep(client, dataset_id, split, seed) if method == "sweep"
                            else run_method(client, dataset_id, split, method, seed, args.target_fraction))

    radii = ", ".join(f"d/{round(1 / f)}" for f in RADIUS_FRACTIONS)
    print(f"\n## CRA through HTTP (medians of {args.seeds} seed(s); radii {radii} of the test split)\n")
    print("| dataset | method | clean % | " + " | ".join(f"CRA d/{round(1 / f)} %" for f in RADIUS_FRACTIONS)
          + " | served L | s (submit to done) |")
    print("|---|---|---|" + "---|" * len(RADIUS_FRACTIONS) + "---|---|")
    for (name, method), results in rows.items():
        clean = statistics.median(r[0] for r in results)
        cra = [statistics.median(r[1][i] for r in results) for i in range(len(RADIUS_FRACTIONS))]
        bound = statistics.median(r[2] for r in results)
        seconds = statistics.median(r[3] for r in results)
        print(f"| {name} | {method} | {clean:.1f} | " + " | ".join(f"{v:.1f}" for v in cra)
              + f" | {bound:.4g} | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
