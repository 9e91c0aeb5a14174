"""``lipspline serve``: a taken port is refused before anything is printed or written, and what it prints
tells how to reach the service and run the CLI from any directory."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from service.cli import build_parser, cli_hint, client_url


def test_a_taken_port_is_one_line_and_exit_1_before_any_key_or_file(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"LIPSPLINE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
        result = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stdout == ""  # no key, no export line
    assert result.stderr.strip() == (f"lipspline serve: port {port} on 127.0.0.1 is already in use; choose another "
                                     "with --port (make serve PORT=...)")
    assert not (tmp_path / "data").exists()  # nothing written: no database, no key file


def test_serve_takes_host_and_port() -> None:
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--port", "8123"])
    assert (args.host, args.port) == ("0.0.0.0", 8123)


def test_the_printed_url_is_one_a_client_can_use() -> None:
    assert client_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert client_url("0.0.0.0", 8080) == "http://127.0.0.1:8080"  # a wildcard bind is reached on loopback
    assert client_url("::", 8080) == "http://[::1]:8080"


def test_the_cli_hint_names_this_environments_own_executable() -> None:
    hint = "\n".join(cli_hint())
    executable = Path(sys.executable).parent / "lipspline"
    if executable.is_file():  # installed (pip install -e .): its absolute path, runnable from any directory
        assert str(executable.resolve()) in hint
    if sys.prefix != sys.base_prefix:
        assert f"source {(Path(sys.executable).parent / 'activate').resolve()}" in hint
