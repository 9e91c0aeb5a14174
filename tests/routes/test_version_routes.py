"""One version everywhere: the installed package's (pyproject.toml), in the OpenAPI document, the SDK's
User-Agent and ``lipspline --version`` (issue 27: the app said 1.0.0 while the package was 0.1.0)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import lipspline
from tests.routes.helpers import Service


def test_the_api_the_package_and_the_cli_report_one_version(svc: Service) -> None:
    installed = version("lipspline")
    assert lipspline.__version__ == installed
    assert svc.client.get("/openapi.json").json()["info"]["version"] == installed
    shown = subprocess.run([sys.executable, "-m", "service.cli", "--version"], capture_output=True, text=True,
                           timeout=120)
    assert (shown.returncode, shown.stdout.strip()) == (0, f"lipspline {installed}"), shown.stderr
    from click.testing import CliRunner

    from lipspline_client.cli import cli

    assert CliRunner().invoke(cli, ["--version"]).stdout.strip() == f"lipspline {installed}"  # the client group's
