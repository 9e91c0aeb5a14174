"""Real server processes for end-to-end tests: `lipspline serve`, `lipspline api`, `lipspline worker`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose output goes to a log file (shown when a test fails)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, env, log_path
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


class SessionProcess(Process):
    """A process that leads its own session, so its whole group (Celery main + pool children)
    can be SIGKILLed at once, as a crashed host or an OOM-killed container would be."""

    def start(self) -> SessionProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    def kill_group(self) -> None:
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(30)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> None:
        super().stop(sig, timeout_s)
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):  # pool children left behind by a dead main process
                os.killpg(self.popen.pid, signal.SIGKILL)


def wait_for_http(process: Process, url: str, what: str, timeout_s: float = 30,
                  answered: Callable[[httpx.Response], bool] = lambda _: True) -> None:
    """Until ``url`` gives an answer ``answered`` accepts (any answer by default: the server listens);
    a RuntimeError with the process's log when it exits first or ``timeout_s`` pass."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if answered(httpx.get(url, timeout=1)):
                return
        except httpx.HTTPError:
            pass
        if not process.alive():
            break
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start:\n{process.log_tail()}")


#: job states a job never leaves
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def embedded_env(workdir: Path, **extra: str) -> dict[str, str]:
    """Environment of an embedded-default deployment (SQLite + filesystem broker) under ``workdir``."""
    return {"LIPSPLINE_DATA_DIR": str(workdir / "data"), "LIPSPLINE_DATABASE_URL": "",
            "LIPSPLINE_BROKER_URL": "embedded://", **extra}


def wait_for_job(http: httpx.Client, job_id: str, statuses: set[str] | frozenset[str] = TERMINAL,
                 timeout_s: float = 180) -> dict:
    """Poll a job until its status is one of ``statuses``; fail with its last state after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} not in {set(statuses)} after {timeout_s}s: {job}"
        time.sleep(0.1)


def wait_for_sweep(http: httpx.Client, sweep_id: str, timeout_s: float = 300, poll_s: float = 0.3) -> dict:
    """Poll a sweep until it is no longer running; fail with its progress after ``timeout_s`` (and at once
    on an error answer, as the bench's ``expect(..., 200)`` did before it called this)."""
    deadline = time.monotonic() + timeout_s
    while (sweep := http.get(f"/v1/sweeps/{sweep_id}").raise_for_status().json())["status"] == "running":
        assert time.monotonic() < deadline, f"sweep {sweep_id} still running after {timeout_s}s: {sweep['progress']}"
        time.sleep(poll_s)
    return sweep


def lipspline_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]


class Deployment:
    """An API process plus zero or more worker processes sharing one environment."""

    def __init__(self, env: dict[str, str], workdir: Path, *, embedded: bool, workers: int = 0) -> None:
        self.env = dict(os.environ, **env)
        self.workdir, self.embedded, self.n_workers = workdir, embedded, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api: Process | None = None
        self.workers: list[Process] = []
        self.api_key: str | None = None

    def start(self) -> Deployment:
        if self.embedded:
            argv = lipspline_argv("serve", "--port", str(self.port))
        else:
            argv = lipspline_argv("api", "--port", str(self.port))
        self.api = Process(argv, self.env, self.workdir / "api.log").start()
        for i in range(len(self.workers), self.n_workers):
            worker_argv = lipspline_argv("worker", "--queues", "cpu", "--concurrency", "1",
                                         "--hostname", f"w{i}-{os.getpid()}@%h")
            self.workers.append(Process(worker_argv, self.env, self.workdir / f"worker{i}.log").start())
        self.wait_ready()
        if self.api_key is None:
            self.api_key = self.create_key("default") if not self.embedded else self.embedded_key()
        return self

    def embedded_key(self) -> str:
        return (Path(self.env["LIPSPLINE_DATA_DIR"]) / "api-key").read_text().strip()

    def create_key(self, tenant: str) -> str:
        """`lipspline keys create --tenant NAME`, the real CLI."""
        argv = lipspline_argv("keys", "create", "--tenant", tenant)
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120, check=True)
        return result.stdout.strip()

    def client(self, key: str | None = None, **kwargs) -> httpx.Client:
        """An HTTP client authenticated with ``key`` (default: the deployment's own key)."""
        headers = {"Authorization": f"Bearer {key or self.api_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop("timeout", 60), **kwargs)

    @contextmanager
    def running(self) -> Iterator[Deployment]:
        """Started for the block, its logs printed if the block fails, stopped afterwards."""
        try:
            self.start()
            yield self
        except BaseException:
            print(self.logs())
            raise
        finally:
            self.stop()

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.api is not None and not self.api.alive():
                raise RuntimeError("API process exited:\n" + self.api.log_tail())
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("API not ready in time:\n" + (self.api.log_tail() if self.api else ""))

    def stop_api(self) -> None:
        if self.api is not None:
            self.api.stop()

    def restart_api(self) -> None:
        self.stop_api()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def stop(self) -> None:
        self.stop_api()
        for worker in self.workers:
            worker.stop()

    def start_host_worker(self, name: str, process: type[SessionProcess] = SessionProcess) -> SessionProcess:
        """A prefork worker with its own data dir: another host, sharing only database and broker."""
        env = dict(self.env, LIPSPLINE_DATA_DIR=str(self.workdir / f"{name}-data"))
        argv = lipspline_argv("worker", "--queues", "cpu", "--concurrency", "1", "--hostname", f"{name}@%h")
        worker = process(argv, env, self.workdir / f"{name}.log").start()
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        parts = [f"--- {p.log_path.name}\n{p.log_tail()}" for p in [self.api, *self.workers] if p is not None]
        return "\n".join(parts)
