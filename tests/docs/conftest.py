"""Fixtures of the docs tests: the e2e suite's live deployment, and the site built once per session."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# the live deployment (`deployment`, tests/conftest.py) is the e2e suite's own: the docs examples
# run against exactly what the e2e tests drive; tests here ask for the embedded one (`indirect`
# parametrization), the deployment `make serve` starts
from .blocks import ROOT

#: skipped blocks, listed by name at the end of the run (never skipped silently)
SKIPPED: list[tuple[str, str]] = []


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mkdocs build --strict` of the docs site into a temporary directory (the clone is left untouched)."""
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return site


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SKIPPED:
        terminalreporter.section("docs blocks marked skip (illustration only)")
        for name, reason in SKIPPED:
            terminalreporter.write_line(f"{name}: {reason}")


@pytest.fixture
def record_skipped() -> Iterator[list[tuple[str, str]]]:
    found: list[tuple[str, str]] = []
    yield found
    SKIPPED.extend(found)
