"""The deployment files (Dockerfile, docker-compose.yml) against the code they run.

No Docker engine runs here, so these tests read the files and check every command
in them against the real command-line parsers: a typo in a subcommand, an option
the CLI does not accept, a volume nobody declared or a healthcheck against a route
that does not exist fails here instead of at ``docker compose up``.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# ${VAR}, ${VAR:-default}, ${VAR-default}; $$ is a literal $ (Compose interpolation)
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's interpolation with an empty environment: defaults apply, $$ becomes $."""
    value = _INTERPOLATION.sub(lambda m: m.group("default") or "", value)
    return value.replace("$$", "$")


# --------------------------------------------------------------------------- checkers


def check_lipspline_argv(argv: list[str]):
    """``lipspline ...`` must parse with the real argparse parser; returns the namespace."""
    from service.cli import build_parser

    assert argv and argv[0] == "lipspline", f"not a lipspline command: {argv}"
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse reports errors (and --help) by exiting
        raise AssertionError(f"`lipspline` rejects {argv[1:]}: exit {exc.code}") from None


def check_celery_argv(argv: list[str]) -> None:
    """``celery -A module[:attr] sub ...``: the app imports, is a Celery app, the subcommand parses."""
    import click
    from celery import Celery
    from celery.bin.celery import celery as celery_cli

    assert argv and argv[0] == "celery", f"not a celery command: {argv}"
    try:
        ctx = celery_cli.make_context("celery", list(argv[1:]))
    except click.ClickException as exc:
        raise AssertionError(f"`celery` rejects {argv[1:]}: {exc.format_message()}") from None
    app_name = ctx.params.get("app")
    assert app_name, f"celery command without -A: {argv}"
    module_name, _, attr = app_name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AssertionError(f"celery -A {app_name}: cannot import {module_name}: {exc}") from None
    if attr:
        app = getattr(module, attr, None)
        assert isinstance(app, Celery), f"celery -A {app_name}: {attr} is not a Celery app"
    else:  # Celery's own lookup: any Celery instance at module level
        assert any(isinstance(v, Celery) for v in vars(module).values()), f"no Celery app in {module_name}"

    with warnings.catch_warnings():  # click 8.2+ deprecates protected_args; 9.0 folds them into args
        warnings.simplefilter("ignore", DeprecationWarning)
        rest = [*getattr(ctx, "protected_args", ()), *ctx.args]
    assert rest, f"celery command without a subcommand: {argv}"
    sub = celery_cli.get_command(ctx, rest[0])
    assert sub is not None, f"celery has no subcommand {rest[0]!r}"
    try:
        sub_ctx = sub.make_context(rest[0], rest[1:], parent=ctx)
    except click.ClickException as exc:
        raise AssertionError(f"`celery {rest[0]}` rejects {rest[1:]}: {exc.format_message()}") from None
    if rest[0] in ("inspect", "control"):
        action = sub_ctx.params.get("action") or sub_ctx.params.get("command")
        assert action, f"celery {rest[0]} without an action: {argv}"
        from celery.worker.control import Panel

        assert action in Panel.meta, f"celery {rest[0]} has no action {action!r}"


def _app_get_routes(tmp_path: Path) -> set[str]:
    from lipspline_platform.settings import Settings
    from service.app import create_app

    app = create_app(Settings(data_dir=tmp_path / "data"))
    # The OpenAPI document lists every route however the routers are mounted.
    return {path for path, operations in app.openapi()["paths"].items() if "get" in operations}


def check_python_probe(code: str, routes: set[str], port: int | None = None) -> str | None:
    """``python -c CODE``: the code compiles; a URL in it targets an existing GET route. Returns the path."""
    compile(code, "<healthcheck>", "exec")
    urls = re.findall(r"https?://[^'\"\s]+", code)
    for url in urls:
        parts = urlsplit(url)
        assert parts.hostname in ("127.0.0.1", "localhost"), f"probe leaves the container: {url}"
        assert parts.path in routes, f"probe targets {parts.path}, not a GET route of the app"
        if port is not None:
            assert parts.port == port, f"probe uses port {parts.port}, the API listens on {port}"
    return urlsplit(urls[0]).path if urls else None


def check_command(argv: list[str], routes: set[str], port: int | None = None) -> None:
    """Any command that runs in our image: lipspline, celery or python -c."""
    assert argv, "empty command"
    if argv[0] == "lipspline":
        check_lipspline_argv(argv)
    elif argv[0] == "celery":
        check_celery_argv(argv)
    elif argv[0] == "python":
        assert argv[1] == "-c" and len(argv) == 3, f"unexpected python invocation: {argv}"
        check_python_probe(argv[2], routes, port)
    else:
        raise AssertionError(f"{argv[0]!r} is not a command of this image")


