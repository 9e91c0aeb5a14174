"""``python -m worker``: start a Celery worker that trains LipSpline jobs.

``lipspline worker`` and ``lipspline serve`` (its embedded worker) run this module
as a process of its own, so the API package never imports the worker package.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence

from lipspline_platform.settings import get_settings
from worker.celery_app import worker_app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--queues", default="cpu", help="comma-separated queues to consume (cpu, gpu)")
    parser.add_argument("--concurrency", type=int, default=1, help="training processes")
    parser.add_argument("--pool", default=None, help="Celery pool (prefork by default; solo: in-process)")
    parser.add_argument("--hostname", default=None, help="worker name shown on the jobs it runs")
    return parser


def celery_argv(args: argparse.Namespace) -> list[str]:
    argv = ["worker", "--queues", args.queues, "--concurrency", str(args.concurrency), "--loglevel", "INFO"]
    argv += ["--hostname", args.hostname or f"lipspline-{os.getpid()}@{socket.gethostname()}"]
    if args.pool:
        argv += ["--pool", args.pool]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    settings.ensure_dirs()
    worker_app(settings).worker_main(celery_argv(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
