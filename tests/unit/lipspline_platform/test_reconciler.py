"""The reconciler and the lease rules on a SQLite database (no servers): what one pass does to
each kind of job, that it never acts twice, and that a claim respects a live lease."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api_schemas import JobStatus
from lipspline_platform.db.engine import dispose_all, session_scope
from lipspline_platform.db.migrate import upgrade
from lipspline_platform.db.tables import DEFAULT_TENANT, DatasetRow, JobCheckpointRow, JobRow
from lipspline_platform.jobs import lifecycle
from lipspline_platform.jobs.reconciler import reconcile_once
from lipspline_platform.settings import Settings
from worker import training_job

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path, lease_timeout_s=60, redispatch_after_s=300, max_attempts=3)
    upgrade(settings.resolved_database_url)
    with session_scope(settings.resolved_database_url) as session:
        session.add(DatasetRow(id="d1", tenant_id=DEFAULT_TENANT, name="d", task="classification", n_samples=1,
                               n_features=1, feature_names=["x"], source_format="json", sha256="0" * 64,
                               content=b""))
    yield settings
    dispose_all()


def add_job(settings: Settings, job_id: str, status: str, *, attempts: int = 1, beat_ago: float | None = None,
            sent_ago: float | None = None, cancel: bool = False, checkpoint: bool = False) -> None:
    with session_scope(settings.resolved_database_url) as session:
        session.add(
            JobRow(
                id=job_id,
                tenant_id=DEFAULT_TENANT,
                dataset_id="d1",
                config={},
                status=status,
                queue="cpu",
                cancel_requested=cancel,
                progress={},
                attempts=attempts,
                worker_host="w@h",
                created_at=NOW - timedelta(hours=1),
                updated_at=NOW - timedelta(hours=1),
                heartbeat_at=None if beat_ago is None else NOW - timedelta(seconds=beat_ago),
                dispatched_at=None if sent_ago is None else NOW - timedelta(seconds=sent_ago),
            )
        )
        if checkpoint:
            session.flush()
            session.add(JobCheckpointRow(job_id=job_id, epoch=3, blob=b"x", updated_at=NOW))


def job(settings: Settings, job_id: str) -> JobRow:
    with session_scope(settings.resolved_database_url) as session:
        return session.get(JobRow, job_id)


def checkpoints(settings: Settings) -> int:
    with session_scope(settings.resolved_database_url) as session:
        return session.query(JobCheckpointRow).count()


class Sent(list):
    def __call__(self, _settings: Settings, job_id: str, queue: str) -> None:
        self.append((job_id, queue))


def test_expired_lease_requeues_and_resends_keeping_attempts(settings: Settings) -> None:
    add_job(settings, "dead", JobStatus.running, attempts=1, beat_ago=61, checkpoint=True)
    add_job(settings, "alive", JobStatus.running, attempts=1, beat_ago=5)
    sent = Sent()
    outcome = reconcile_once(settings, sent, now=NOW)
    assert outcome.requeued == ["dead"] and sent == [("dead", "cpu")]
    row = job(settings, "dead")
    assert row.status == JobStatus.queued and row.attempts == 1 and row.heartbeat_at is None
    assert "no heartbeat for 60 s" in row.error and "re-queued" in row.error
    assert checkpoints(settings) == 1  # kept: the next run resumes from it
    assert job(settings, "alive").status == JobStatus.running
    # a second pass (or a second reconciler) finds nothing left to do
    assert not reconcile_once(settings, sent, now=NOW) and len(sent) == 1


def test_max_attempts_fails_with_a_clear_error_and_cancel_wins(settings: Settings) -> None:
    add_job(settings, "tired", JobStatus.running, attempts=3, beat_ago=120, checkpoint=True)
    add_job(settings, "unwanted", JobStatus.running, attempts=1, beat_ago=120, cancel=True)
    sent = Sent()
    outcome = reconcile_once(settings, sent, now=NOW)
    assert outcome.failed == ["tired"] and outcome.cancelled == ["unwanted"] and sent == []
    tired = job(settings, "tired")
    assert tired.status == JobStatus.failed and tired.error.startswith("gave up after 3 attempts")
    assert tired.finished_at is not None and checkpoints(settings) == 0
    assert job(settings, "unwanted").status == JobStatus.cancelled


def test_lost_messages_are_resent_and_a_failed_send_is_retried(settings: Settings) -> None:
    add_job(settings, "lost", JobStatus.queued, attempts=0, sent_ago=301)
    add_job(settings, "never-stamped", JobStatus.queued, attempts=0)  # created an hour ago, no dispatched_at
    add_job(settings, "fresh", JobStatus.queued, attempts=0, sent_ago=10)

    def broken(*_args) -> None:
        raise ConnectionError("redis down")

    outcome = reconcile_once(settings, broken, now=NOW)
    assert sorted(outcome.resent) == ["lost", "never-stamped"]
    sent = Sent()  # the broker is back: the next pass sends them again at once
    reconcile_once(settings, sent, now=NOW + timedelta(seconds=1))
    assert sorted(sent) == [("lost", "cpu"), ("never-stamped", "cpu")]
    assert not reconcile_once(settings, sent, now=NOW + timedelta(seconds=2))


def test_concurrent_reconcilers_act_once(settings: Settings) -> None:
    for i in range(8):
        add_job(settings, f"dead{i}", JobStatus.running, beat_ago=90)
        add_job(settings, f"lost{i}", JobStatus.queued, attempts=0, sent_ago=900)
    sent = Sent()
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        reconcile_once(settings, sent, now=NOW)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(j for j, _ in sent) == sorted([f"dead{i}" for i in range(8)] + [f"lost{i}" for i in range(8)])


def test_claim_respects_a_live_lease_and_fences_the_old_runner(settings: Settings) -> None:
    now = datetime.now(UTC)
    add_job(settings, "j", JobStatus.running, attempts=1)
    with session_scope(settings.resolved_database_url) as session:
        session.get(JobRow, "j").heartbeat_at = now
    assert lifecycle.claim(settings, "j", "dup@h") is None  # duplicate delivery: nothing to do
    old = training_job.Lease(settings, "j", attempt=1)
    assert old.renew()
    with session_scope(settings.resolved_database_url) as session:
        session.get(JobRow, "j").heartbeat_at = now - timedelta(seconds=61)
    claim = lifecycle.claim(settings, "j", "new@h")
    assert claim is not None and claim.attempt == 2
    assert job(settings, "j").worker_host == "new@h"
    assert not old.renew() and old.lost.is_set()  # the old runner learns it lost the job
    assert training_job.Lease(settings, "j", attempt=2).renew()


def test_claim_after_max_attempts_fails(settings: Settings) -> None:
    add_job(settings, "j", JobStatus.queued, attempts=3)
    assert lifecycle.claim(settings, "j", "w@h") is None
    row = job(settings, "j")
    assert row.status == JobStatus.failed and "gave up after 3 attempts" in row.error


def test_a_pass_advances_sweeps_once_and_never_launches_a_trial_twice(settings: Settings) -> None:
    """A trial that ended without the worker's advance (a crash): the next pass launches the next trial, once."""
    from lipspline_platform import sweeps
    from lipspline_platform.db.tables import SweepRow, SweepTrialRow

    request = {"dataset_id": "d1", "base_config": {"training": {"epochs": 2}}, "strategy": "grid",
               "space": {"objective.lambda": [0.0, 1e-3, 1e-1]},
               "budget": {"max_trials": 3, "max_concurrent": 1}}
    _, planned = sweeps.plan(request)
    with session_scope(settings.resolved_database_url) as session:
        first = sweeps.create(session, sweep_id="s1", tenant_id=DEFAULT_TENANT, dataset_id="d1", request=request,
                              planned=planned, register_as=None)
    assert len(first) == 1
    sent: list[str] = []
    assert reconcile_once(settings, lambda _s, job_id, _q: sent.append(job_id), now=NOW).launched == []
    with session_scope(settings.resolved_database_url) as session:  # the first trial's job ends (failed)
        session.get(JobRow, first[0][0]).status = JobStatus.failed
    outcome = reconcile_once(settings, lambda _s, job_id, _q: sent.append(job_id), now=NOW)
    assert len(outcome.launched) == 1 and outcome.launched[0] in sent  # (the pass also re-sends queued jobs)
    assert reconcile_once(settings, lambda _s, job_id, _q: sent.append(job_id), now=NOW).launched == []
    with session_scope(settings.resolved_database_url) as session:
        trials = session.query(SweepTrialRow).order_by(SweepTrialRow.trial).all()
        assert [t.trial for t in trials] == [0, 1] and session.get(SweepRow, "s1").launched == 2