def healthcheck_argv(test) -> list[str]:
    """A Compose healthcheck ``test`` as argv (CMD form or one shell command)."""
    if isinstance(test, str):
        return shlex.split(interpolate(test))
    kind, *rest = test
    if kind == "CMD":
        return [interpolate(x) for x in rest]
    assert kind == "CMD-SHELL" and len(rest) == 1, f"unexpected healthcheck test: {test}"
    shell = interpolate(rest[0])
    assert not re.search(r"[;&|`]", shell), f"one command per healthcheck, please: {shell}"
    return shlex.split(shell)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> dict:
    assert COMPOSE_FILE.is_file(), "docker-compose.yml is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def routes(tmp_path_factory) -> set[str]:
    return _app_get_routes(tmp_path_factory.mktemp("routes"))


def _command(service: dict) -> list[str] | None:
    assert "entrypoint" not in service, "an entrypoint would change how the command runs"
    command = service.get("command")
    if command is None:
        return None
    return shlex.split(interpolate(command)) if isinstance(command, str) else [interpolate(str(x)) for x in command]


def _ours(services: dict) -> dict[str, dict]:
    """Services that run the LipSpline image (built from our Dockerfile)."""
    return {name: svc for name, svc in services.items() if "build" in svc}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, args = current.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return instructions


def _exec_form(args: str) -> list[str]:
    argv = json.loads(args)
    assert isinstance(argv, list) and all(isinstance(x, str) for x in argv), f"not an exec-form array: {args}"
    return argv


def _api_port(services: dict) -> int:
    return check_lipspline_argv(_command(services["api"])).port


# --------------------------------------------------------------------------- compose


def test_expected_services_exist(services):
    assert {"postgres", "redis", "migrate", "api", "worker-cpu", "worker-gpu"} <= set(services)


def test_every_command_of_ours_parses(services):
    for name, svc in _ours(services).items():
        argv = _command(svc)
        assert argv is not None, f"{name}: no command (the image's CMD would start another API)"
        assert argv[0] in ("lipspline", "celery"), f"{name}: runs {argv[0]!r}"
        check_command(argv, routes=set())


def test_migrate_api_and_worker_commands(services):
    assert _command(services["migrate"])[:3] == ["lipspline", "db", "upgrade"]
    api = check_lipspline_argv(_command(services["api"]))
    assert api.command == "api" and api.host == "0.0.0.0" and api.workers >= 1
    published = [str(p) for p in services["api"].get("ports", [])]
    assert any(p.endswith(f":{api.port}") for p in published), f"api port {api.port} not published: {published}"


def test_workers_consume_their_queues(services):
    from lipspline_platform.jobs.queue import CPU_QUEUE, GPU_QUEUE

    cpu = check_lipspline_argv(_command(services["worker-cpu"]))
    assert cpu.command == "worker" and CPU_QUEUE in cpu.queues.split(",")
    gpu = check_lipspline_argv(_command(services["worker-gpu"]))
    assert gpu.command == "worker"
    assert gpu.queues.split(",") == [GPU_QUEUE], "the GPU worker must consume only the gpu queue"
    assert gpu.concurrency == 1, "one job per GPU"
    assert gpu.pool == "solo"


def test_gpu_worker_reserves_a_gpu_and_uses_cuda_torch(services):
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d.get("driver") == "nvidia"
        and "gpu" in d.get("capabilities", [])
        and (d.get("count") == 1 or d.get("device_ids"))
        for d in devices
    ), devices
    index = services["worker-gpu"]["build"]["args"]["TORCH_INDEX_URL"]
    assert re.search(r"/whl/cu\d+$", index), f"GPU image built against {index}"
    for name, svc in _ours(services).items():
        if name != "worker-gpu":
            assert "deploy" not in svc or "devices" not in str(svc["deploy"]), f"{name} reserves a GPU"
            assert svc["build"].get("args", {}).get("TORCH_INDEX_URL", "/whl/cpu").endswith("/whl/cpu")


def test_every_built_service_points_to_the_dockerfile(services):
    declared_args = {args.split("=")[0] for kw, args in _dockerfile_instructions() if kw == "ARG"}
    built = _ours(services)
    assert {"migrate", "api", "worker-cpu", "worker-gpu"} <= set(built)
    for name, svc in built.items():
        build = svc["build"]
        build = {"context": build} if isinstance(build, str) else build
        context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        assert dockerfile == DOCKERFILE, f"{name}: builds {dockerfile}, not the project's Dockerfile"
        unknown = set(build.get("args", {})) - declared_args
        assert not unknown, f"{name}: build args {unknown} are not ARGs of the Dockerfile"


