"""The reference pages, generated from the code each time the site is built (an MkDocs hook).

A reference page holds a marker where its table goes; ``on_page_markdown`` replaces it:

* ``<!-- generated: routes -->``: every operation of the app's OpenAPI document (``create_app().openapi()``,
  the document served at ``/openapi.json``): method, path, required scope, summary, statuses;
* ``<!-- generated: settings -->``: every field of ``lipspline_platform.settings.Settings`` with its
  ``LIPSPLINE_*`` variable, type, default, range and the ``Field`` description;
* ``<!-- generated: cli -->``: the ``--help`` of every command: the operator commands (argparse,
  ``service/cli.py``) and every user command (click, ``lipspline_client/cli/``), recursively;
* ``<!-- generated: webhook-events -->``: every webhook event's payload (``api_schemas/webhook_events.py``).

Nothing here is written by hand, so the reference cannot drift from the code;
``tests/docs/test_reference.py`` checks that nothing in the code is missing from what this renders.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


# ---- routes ------------------------------------------------------------------------------------------
@cache
def openapi_schema() -> dict[str, Any]:
    """The document ``GET /openapi.json`` serves, from an app on a throwaway data directory."""
    from lipspline_platform.settings import Settings
    from service.app import create_app

    with tempfile.TemporaryDirectory(prefix="lipspline-docs-") as data_dir:
        return create_app(Settings(data_dir=Path(data_dir))).openapi()


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def render_routes(schema: dict[str, Any] | None = None) -> str:
    schema = schema or openapi_schema()
    lines = [
        f"Generated from `/openapi.json` of LipSpline {schema['info'].get('version', '')}: "
        f"{sum(1 for _ in operations(schema))} operations.",
        "",
        "| method | path | scope | what it does | query and header parameters | statuses |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for method, path, op in sorted(operations(schema), key=lambda o: (o[1], HTTP_METHODS.index(o[0].lower()))):
        description = (op.get("description") or "").split("\n\n")[0]
        what = op.get("summary", "")
        if description:
            what = f"**{what}**: {description}" if what else description
        scope = op.get("x-required-scope") or "none"
        statuses = ", ".join(sorted(str(s) for s in op.get("responses", {})))
        parameters = ", ".join(f"`{p['name']}`" + (" (header)" if p.get("in") == "header" else "")
                               for p in op.get("parameters", []) if p.get("in") in ("query", "header"))
        lines.append(f"| `{method}` | `{path}` | {_cell(scope)} | {_cell(what)} | {parameters} | {statuses} |")
    return "\n".join(lines) + "\n"


# ---- settings ----------------------------------------------------------------------------------------
def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "").replace("pathlib.", "").replace("pydantic.types.", "")
    return text.replace("NoneType", "None")


def _bounds(field: Any) -> str:
    parts = []
    for item in field.metadata:
        for attr, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value:g}" if isinstance(value, float) else f"{symbol} {value}")
    return ", ".join(parts)


def settings_fields() -> dict[str, Any]:
    from lipspline_platform.settings import Settings

    return dict(Settings.model_fields)


def env_name(field_name: str) -> str:
    from lipspline_platform.settings import Settings

    return (Settings.model_config.get("env_prefix") or "") + field_name.upper()


def render_settings() -> str:
    lines = [
        "Generated from `lipspline_platform.settings.Settings`: every field, read from the environment by the API, "
        "the workers and the CLI alike.",
        "",
        "| variable | type | default | range | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field in settings_fields().items():
        default = field.default
        shown = "unset" if default is None else f"`{default}`"
        lines.append(
            f"| `{env_name(name)}` | `{_cell(_type_name(field.annotation))}` | {_cell(shown)} | "
            f"{_cell(_bounds(field))} | {_cell(field.description or '')} |"
        )
    return "\n".join(lines) + "\n"


# ---- CLI ---------------------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def operator_commands() -> dict[str, str]:
    """``lipspline serve|api|worker|keys …|experiment …|db`` (argparse): command path -> its help."""
    from service.cli import USER_COMMANDS, build_parser

    found: dict[str, str] = {}

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        for name, sub in _subparsers(parser).items():
            path = f"{prefix} {name}"
            if name in USER_COMMANDS:
                continue
            found[path] = sub.format_help()
            walk(path, sub)

    walk("lipspline", build_parser())
    return found


def user_commands() -> dict[str, str]:
    """Every click command and group under ``lipspline`` (``lipspline_client/cli/``): path -> its help."""
    import click

    from lipspline_client.cli import cli

    found: dict[str, str] = {}

    def walk(path: str, command: click.Command, parent: click.Context | None) -> None:
        ctx = click.Context(command, info_name=path.rsplit(" ", 1)[-1], parent=parent, terminal_width=100)
        if parent is not None:
            found[path] = command.get_help(ctx)
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                walk(f"{path} {name}", command.get_command(ctx, name), ctx)

    walk("lipspline", cli, None)
    return found


def cli_commands() -> dict[str, str]:
    os.environ.setdefault("COLUMNS", "100")
    return {**operator_commands(), **user_commands()}


def render_cli() -> str:
    commands = cli_commands()
    lines = [f"Generated from the commands' own `--help` ({len(commands)} commands).", ""]
    for path in sorted(commands):
        lines += [f"### `{path}`", "", "```text", commands[path].rstrip(), "```", ""]
    return "\n".join(lines)


# ---- webhook events ----------------------------------------------------------------------------------
def render_webhook_events() -> str:
    """Each event of ``api_schemas/webhook_events.py``: its name, when it is sent, and every payload field."""
    import typing

    from api_schemas import webhook_events

    union = typing.get_args(webhook_events.WebhookEvent)[0]
    lines: list[str] = []
    for model in typing.get_args(union):
        names = typing.get_args(model.model_fields["event"].annotation)
        lines += [f"### {', '.join(f'`{n}`' for n in names)}", "", (model.__doc__ or "").strip(), "",
                  "| field | type | meaning |", "| --- | --- | --- |"]
        for name, field in model.model_fields.items():
            lines.append(f"| `{name}` | `{_cell(_type_name(field.annotation))}` | {_cell(field.description or '')} |")
        lines.append("")
    return "\n".join(lines)


RENDERERS = {"routes": render_routes, "settings": render_settings, "cli": render_cli,
             "webhook-events": render_webhook_events}


def expand(markdown: str) -> str:
    """Every ``<!-- generated: NAME -->`` marker replaced by its table."""
    for name, render in RENDERERS.items():
        marker = f"<!-- generated: {name} -->"
        if marker in markdown:
            markdown = markdown.replace(marker, render())
    return markdown


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:  # noqa: ARG001 - MkDocs' signature
    return expand(markdown)
