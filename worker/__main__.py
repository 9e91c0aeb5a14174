"""``python -m worker``: start a Celery worker that trains LipSpline jobs.

``lipspline worker`` and ``lipspline serve`` (its embedded worker) run this module
as a process of its own, so the API package never imports the worker package.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence

from celery.signals import setup_logging

from lipspline_platform.observability.metrics_dir import prepare_multiprocess_dir, remove_multiprocess_dir
from lipspline_platform.observability.structured_logging import configure_logging
from lipspline_platform.observability.tracing import configure_tracing
from lipspline_platform.settings import get_settings
from worker.celery_app import worker_app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--queues", default="cpu", help="comma-separated queues to consume (cpu, gpu)")
    parser.add_argument("--concurrency", type=int, default=1, help="training processes")
    parser.add_argument("--pool", default=None, help="Celery pool (prefork by default; solo: in-process)")
    parser.add_argument("--hostname", default=None, help="worker name shown on the jobs it runs")
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve this node's /metrics here (LIPSPLINE_WORKER_METRICS_PORT)"
    )
    return parser


def celery_argv(args: argparse.Namespace) -> list[str]:
    argv = ["worker", "--queues", args.queues, "--concurrency", str(args.concurrency), "--loglevel", "INFO"]
    # no mingle (a 1 s wait at start for neighbours' revoked-task lists: jobs are cancelled through
    # the database, never revoked) and no gossip (worker events nothing here listens to): a worker
    # started to replace a lost one consumes sooner. `inspect ping` (the health check) still answers.
    argv += ["--without-mingle", "--without-gossip"]
    argv += ["--hostname", args.hostname or f"lipspline-{os.getpid()}@{socket.gethostname()}"]
    if args.pool:
        argv += ["--pool", args.pool]
    return argv


def _keep_our_logging(**_kwargs) -> None:
    pass


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.metrics_port is not None:
        os.environ["LIPSPLINE_WORKER_METRICS_PORT"] = str(args.metrics_port)
    # before anything imports prometheus-client: the pool's processes share one metrics directory
    metrics_dir = prepare_multiprocess_dir()
    settings = get_settings()
    settings.ensure_dirs()
    configure_logging(settings.log_format, settings.log_level)
    # connected, this signal tells Celery not to set up logging itself: every line goes
    # through the handler above (JSON with the job's context), in the pool's children too
    setup_logging.connect(_keep_our_logging, weak=False)
    # before the pool starts: its children inherit the instrumentation (the SDK restarts its
    # export thread after a fork); nothing is imported unless an OTLP endpoint is set
    configure_tracing(settings, "lipspline-worker")
    try:
        worker_app(settings).worker_main(celery_argv(args))
    finally:
        remove_multiprocess_dir(metrics_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
