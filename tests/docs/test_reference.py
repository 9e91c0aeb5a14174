"""The generated reference pages hold everything the code has: every route of /openapi.json, every
settings field, every CLI command, every webhook event.

The pages are generated (``docs/hooks/reference.py``), so these tests guard the generator and the
pages: a route, setting or command the generator skipped, a page that lost its marker, or a built
page that does not show what the code has, fails here. The code is walked independently of the
generator (the app's OpenAPI document, ``Settings.model_fields``, the click and argparse trees).
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import re
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import click
import pytest

from .blocks import ROOT

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference_hook", ROOT / "docs" / "hooks" / "reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def openapi() -> dict:
    from lipspline_platform.settings import Settings
    from service.app import create_app

    with tempfile.TemporaryDirectory() as data_dir:
        return create_app(Settings(data_dir=Path(data_dir))).openapi()


def code_operations(schema: dict) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, item in schema["paths"].items() for m in item if m in HTTP_METHODS}


def code_settings() -> set[str]:
    from lipspline_platform.settings import Settings

    return {"LIPSPLINE_" + name.upper() for name in Settings.model_fields}


def code_commands() -> set[str]:
    """Every command path: the argparse operator commands and the click user commands, recursively."""
    from lipspline_client.cli import cli
    from service.cli import USER_COMMANDS, build_parser

    found: set[str] = set()

    def walk_argparse(prefix: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if name not in USER_COMMANDS:
                        found.add(f"{prefix} {name}")
                        walk_argparse(f"{prefix} {name}", sub)

    def walk_click(prefix: str, command: click.Command) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            found.add(f"{prefix} {name}")
            walk_click(f"{prefix} {name}", sub)

    walk_argparse("lipspline", build_parser())
    walk_click("lipspline", cli)
    return found


def test_reference_pages_are_generated() -> None:
    for page, marker in (("http.md", "routes"), ("settings.md", "settings"), ("cli.md", "cli")):
        assert f"<!-- generated: {marker} -->" in (ROOT / "docs" / "reference" / page).read_text(), page
    assert "<!-- generated: webhook-events -->" in (ROOT / "docs" / "how-to" / "webhooks.md").read_text()


def test_every_route_is_in_the_routes_reference(generator: ModuleType, openapi: dict) -> None:
    rendered = generator.render_routes(openapi)
    rows = set(re.findall(r"^\| `(GET|POST|PUT|PATCH|DELETE)` \| `([^`]+)` \|", rendered, re.M))
    missing = code_operations(openapi) - rows
    assert not missing, f"routes missing from the generated reference: {sorted(missing)}"
    assert "/v1/sweeps" in {path for _, path in rows}


def test_every_setting_is_in_the_settings_reference(generator: ModuleType) -> None:
    rendered = generator.render_settings()
    rows = set(re.findall(r"^\| `(LIPSPLINE_[A-Z0-9_]+)` \|", rendered, re.M))
    missing = code_settings() - rows
    assert not missing, f"settings missing from the generated reference: {sorted(missing)}"


def test_every_cli_command_is_in_the_cli_reference(generator: ModuleType) -> None:
    rendered = generator.render_cli()
    headings = set(re.findall(r"^### `([^`]+)`$", rendered, re.M))
    missing = code_commands() - headings
    assert not missing, f"CLI commands missing from the generated reference: {sorted(missing)}"


def test_every_webhook_event_is_in_the_events_reference(generator: ModuleType) -> None:
    from api_schemas import webhook_events

    names = {*webhook_events.JOB_EVENTS, webhook_events.SWEEP_FINISHED, webhook_events.SWEEP_CANCELLED,
             webhook_events.VERSION_CREATED, webhook_events.ALIAS_MOVED}
    rendered = generator.render_webhook_events()
    assert not [n for n in names if f"`{n}`" not in rendered]


def test_the_built_site_shows_the_code(built_site: Path, openapi: dict) -> None:
    routes = html.unescape((built_site / "reference" / "http.html").read_text())
    assert not [p for _, p in code_operations(openapi) if p not in routes]
    settings = (built_site / "reference" / "settings.html").read_text()
    assert not [s for s in code_settings() if s not in settings]
    commands = html.unescape((built_site / "reference" / "cli.html").read_text())
    assert not [c for c in code_commands() if c not in commands]
