"""Sweeps, measured: successive halving against grid, the scale-out curve, and the circle front.

    PYTHONPATH=. python bench/bench_sweeps.py [--part halving|scale|front|all] [--workers 1 2 3]

* halving: the same 27-point space (lambda x K x lr, 18 epochs) on a 600-point circle, grid vs
  ASHA halving (eta 3, rungs at epochs 2 and 6), in-process through ``lipspline.sweeps.local``
  (concurrency 1); prints the best validation accuracy of each and the epochs each spent.
* scale: a 9-trial grid sweep through `lipspline api` + N `lipspline worker` processes on
  PostgreSQL + Redis (tests/support), wall time from POST to the sweep's end, for each N; each
  worker trains on one thread, so the curve can rise until the workers outnumber the cores.
* front: the circle lambda sweep (deep spline (2,2,1)), test accuracy vs certified L.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api_schemas import TrainingConfig  # noqa: E402
from lipspline.data import make_circle  # noqa: E402
from lipspline.sweeps.local import run_sweep  # noqa: E402
from lipspline.sweeps.plan import SweepSpec  # noqa: E402
from lipspline.sweeps.selection import Selection  # noqa: E402
from lipspline.sweeps.space import parse_space  # noqa: E402

SPACE = {"objective.lambda": [1e-6, 1e-3, 1e-1], "spline.knots": [5, 11, 21]}
#: halving's savings grow with the number of trials: 27 points (lambda x K x lr)
HALVING_SPACE = {**SPACE, "training.lr": [0.003, 0.01, 0.03]}
HALVING_EPOCHS, HALVING_MIN_EPOCHS = 18, 2


def base(epochs: int) -> TrainingConfig:
    return TrainingConfig.model_validate({
        "architecture": {"hidden": [4]},
        "spline": {"range": 3.0},
        "training": {"epochs": epochs, "batch_size": 32, "lr": 0.01, "seed": 0, "validation_split": 0.25},
        "device": "cpu",
    })


def halving_vs_grid() -> None:
    data = make_circle(600, seed=5)
    config = base(HALVING_EPOCHS)
    results = {}
    for strategy in ("grid", "halving"):
        spec = SweepSpec(config, parse_space(HALVING_SPACE, config), strategy, max_trials=27, eta=3,
                         min_epochs=HALVING_MIN_EPOCHS)
        sweep = run_sweep(data, spec)
        best = max(t.score for t in sweep.trials if t.score is not None)
        results[strategy] = (best, sweep.total_epochs, sweep.seconds)
        stopped = [t.epochs for t in sweep.trials if t.status == "stopped"]
        print(f"{strategy:8s} best val accuracy {100 * best:6.2f} %  epochs {sweep.total_epochs:4d}  "
              f"wall {sweep.seconds:6.1f} s  stopped early: {len(stopped)} (at epochs {sorted(stopped)})")
    (g_best, g_epochs, _), (h_best, h_epochs, _) = results["grid"], results["halving"]
    print(f"halving: {100 * (g_best - h_best):+.2f} points below grid's best, {100 * h_epochs / g_epochs:.0f} % "
          "of grid's epochs")


def scale_out(worker_counts: list[int], epochs: int, rows: int) -> None:
    """The same 9-trial grid sweep on 1, 2, 3 ... workers; a table of wall time, speed-up and trial overlap.

    A production-like deployment (default settings, not the fault tests' fast heartbeats and per-epoch
    database checkpoints): `lipspline api` on a fresh PostgreSQL database, a fresh Redis database as
    broker, N `lipspline worker` processes (concurrency 1, one torch/BLAS thread each, so a worker uses
    one core). "busy" is the sum of the trials' run times (started to finished): busy / wall is how
    many trials ran at once on average, the most the cores allow.
    """
    import os
    import tempfile
    from datetime import datetime

    import httpx

    from tests.support.processes import Deployment
    from tests.support.services import fresh_postgres_database, fresh_redis_url

    data = make_circle(rows, seed=7)
    body = {
        "base_config": base(epochs).to_json(),
        "space": SPACE,
        "strategy": "grid",
        "budget": {"max_trials": 9, "max_concurrent": 9},
    }
    one_thread = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    rows_out: list[tuple[int, float, int, float]] = []
    for n in worker_counts:
        url, drop = fresh_postgres_database()
        env = {"LIPSPLINE_DATABASE_URL": url, "LIPSPLINE_BROKER_URL": fresh_redis_url(15), **one_thread}
        try:
            with tempfile.TemporaryDirectory() as tmp:
                env["LIPSPLINE_DATA_DIR"] = str(Path(tmp) / "data")
                with Deployment(env, Path(tmp), embedded=False, workers=n).running() as dep:
                    http: httpx.Client = dep.client()
                    dataset = http.post("/v1/datasets", json={"inputs": data.X.tolist(),
                                                              "targets": data.y.tolist()}).json()
                    time.sleep(3)  # the workers connect to the broker
                    began = time.perf_counter()
                    sweep_id = http.post("/v1/sweeps", json={**body, "dataset_id": dataset["id"]}).json()["id"]
                    while (sweep := http.get(f"/v1/sweeps/{sweep_id}").json())["status"] == "running":
                        time.sleep(0.2)
                    wall = time.perf_counter() - began
                    jobs = [http.get(f"/v1/jobs/{t['job_id']}").json() for t in sweep["trials"]]
        finally:
            drop()
        busy = sum((datetime.fromisoformat(j["finished_at"]) - datetime.fromisoformat(j["started_at"])).total_seconds()
                   for j in jobs)
        hosts = len({j["worker_host"] for j in jobs})
        rows_out.append((n, wall, hosts, busy))
        print(f"{n} worker(s): {sweep['status']} in {wall:.1f} s", flush=True)

    print(f"\nscale-out: 9-trial grid sweep, {epochs} epochs on {rows} rows per trial, {os.cpu_count()} cores")
    print("workers  wall (s)  speed-up vs 1  trials on hosts  busy (s)  trials at once (busy/wall)")
    wall_one = rows_out[0][1]
    for n, wall, hosts, busy in rows_out:
        print(f"{n:>7}  {wall:8.1f}  {wall_one / wall:12.2f}x  {hosts:>15}  {busy:8.1f}  {busy / wall:10.2f}")


def circle_front() -> None:
    data = make_circle(1000, seed=0)
    test = make_circle(5000, seed=2_000_003)
    config = TrainingConfig.model_validate({
        "architecture": {"hidden": [2]},
        "spline": {"knots": 21, "range": 3.0},
        "training": {"epochs": 40, "batch_size": 32, "lr": 3e-3, "seed": 0, "validation_split": 0.0},
        "device": "cpu",
    })
    lambdas = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    spec = SweepSpec(config, parse_space({"objective.lambda": lambdas}, config), "grid", max_trials=6,
                     selection=Selection("knee"))

    def test_accuracy(model) -> float:
        return float(np.mean(np.asarray(model.predict(test.X)) == test.y))

    sweep = run_sweep(data, spec, score=test_accuracy, evaluation=test)
    print("λ        test acc (%)  certified L   on front")
    for t in sweep.trials:
        mark = "yes" if t.index in sweep.summary.lipschitz_front else "no"
        knee = "  <- knee" if t.index == sweep.summary.selected else ""
        print(f"{t.params['objective.lambda']:<8.0e} {100 * t.score:10.2f}  {t.lipschitz:11.3f}   {mark}{knee}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["halving", "scale", "front", "all"], default="all")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=60, help="scale: epochs per trial")
    parser.add_argument("--rows", type=int, default=1000, help="scale: dataset rows")
    args = parser.parse_args()
    if args.part in ("halving", "all"):
        halving_vs_grid()
    if args.part in ("front", "all"):
        circle_front()
    if args.part in ("scale", "all"):
        scale_out(args.workers, args.epochs, args.rows)


if __name__ == "__main__":
    main()
