"""The ``lipspline`` command: serve, api, worker, keys, db, experiment (and the client commands).

``serve`` is the embedded default (docs/design.md#deployments): SQLite in the data dir,
the filesystem broker, migrations applied, and one worker process started and
stopped with the server. ``api`` and ``worker`` are the production pieces,
run as separate processes on any hosts against PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lipspline_platform.settings import Settings


def _migrate(settings: Settings) -> None:
    from lipspline_platform.db.migrate import upgrade

    settings.ensure_dirs()
    upgrade(settings.resolved_database_url)


def worker_argv(
    queues: str, concurrency: int, pool: str | None, hostname: str | None, metrics_port: int | None = None
) -> list[str]:
    """The command line of a worker process (``python -m worker``, a package of its own)."""
    argv = [sys.executable, "-m", "worker", "--queues", queues, "--concurrency", str(concurrency)]
    if pool:
        argv += ["--pool", pool]
    if hostname:
        argv += ["--hostname", hostname]
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port)]
    return argv


def cmd_worker(args: argparse.Namespace) -> int:
    """Replace this process by a worker: the CLI lives in the API package and never imports the worker's."""
    argv = worker_argv(args.queues, args.concurrency, args.pool, args.hostname, args.metrics_port)
    os.execv(argv[0], argv)
    return 0  # pragma: no cover - execv does not return


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from lipspline_platform.observability.metrics_dir import prepare_multiprocess_dir, remove_multiprocess_dir

    settings = _settings()
    # several uvicorn processes answer on one port: their metrics are summed from shared files
    metrics_dir = prepare_multiprocess_dir() if args.workers > 1 else None
    _migrate(settings)
    try:
        uvicorn.run("service.app:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers,
                    **uvicorn_logging(settings, terminal=False))
    finally:
        if metrics_dir is not None:
            remove_multiprocess_dir(metrics_dir)
    return 0


def uvicorn_logging(settings: Settings, *, terminal: bool) -> dict:
    """uvicorn leaves logging alone (no dictConfig, no plain access log): the service's own
    handler writes every line, JSON or text, and its access line carries the request id."""
    from lipspline_platform.observability.structured_logging import configure_logging

    configure_logging(settings.log_format, settings.log_level, terminal_text=terminal)
    return {"log_config": None, "access_log": False}


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the server process dies, even by SIGKILL."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:  # not Linux: the server's own shutdown path still stops the worker
        pass


def _start_embedded_worker(settings: Settings, log_format: str) -> subprocess.Popen:
    # the worker writes its lines in the server's format (text on a terminal, JSON otherwise)
    env = dict(os.environ, LIPSPLINE_DATA_DIR=str(settings.data_dir.resolve()), LIPSPLINE_LOG_FORMAT=log_format)
    if settings.database_url is None:
        env["LIPSPLINE_DATABASE_URL"] = settings.resolved_database_url
    # solo pool: one job at a time in the worker process itself, no extra children to reap
    argv = worker_argv("cpu,gpu", 1, "solo", f"embedded-{os.getpid()}@{socket.gethostname()}")
    return subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent)


