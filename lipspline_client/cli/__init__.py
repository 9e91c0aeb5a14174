"""The user commands of ``lipspline``: datasets, jobs, models, predict, registry, sweeps, webhooks, storage, on the SDK.

``service/cli.py`` hands these commands here and keeps serve/api/worker/keys/db/experiment.
Every command has two forms: the human one (tables and lines drawn with rich, every value as
readable text, ids always printed in full) and ``--json`` (the API's JSON, for scripts; ``jobs logs
--json`` prints one JSON event per line). ``--wide`` draws a table at its natural width, nothing
wrapped. Errors print the problem the service sent and exit 1.

This module holds only the root ``lipspline`` group (``--url``, ``--api-key``: the SDK client every
command uses) and ``main``. Each command group is a module of its own (``datasets``, ``jobs``,
``models`` with ``predict``, ``registry``, ``sweeps``, ``webhooks``, ``storage``), built on the shared
``output`` (tables, lines, JSON, errors), ``options`` and ``edit``; the groups do not import this module,
it adds them to the root group, so no import goes in a circle.
"""

from __future__ import annotations

import click

from api_schemas.version import __version__
from lipspline_client import Client
from lipspline_client.cli import datasets, jobs, models, registry, storage, sweeps, webhooks
from lipspline_client.cli.models import read_rows
from lipspline_client.cli.output import table
from lipspline_client.cli.sweeps import parse_select, selection_text, show_sweep
from lipspline_client.transport import DEFAULT_URL


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, "--version", prog_name="lipspline", message="%(prog)s %(version)s")
@click.option("--url", envvar="LIPSPLINE_URL", default=DEFAULT_URL, show_envvar=True, help="the LipSpline service")
@click.option(
    "--api-key",
    envvar="LIPSPLINE_API_KEY",
    show_envvar=True,
    help="Bearer key [default: $LIPSPLINE_DATA_DIR/api-key, the key `lipspline serve` wrote]",
)
@click.pass_context
def cli(ctx: click.Context, url: str, api_key: str | None) -> None:
    """LipSpline from a terminal: upload data, train with live progress, predict with certificates."""
    ctx.obj = ctx.with_resource(Client(url, api_key))


for _command in (datasets.datasets, jobs.jobs, models.models, models.predict, registry.registry, sweeps.sweeps,
                 webhooks.webhooks, storage.storage):
    cli.add_command(_command)


def main(argv: list[str]) -> int:
    try:
        cli.main(args=argv, prog_name="lipspline", standalone_mode=True)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


__all__ = ["cli", "main", "parse_select", "read_rows", "selection_text", "show_sweep", "table"]