def test_healthchecks(services, routes):
    for name in ("postgres", "redis", "api", "worker-cpu", "worker-gpu"):
        assert "test" in services[name].get("healthcheck", {}), f"{name} has no healthcheck"
    assert healthcheck_argv(services["postgres"]["healthcheck"]["test"])[0] == "pg_isready"
    assert healthcheck_argv(services["redis"]["healthcheck"]["test"])[:2] == ["redis-cli", "ping"]

    api_probe = healthcheck_argv(services["api"]["healthcheck"]["test"])
    assert api_probe[:2] == ["python", "-c"]
    assert check_python_probe(api_probe[2], routes, _api_port(services)) == "/readyz"

    for svc in _ours(services).values():
        health = svc.get("healthcheck", {})
        if health.get("disable"):
            continue
        check_command(healthcheck_argv(health["test"]), routes, _api_port(services))


def test_cpu_worker_ping_targets_its_own_node_name(services):
    """``inspect ping -d NAME`` only answers if NAME is the node name the worker was given."""
    argv = healthcheck_argv(services["worker-cpu"]["healthcheck"]["test"])
    if argv[0] != "celery":
        pytest.skip("worker-cpu healthcheck is not a celery ping")
    destination = argv[argv.index("-d") + 1] if "-d" in argv else argv[argv.index("--destination") + 1]
    hostname = check_lipspline_argv(_command(services["worker-cpu"])).hostname
    assert hostname, "ping needs a known node name: pass --hostname"
    assert destination.split("@")[0] == hostname.split("@")[0], (destination, hostname)
    assert hostname.endswith("@%h") and destination.endswith("@$HOSTNAME"), (hostname, destination)


def test_depends_on_conditions_are_satisfiable(services):
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    api_deps = services["api"]["depends_on"]
    assert api_deps["migrate"]["condition"] == "service_completed_successfully"
    assert api_deps["redis"]["condition"] == "service_healthy"
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        deps = {d: {"condition": "service_started"} for d in deps} if isinstance(deps, list) else deps
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if spec.get("condition") == "service_healthy":
                assert "test" in services[dep].get("healthcheck", {}), f"{name} waits for {dep} healthy: no check"


def test_environment(services):
    from sqlalchemy.engine import make_url

    for name, svc in _ours(services).items():
        env = svc.get("environment")
        assert isinstance(env, dict), f"{name}: environment must be the shared mapping"
        env = {k: interpolate(str(v)) for k, v in env.items()}
        db = make_url(env["LIPSPLINE_DATABASE_URL"])
        assert db.drivername == "postgresql+psycopg", f"{name}: {db.drivername}"
        assert db.host in services, f"{name}: database host {db.host} is not a service"
        pg_env = {k: interpolate(str(v)) for k, v in services[db.host]["environment"].items()}
        assert (db.username, db.password, db.database) == (
            pg_env["POSTGRES_USER"],
            pg_env["POSTGRES_PASSWORD"],
            pg_env["POSTGRES_DB"],
        ), f"{name}: database credentials differ from the postgres service's"
        broker = urlsplit(env["LIPSPLINE_BROKER_URL"])
        assert broker.scheme == "redis" and broker.hostname in services, f"{name}: broker {broker.geturl()}"
        mounts = [str(v).split(":")[1] for v in svc.get("volumes", []) if ":" in str(v)]
        assert env["LIPSPLINE_DATA_DIR"] in mounts, f"{name}: data dir {env['LIPSPLINE_DATA_DIR']} is not a volume"


def test_environment_is_shared_through_the_anchor(compose):
    raw = COMPOSE_FILE.read_text()
    assert "x-lipspline-env: &" in raw
    shared = compose["x-lipspline-env"]
    for name, svc in _ours(compose["services"]).items():
        assert svc["environment"] == shared, f"{name} does not use the shared environment"