def _stop(process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # Celery's warm shutdown: finish or release the current task
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ensure_default_key(settings: Settings) -> Path:
    """First start of the embedded default: a key for the ``default`` tenant, written to a
    file only the current user can read (the plain key is never stored in the database)."""
    from lipspline_platform.db.engine import session_scope
    from lipspline_platform.db.tables import DEFAULT_TENANT
    from service.security import auth

    path = settings.data_dir.resolve() / "api-key"
    if path.exists():
        return path
    from service.security.scopes import ALL_SCOPES

    # admin too: the one who started the server manages the keys of everyone else over the API
    with session_scope(settings.resolved_database_url) as session:
        key = auth.create_key(session, DEFAULT_TENANT, ALL_SCOPES, name="bootstrap (lipspline serve)")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return path


def parse_expiry(text: str) -> datetime:
    """``--expires``: an ISO 8601 time (UTC unless it says otherwise) or a duration from now: 30d, 12h, 15m."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(UTC) + timedelta(seconds=int(text[:-1]) * units[text[-1]])
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def cmd_keys(args: argparse.Namespace) -> int:
    from lipspline_platform.db.engine import session_scope
    from service.security import auth

    settings = _settings()
    _migrate(settings)
    from service.security.scopes import DEFAULT_KEY_SCOPES, parse_scopes

    if args.action == "create":
        try:
            scopes = parse_scopes(args.scopes) if args.scopes else DEFAULT_KEY_SCOPES
            expires_at = parse_expiry(args.expires) if args.expires else None
        except ValueError as exc:
            print(f"lipspline keys create: {exc}", file=sys.stderr)
            return 2
        if not scopes:
            print("lipspline keys create: --scopes names no scope", file=sys.stderr)
            return 2
    with session_scope(settings.resolved_database_url) as session:
        if args.action == "create":
            print(auth.create_key(session, args.tenant, scopes, expires_at=expires_at, name=args.name))
            return 0
        revoked = auth.revoke_key(session, args.key)
    print(f"revoked {revoked} key(s)", file=sys.stderr)
    return 0 if revoked else 1


def bind_listener(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound and listening now: a taken port is an OSError here, before
    ``serve`` has printed or written anything (no key, no export line), and no other server can take the
    port while this one starts (a socket that is only bound would not stop another SO_REUSEADDR bind).
    Connections made before uvicorn serves wait in the backlog."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a TIME_WAIT port is free
    try:
        listener.bind((host, port))
        listener.listen(2048)  # uvicorn's default backlog
    except OSError:
        listener.close()
        raise
    listener.set_inheritable(True)
    return listener


def client_url(host: str, port: int) -> str:
    """The URL a client on this machine uses: a wildcard bind address is reached on loopback."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


def cli_hint() -> list[str]:
    """How to run the ``lipspline`` CLI from any directory: this interpreter's own ``lipspline`` executable
    (the venv's), and the ``activate`` line of its virtual environment when there is one."""
    bin_dir = Path(sys.executable).parent
    executable = bin_dir / "lipspline"
    hint = []
    if sys.prefix != sys.base_prefix and (bin_dir / "activate").is_file():
        hint.append(f"  source {bin_dir.resolve() / 'activate'}   # puts `lipspline` on PATH")
    if executable.is_file():
        hint.append(f"  {executable.resolve()} models list   # or this path, without activating")
    return hint


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        listener = bind_listener(args.host, args.port)
    except OSError as error:  # EADDRINUSE, EACCES (a port below 1024), an address not on this machine
        reason = "is already in use" if error.errno == errno.EADDRINUSE else f"cannot be used ({error.strerror})"
        print(f"lipspline serve: port {args.port} on {args.host} {reason}; choose another with --port "
              f"(make serve PORT=...)", file=sys.stderr)
        return 1
    import uvicorn

    from lipspline_platform.observability.structured_logging import resolve_format
    from service.app import create_app

    settings = _settings()
    _migrate(settings)
    key_file = ensure_default_key(settings)
    logging_options = uvicorn_logging(settings, terminal=True)
    log_format = resolve_format(settings.log_format, terminal_text=True)
    worker = _start_embedded_worker(settings, log_format)
    url = client_url(args.host, args.port)
    print(f"lipspline: data in {settings.data_dir.resolve()}, API on {url}", flush=True)
    print(f"lipspline: API key of tenant 'default' in {key_file} (send it as Authorization: Bearer <key>)", flush=True)
    print(f"lipspline: key: {key_file.read_text().strip()}", flush=True)
    print("\n".join(["lipspline: in another shell, from any directory:",
                     f"  export LIPSPLINE_URL={url} LIPSPLINE_API_KEY=$(cat {key_file})", *cli_hint()]),
          flush=True)

    def _exit(signum: int, _frame) -> None:
        raise SystemExit(128 + signum)

    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the handler
    # that was installed before it started. With the default handler the process would die
    # on the spot and orphan the worker; this one turns it into SystemExit, so `finally` runs.
    signal.signal(signal.SIGTERM, _exit)
    try:
        config = uvicorn.Config(create_app(settings), host=args.host, port=args.port, **logging_options)
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()
        _stop(worker)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from lipspline_platform.db import migrate

    settings = _settings()
    settings.ensure_dirs()
    if args.action == "upgrade":
        migrate.upgrade(settings.resolved_database_url, args.revision or "head")
    else:
        migrate.downgrade(settings.resolved_database_url, args.revision or "base")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """Run paper recipes through the core, or through a running service with ``--url``."""
    from lipspline.experiments import RECIPES
    from lipspline.experiments.context import ExperimentContext
    from lipspline.experiments.runner import run_many
    from lipspline.experiments.trainers import LocalTrainer
    from service.remote_trainer import RemoteTrainer

    unknown = [n for n in args.names if n not in (*RECIPES, "all")]
    if unknown:
        print(f"unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)} or all", file=sys.stderr)
        return 2
    if args.url:
        key = args.api_key or os.environ.get("LIPSPLINE_API_KEY")
        if not key:
            print("--url needs --api-key or LIPSPLINE_API_KEY", file=sys.stderr)
            return 2
        trainer = RemoteTrainer(args.url, key)
    else:
        trainer = LocalTrainer()
    ctx = ExperimentContext(
        quick=args.quick,
        trainer=trainer,
        docs_dir=Path(args.docs_dir),
        work_dir=Path(args.work_dir),
        seeds=args.seeds,
    )
    run_many(list(args.names), ctx)
    return 0


#: third-party modules only the server install has: a client-only install says so instead of a traceback
SERVER_ONLY_MODULES = {"torch", "fastapi", "uvicorn", "sqlalchemy", "alembic", "celery", "pydantic_settings", "scipy",
                       "safetensors", "pyarrow", "prometheus_client", "psycopg", "onnx", "cryptography"}
USER_COMMANDS = ("datasets", "jobs", "models", "predict", "registry", "storage", "sweeps", "webhooks")
USER_EPILOG = """client commands (talk to a running service; `lipspline COMMAND --help` for each):
  datasets    upload, register (by URI: s3://, file:///shared/…), list, show, edit, delete datasets
  jobs        submit (--follow: live progress), list, show, edit, cancel, logs
  models      list, show, edit, download (zip or onnx); by id, NAME, NAME@ALIAS or NAME/versions/N
  predict     predict a CSV with certificate columns beside each prediction
  registry    registered models: list, show, create, register, delete; alias set/delete/history
  storage     your own S3 keys for s3:// dataset URIs: set-s3, show, delete
  sweeps      submit (--follow: trials done/running/planned), follow, list, show, edit, cancel
  webhooks    signing secret, endpoints (add, list, delete) and a job's deliveries
Every one takes --json (the API's JSON, for scripts).
They read LIPSPLINE_URL (default http://127.0.0.1:8000) and LIPSPLINE_API_KEY."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lipspline",
        description=__doc__.splitlines()[0],
        epilog=USER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from api_schemas.version import __version__

    parser.add_argument("--version", action="version", version=f"lipspline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="API + one embedded worker on the embedded default (no servers needed)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (a taken one is refused at once)")
    serve.set_defaults(func=cmd_serve)

    api = sub.add_parser("api", help="the API only (production: workers run separately)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="a Celery training worker against the configured broker and database")
    worker.add_argument("--queues", default="cpu", help="comma-separated: cpu, gpu")
    worker.add_argument("--concurrency", type=int, default=1, help="jobs at once (use 1 per GPU)")
    worker.add_argument("--pool", default=None, help="Celery pool (default prefork; solo for one in-process job)")
    worker.add_argument("--hostname", default=None, help="Celery node name (default lipspline-PID@host)")
    worker.add_argument("--metrics-port", type=int, default=None,
                        help="serve the node's Prometheus metrics on this port (LIPSPLINE_WORKER_METRICS_PORT)")
    worker.set_defaults(func=cmd_worker)

    keys = sub.add_parser("keys", help="API keys: create one for a tenant, or revoke one")
    key_actions = keys.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create", help="print a new key for the tenant (created if new)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", default=None,
                        help="comma-separated: read, predict, train, admin (default: read,predict,train)")
    create.add_argument("--expires", default=None, help="ISO 8601 time, or a duration from now: 30d, 12h, 15m")
    create.add_argument("--name", default=None, help="a label shown in key listings")
    revoke = key_actions.add_parser("revoke", help="revoke a key, given in full or by its 12-character prefix")
    revoke.add_argument("key")
    keys.set_defaults(func=cmd_keys)

    experiment = sub.add_parser("experiment", help="reproduce the papers' experiments (tables + figures)")
    experiment_actions = experiment.add_subparsers(dest="action", required=True)
    run = experiment_actions.add_parser("run", help="run recipes: circle, noise, one_lipschitz, bound_kinds, or all")
    run.add_argument("names", nargs="+", metavar="NAME")
    run.add_argument("--quick", action="store_true", help="smoke run: each recipe in under two minutes")
    run.add_argument("--url", help="train through a running LipSpline service instead of in-process")
    run.add_argument("--api-key", help="Bearer key for --url (default: $LIPSPLINE_API_KEY)")
    run.add_argument("--docs-dir", default="docs", help="where results.md and figures/ are written")
    run.add_argument("--work-dir", default="lipspline-data/experiments", help="trained models kept for bound_kinds")
    run.add_argument("--seeds", type=int, nargs="+", help="override the recipe's seeds")
    run.set_defaults(func=cmd_experiment)

    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade", "downgrade"])
    db.add_argument("revision", nargs="?", default=None)
    db.set_defaults(func=cmd_db)
    return parser


def _settings() -> Settings:
    """The server's settings, imported when a server command runs: the client commands (and a
    ``pip install 'lipspline[client]'`` without the server's dependencies) never need them."""
    from lipspline_platform.settings import get_settings

    return get_settings()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for i, a in enumerate(argv) if not a.startswith("-") and (i == 0 or argv[i - 1]
                    not in ("--url", "--api-key"))), None)
    if command in USER_COMMANDS:
        # the user commands (datasets, jobs, models, predict, registry, storage, sweeps, webhooks) are the SDK's CLI
        from lipspline_client.cli import main as user_main

        return user_main(argv)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in SERVER_ONLY_MODULES:
            print(f"lipspline {args.command}: this server command needs the server install "
                  f"(pip install 'lipspline[server]'; {exc.name} is missing)", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
