"""The options several command groups share, and what their values become in an SDK call.

Shared so that ``--json``, ``--wide``, the labels (``--name``, ``--tag``, ``--description``) and the
``list`` filters read and behave the same under every group: one help text, one meaning.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from lipspline_client import Client

json_option = click.option("--json", "as_json", is_flag=True, help="print the API's JSON instead of text")
wide_option = click.option("--wide", is_flag=True, help="draw the table at its full width (no column wrapped)")
name_filter = click.option("--name", "name_filter", help="only those with this exact name")
tag_filter = click.option("--tag", "tag_filter", multiple=True, help="only those with this tag (repeat: every one)")
poll_option = click.option("--poll", "poll_s", type=click.FloatRange(min=0.1), default=1.0,
                           help="seconds between two looks at the sweep while following it")


def client_of(ctx: click.Context) -> Client:
    """The SDK client the root ``lipspline`` group opened (``--url``, ``--api-key``)."""
    return ctx.find_root().obj


def dataset_filter(noun: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--dataset`` of ``NOUN list`` (``dataset_id``): only the NOUN of one dataset."""
    return click.option("--dataset", "dataset_id", help=f"only the {noun} of this dataset")


def list_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--name``, ``--tag`` (repeatable), ``--wide`` and ``--json``: what every labelled ``list`` command
    takes after its own filters (the labels reach the SDK through ``label_filters``)."""
    for option in (json_option, wide_option, tag_filter, name_filter):
        command = option(command)
    return command


def label_filters(name: str | None, tags: Sequence[str]) -> dict[str, Any]:
    """The SDK's ``list(name=..., tags=...)`` keywords; ``tags`` left out when no ``--tag`` was given."""
    return {"name": name, **({"tags": list(tags)} if tags else {})}


def label_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--tag`` (repeatable) and ``--description`` of a create / submit / upload command (its ``--name``
    stays its own: the help says what the name defaults to)."""
    command = click.option("--description", help="free text (at most 2000 characters)")(command)
    command = click.option("--tag", "tags", multiple=True, help="a tag such as team:vision or stage=prod (repeat)")(
        command
    )
    return command


def given_labels(name: str | None, tags: Sequence[str], description: str | None) -> dict[str, Any]:
    """The labels given on the command line as SDK keywords; those not given left out (the service's default)."""
    labels = {"name": name, "tags": list(tags) or None, "description": description}
    return {key: value for key, value in labels.items() if value is not None}


def read_config(path: Path) -> dict:
    """A mapping (a TrainingConfig, a sweep's space) from a YAML or JSON file."""
    content = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(content) or {}
    return json.loads(content)
