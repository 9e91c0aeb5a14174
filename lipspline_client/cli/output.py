"""How every user command prints: tables, plain lines, the API's JSON, and a service's error.

One module so that every command group draws the same way: a table never cuts an id, values from the
service are printed as they are (no rich markup read in them), ``--json`` is the API's own JSON, and a
problem from the service (or an unreadable file, a bad value) prints ``error: ...`` and exits 1, never a
traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from lipspline_client import LipSplineError
from lipspline_client.formatting import text

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

#: a cell up to this long is never wrapped nor cut (an id is 32 characters, a sha256 64)
WHOLE_CELL = 64


def handles_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """A problem from the service is printed (status, title, detail, the field at fault) and exits 1; so is a
    file that cannot be read or a value that cannot be used (``error: ...``, never a traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LipSplineError as error:
            err.print(f"[bold red]error:[/] {escape(str(error))}")
            problem = error.problem
            for item in (problem.errors or []) if problem else []:
                err.print(f"  {escape(item.field)}: {escape(item.message)}")
            if error.status == 401:
                err.print("  set LIPSPLINE_API_KEY (or --api-key); `lipspline serve` prints the export line")
            sys.exit(1)
        except (OSError, ValueError) as error:  # an unreadable file, a malformed CSV / config, a bad value
            err.print(f"[bold red]error:[/] {escape(str(error))}")
            sys.exit(1)

    return wrapper


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        click.echo(value.model_dump_json(indent=2, by_alias=True))
    else:
        click.echo(json.dumps(value, indent=2, default=str))


def _console_of_width(width: int) -> Console:
    """A console like ``out`` but ``width`` columns wide (a table wider than the terminal is not cut)."""
    return Console(width=width, highlight=False, force_terminal=out.is_terminal, color_system=out.color_system,
                   no_color=out.no_color)


def table(title: str, columns: Sequence[str], rows: list[list[Any]], *, wide: bool = False) -> None:
    """A table; every cell as readable text. A column whose cells are all short (ids, hashes, numbers, times:
    at most ``WHOLE_CELL`` characters) is never wrapped nor cut; longer text wraps at ``WHOLE_CELL``. When the
    terminal is too narrow for that, the table is drawn wider than the terminal rather than cut anything.
    ``wide``: every column at its full width, none wrapped."""
    cells = [[cell if isinstance(cell, Text) else Text(text(cell)) for cell in row] for row in rows]
    view = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for index, column in enumerate(columns):
        longest = max((cell.cell_len for row in cells for cell in row[index:index + 1]), default=0)
        whole = wide or longest <= WHOLE_CELL
        view.add_column(Text(column), no_wrap=whole, overflow="fold", max_width=None if whole else WHOLE_CELL)
    for row in cells:
        view.add_row(*row)
    natural = Measurement.get(out, out.options.update_width(100_000), view).maximum
    if natural > out.width:
        _console_of_width(natural).print(view)
    else:
        out.print(view)


def lines(*messages: str, to: Console = out) -> None:
    """Plain lines (no markup read in them: values from the service are printed as they are)."""
    for message in messages:
        to.print(Text(message), soft_wrap=True)


def print_deleted(as_json: bool, message: str, **key: str) -> None:
    """What a ``delete`` command prints once done: ``{**key, "deleted": true}`` with ``--json``, else
    ``message`` on stderr (stdout stays empty: nothing there for a script to read)."""
    if as_json:
        print_json({**key, "deleted": True})
    else:
        lines(message, to=err)


def name_of(record: Any) -> str:
    """A record's name as a cell (``-`` when it has none)."""
    return text(getattr(record, "name", None))