def test_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            if isinstance(volume, dict):
                source = volume.get("source") if volume.get("type", "volume") == "volume" else None
            else:
                source = str(volume).split(":")[0] if ":" in str(volume) else None
            if source and not source.startswith((".", "/", "~", "$")):
                assert source in declared, f"{name} uses undeclared volume {source!r}"


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_cmd_and_healthcheck(services, routes):
    instructions = _dockerfile_instructions()
    cmds = [args for kw, args in instructions if kw == "CMD"]
    assert cmds, "Dockerfile has no CMD"
    cmd = check_lipspline_argv(_exec_form(cmds[-1]))
    assert (cmd.command, cmd.host) == ("api", "0.0.0.0")
    exposed = {int(p.split("/")[0]) for kw, args in instructions if kw == "EXPOSE" for p in args.split()}
    assert cmd.port in exposed, f"CMD listens on {cmd.port}, EXPOSE says {exposed}"

    checks = [args for kw, args in instructions if kw == "HEALTHCHECK"]
    assert checks, "Dockerfile has no HEALTHCHECK"
    match = re.match(r"^(?:--[\w-]+=\S+\s+)*CMD\s+(.*)$", checks[-1])
    assert match, f"unexpected HEALTHCHECK: {checks[-1]}"
    argv = _exec_form(match.group(1))
    assert argv[:2] == ["python", "-c"], "python:3.11-slim has no curl: probe with python"
    assert check_python_probe(argv[2], routes, cmd.port) == "/healthz"


def test_dockerfile_installs_pinned_torch_before_the_project():
    instructions = _dockerfile_instructions()
    froms = [args for kw, args in instructions if kw == "FROM"]
    assert froms and all("python:3.11-slim" in f or f.startswith("${PYTHON_IMAGE}") for f in froms)
    assert any(kw == "ARG" and args.startswith("PYTHON_IMAGE=python:3.11-slim") for kw, args in instructions)
    assert any(kw == "ARG" and args.startswith("TORCH_INDEX_URL=") for kw, args in instructions)

    final = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    runtime = instructions[final:]
    pips = [args for kw, args in runtime if kw == "RUN" and "pip install" in args]
    torch_at = next(i for i, a in enumerate(pips) if re.search(r"torch==\$\{?TORCH_VERSION\}?|torch==\d", a))
    assert "--index-url" in pips[torch_at] and "TORCH_INDEX_URL" in pips[torch_at]
    # the wheel built in the first stage, with its server extra (torch, FastAPI, SQLAlchemy, Celery ...)
    installs_project = re.compile(r"pip install (\.|\S*\.whl|\"\$\(ls \S*\.whl\)\[server\]\")")
    project_at = next(i for i, a in enumerate(pips) if installs_project.search(a))
    assert torch_at < project_at, "torch must be installed (pinned) before the project"
    assert not any(re.search(r"\b(gcc|build-essential|clang)\b", a) for kw, a in runtime if kw == "RUN"), (
        "the compiler belongs in the build stage only"
    )
    env = " ".join(args for kw, args in runtime if kw == "ENV")
    assert re.search(r"LIPSPLINE_DATA_DIR=/data\b", env)
    users = [args for kw, args in runtime if kw == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"


def test_dockerignore_keeps_what_the_build_copies():
    assert DOCKERIGNORE.is_file()
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    copied = [args.split()[:-1] for kw, args in _dockerfile_instructions() if kw == "COPY" and "--from" not in args]
    for sources in copied:
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
            assert source not in ignored, f"Dockerfile copies {source}, which .dockerignore excludes"
    assert "lipspline-data" in ignored and ".git" in ignored


# --------------------------------------------------------------------------- the checks can fail


@pytest.mark.parametrize(
    "argv",
    [
        ["lipspline", "wroker", "--queues", "cpu"],
        ["lipspline", "worker", "--queues", "cpu", "--concurency", "2"],
        ["lipspline", "api", "--port", "eighty"],
        ["lipspline", "db", "upgrad"],
        ["lipspline", "serve", "--workers", "2"],
    ],
)
def test_lipspline_checker_rejects_typos(argv):
    with pytest.raises(AssertionError):
        check_lipspline_argv(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["celery", "-A", "worker.celery_ap", "inspect", "ping"],
        ["celery", "-A", "worker.celery_app:no_such_app", "inspect", "ping"],
        ["celery", "-A", "worker.celery_app", "inspekt", "ping"],
        ["celery", "-A", "worker.celery_app", "inspect", "pong"],
        ["celery", "-A", "worker.celery_app", "inspect", "ping", "--destinaton", "x@y"],
        ["celery", "inspect", "ping"],
    ],
)
def test_celery_checker_rejects_typos(argv):
    with pytest.raises(AssertionError):
        check_celery_argv(argv)


def test_probe_checker_rejects_unknown_routes(routes):
    with pytest.raises(AssertionError):
        check_python_probe("import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthy')", routes)
    with pytest.raises(AssertionError):
        check_python_probe(
            "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8001/healthz')", routes, 8000
        )
    with pytest.raises(SyntaxError):
        check_python_probe("import urllib.request urllib.request.urlopen('http://127.0.0.1:8000/healthz')", routes)