def test_next_lease_expiry_is_the_oldest_running_beat_plus_the_lease(settings: Settings) -> None:
    assert lifecycle.next_lease_expiry(settings) is None  # nothing running: the period alone
    add_job(settings, "recent", JobStatus.running, beat_ago=10)
    add_job(settings, "older", JobStatus.running, beat_ago=30)
    add_job(settings, "waiting", JobStatus.queued, attempts=0, sent_ago=900)
    assert lifecycle.next_lease_expiry(settings) == NOW - timedelta(seconds=30) + timedelta(seconds=60)


def test_reconciler_wakes_at_a_lease_deadline_not_a_period_later(settings: Settings) -> None:
    """Worker-loss recovery: with a 30 s period and a 1.5 s lease, a job whose heartbeats stop is
    re-queued and re-sent just after its lease runs out; one whose runner keeps beating is not."""
    from lipspline_platform.jobs.reconciler import Reconciler

    fast = settings.model_copy(update={"lease_timeout_s": 1.5, "reconcile_every_s": 30.0})
    began = datetime.now(UTC)
    with session_scope(fast.resolved_database_url) as session:
        for job_id in ("dead", "alive"):
            session.add(JobRow(id=job_id, tenant_id=DEFAULT_TENANT, dataset_id="d1", config={}, status="running",
                               queue="cpu", cancel_requested=False, progress={}, attempts=1, worker_host="w@h",
                               created_at=began, updated_at=began, heartbeat_at=began))
    stop = threading.Event()

    def beat() -> None:  # the live runner's lease thread
        while not stop.wait(0.3):
            assert lifecycle.renew_lease(fast, "alive", 1)

    beating = threading.Thread(target=beat, daemon=True)
    beating.start()
    sent = Sent()
    reconciler = Reconciler(fast, sent).start()
    try:
        deadline = time.monotonic() + 10
        while job(fast, "dead").status == JobStatus.running:
            assert time.monotonic() < deadline, "the expired lease was not noticed"
            time.sleep(0.05)
        noticed_s = (datetime.now(UTC) - began).total_seconds()
        time.sleep(0.5)  # the re-send follows the re-queue in the same pass
    finally:
        reconciler.stop()
        stop.set()
        beating.join()
    assert 1.5 <= noticed_s < 5.0, noticed_s  # the lease, plus at most the wake-up margin and a slow pass
    assert job(fast, "dead").status == JobStatus.queued and sent == [("dead", "cpu")]
    assert job(fast, "alive").status == JobStatus.running  # a live runner is never taken back early
