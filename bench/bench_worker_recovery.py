"""Worker-loss recovery, measured: a SIGKILLed worker's job running again on another worker.

    PYTHONPATH=. .venv/bin/python bench/bench_worker_recovery.py [--reps 3] [--load 2] [--fast] [--sqlite]

A production-like deployment on this machine: `lipspline api` and two `lipspline worker`
processes (Celery prefork, concurrency 1, each its own data dir: another "host") on a fresh
PostgreSQL database (``--sqlite``: a SQLite file) and a fresh Redis database, with the DEFAULT
lease settings (``lease_timeout_s`` 60, ``heartbeat_s`` 10, ``reconcile_every_s`` 10;
``--fast`` lowers them to 6 / 1 / 1 for a quick look). ``--load N`` CPU burners (``while True``
loops, default 2) run for the whole measurement.

Each repetition submits a long job, waits until it has trained a few epochs on worker A, then
SIGKILLs A's whole process group (Celery main process and the pool child running the job, as
an OOM kill or a lost host would) and reads the job's event stream (``job_events``, stamped by
the database writers' clocks, all on this host) for:

* noticed: the job back in ``queued`` (the reconciler saw the lease expire), from the kill;
* running: ``running`` again with attempt 2, on worker B;
* epoch: the first epoch of attempt 2 recorded.

The kill comes at a random phase of A's heartbeat, so "noticed" ranges over lease - heartbeat
... lease + one reconciler period. The table prints each stage's median, worst, and its budget:
noticed <= lease + one tick, running <= that + 10 s. Then the job is cancelled and a fresh
worker replaces A for the next repetition.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from lipspline.data import make_circle  # noqa: E402
from tests.support.processes import Deployment, SessionProcess, lipspline_argv  # noqa: E402
from tests.support.services import fresh_postgres_database, fresh_redis_url  # noqa: E402

#: Redis database of this benchmark (tests use 11-13, bench_sweeps 15)
REDIS_DB = 14
DEFAULTS = {"lease": 60.0, "heartbeat": 10.0, "tick": 10.0}
FAST = {"lease": 6.0, "heartbeat": 1.0, "tick": 1.0}

JOB_CONFIG = {
    "architecture": {"hidden": [16, 16], "activation": "deepspline"},
    "spline": {"knots": 21, "range": 3.0},
    "training": {
        "epochs": 10_000,
        "batch_size": 32,
        "lr": 0.01,
        "seed": 0,
        "validation_split": 0.2,
        "early_stopping": False,
    },
    "device": "cpu",
}


class SessionWorker(SessionProcess):
    """A worker host (its own session, so its whole process group can be SIGKILLed) that says when it is ready."""

    def ready(self) -> bool:
        try:
            return " ready." in self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return False


def start_worker(dep: Deployment, name: str) -> SessionWorker:
    return dep.start_host_worker(name, SessionWorker)


def wait_ready(workers: list[SessionWorker], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(w.ready() for w in workers):
        if time.monotonic() > deadline:
            raise RuntimeError("workers not ready:\n" + "\n".join(w.log_tail() for w in workers))
        time.sleep(0.2)
    time.sleep(1.0)  # the consumer is registered with the broker just after "ready"


def events(url: str, job_id: str) -> list[tuple[int, str, dict, datetime]]:
    from sqlalchemy import text

    from lipspline_platform.db.engine import session_scope

    with session_scope(url) as session:
        rows = session.execute(
            text("SELECT seq, type, data, created_at FROM job_events WHERE job_id = :j ORDER BY seq"), {"j": job_id}
        ).all()
    out = []
    for seq, type_, data, created in rows:
        if isinstance(data, str):
            import json

            data = json.loads(data)
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        out.append((seq, type_, data, created))
    return out


def job_row(url: str, job_id: str) -> dict:
    from sqlalchemy import text

    from lipspline_platform.db.engine import session_scope

    with session_scope(url) as session:
        row = session.execute(
            text("SELECT status, attempts, worker_host, heartbeat_at FROM jobs WHERE id = :j"), {"j": job_id}
        ).one()
    beat = row[3]
    if isinstance(beat, str):
        beat = datetime.fromisoformat(beat)
    if beat is not None and beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return {"status": row[0], "attempts": row[1], "worker_host": row[2], "heartbeat_at": beat}


def one_rep(dep: Deployment, url: str, http: httpx.Client, dataset_id: str, workers: dict[str, SessionWorker],
            timing: dict, rep: int) -> dict:
    response = http.post("/v1/jobs", json={"dataset_id": dataset_id, "config": JOB_CONFIG})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 300
    while True:  # a few epochs on worker A
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "running" and job["progress"].get("epoch", 0) >= 2:
            break
        assert job["status"] in {"queued", "running"} and time.monotonic() < deadline, job
        time.sleep(0.2)
    host_a = job["worker_host"]
    name_a = host_a.split("@")[0]
    victim = workers[name_a]
    # a random phase of A's heartbeat: the kill is not aligned with a beat
    time.sleep(random.uniform(0, timing["heartbeat"]))
    killed_at = datetime.now(UTC)
    victim.kill_group()
    last_beat = job_row(url, job_id)["heartbeat_at"]
    before = max(seq for seq, *_ in events(url, job_id))

    noticed = running = epoch = None
    epoch_seconds = 0.0
    host_b = None
    deadline = time.monotonic() + timing["lease"] + 4 * timing["tick"] + 120
    while epoch is None:
        assert time.monotonic() < deadline, (job_id, events(url, job_id)[before - 1 :], dep.logs())
        for seq, type_, data, created in events(url, job_id):
            if seq <= before:
                continue
            if type_ == "status" and data.get("status") == "queued" and noticed is None:
                noticed = created
            elif type_ == "status" and data.get("status") == "running" and data.get("attempt") == 2:
                running = created
            elif type_ == "epoch" and data.get("attempt") == 2 and epoch is None:
                epoch, epoch_seconds = created, float(data.get("epoch_seconds") or 0.0)
            elif type_ == "status" and data.get("status") in {"failed", "cancelled", "succeeded"}:
                raise AssertionError(f"job {job_id} ended: {data}")
        time.sleep(0.1)
    row = job_row(url, job_id)
    host_b = row["worker_host"]
    assert row["attempts"] == 2 and host_b != host_a, row
    http.post(f"/v1/jobs/{job_id}/cancel")

    # a fresh worker replaces A for the next repetition
    del workers[name_a]
    name = f"w{rep + 2}-{os.getpid()}"
    workers[name] = start_worker(dep, name)
    terminal = {"cancelled", "succeeded", "failed"}
    while http.get(f"/v1/jobs/{job_id}").json()["status"] not in terminal:
        time.sleep(0.2)
    began = time.monotonic()
    wait_ready(list(workers.values()))
    startup = time.monotonic() - began

    def since(t: datetime) -> float:
        return (t - killed_at).total_seconds()

    result = {
        "beat_age": since(last_beat) * -1 if last_beat else float("nan"),
        "noticed": since(noticed),
        "running": since(running),
        "epoch": since(epoch),
        "start": (epoch - running).total_seconds() - epoch_seconds,
        "tick_wait": (noticed - last_beat).total_seconds() - timing["lease"] if last_beat else float("nan"),
    }
    print(f"rep {rep + 1}: last beat {result['beat_age']:.1f} s before the kill; noticed {result['noticed']:.1f} s "
          f"(lease due +{result['tick_wait']:.1f} s), running on {host_b.split('@')[0]} {result['running']:.1f} s, "
          f"first epoch {result['epoch']:.1f} s after the kill ({epoch_seconds:.1f} s of it training); a fresh "
          f"worker was ready {startup:.1f} s after its start", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--load", type=int, default=2, help="CPU-burning processes during the measurement")
    parser.add_argument("--fast", action="store_true", help="lease 6 s, heartbeat 1 s, reconciler 1 s")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    args = parser.parse_args()
    timing = FAST if args.fast else DEFAULTS

    burners: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.sqlite:
            url, drop = f"sqlite:///{workdir / 'shared.db'}", (lambda: None)
        else:
            url, drop = fresh_postgres_database()
        env = {"LIPSPLINE_DATA_DIR": str(workdir / "api-data"), "LIPSPLINE_DATABASE_URL": url,
               "LIPSPLINE_BROKER_URL": fresh_redis_url(REDIS_DB)}
        if args.sqlite:
            subprocess.run(lipspline_argv("db", "upgrade"), env=dict(os.environ, **env), check=True,
                           capture_output=True)
        if args.fast:
            env.update(LIPSPLINE_LEASE_TIMEOUT_S=str(timing["lease"]), LIPSPLINE_HEARTBEAT_S=str(timing["heartbeat"]),
                       LIPSPLINE_RECONCILE_EVERY_S=str(timing["tick"]))
        results: list[dict] = []
        try:
            with Deployment(env, workdir, embedded=False, workers=0).running() as dep:
                workers = {}
                for i in range(2):
                    name = f"w{i}-{os.getpid()}"
                    workers[name] = start_worker(dep, name)
                wait_ready(list(workers.values()))
                burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
                with dep.client() as http:
                    data = make_circle(1000, seed=0)
                    dataset = http.post("/v1/datasets", json={"inputs": data.X.tolist(), "targets": data.y.tolist()})
                    assert dataset.status_code == 201, dataset.text
                    for rep in range(args.reps):
                        results.append(one_rep(dep, url, http, dataset.json()["id"], workers, timing, rep))
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
            drop()

    lease, tick = timing["lease"], timing["tick"]
    budgets = {"noticed": lease + tick, "running": lease + tick + 10, "epoch": None}
    labels = {"noticed": "kill -> job queued again (lease noticed expired)",
              "running": "kill -> running on worker B (attempt 2)",
              "epoch": "kill -> first epoch of attempt 2 recorded",
              "start": "claim -> first epoch, less the epoch's training time",
              "tick_wait": "lease due (last beat + lease) -> noticed"}
    db = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"\nworker-loss recovery: lease {lease:g} s, heartbeat {timing['heartbeat']:g} s, reconciler {tick:g} s; "
          f"{db} + Redis; {os.cpu_count()} cores, {args.load} CPU burners; {len(results)} repetitions")
    print("| stage | median (s) | worst (s) | budget (s) |")
    print("| --- | ---: | ---: | ---: |")
    for key in ("noticed", "running", "epoch", "start", "tick_wait"):
        values = [r[key] for r in results]
        budget = budgets.get(key)
        budget_text = f"{budget:.0f}" if budget else ("≤ " + f"{tick:g}" if key == "tick_wait" else "–")
        print(f"| {labels[key]} | {statistics.median(values):.1f} | {max(values):.1f} | {budget_text} |")


if __name__ == "__main__":
    main()
