"""``lipspline NOUN edit REF``: the one command every labelled resource (dataset, job, model, sweep) has.

Built once here and added to each group by ``edit_command``, so that setting, clearing, adding and
removing labels reads and behaves the same for every resource.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lipspline_client import Client
from lipspline_client.cli.options import client_of, json_option
from lipspline_client.cli.output import handles_errors, lines, print_json
from lipspline_client.formatting import tags_text, text


def edit_command(group: click.Group, noun: str, update: Callable[[Client], Callable[..., Any]]) -> None:
    """``lipspline NOUN edit ID``: set or clear the name, replace or add tags, set or clear the description."""

    @group.command("edit")
    @click.argument("ref")
    @click.option("--name", help="the new name")
    @click.option("--clear-name", is_flag=True, help="remove the name")
    @click.option("--tag", "tags", multiple=True, help="the new tags, replacing the old ones (repeat)")
    @click.option("--add-tag", "add_tags", multiple=True, help="a tag to add to the present ones (repeat)")
    @click.option("--remove-tag", "remove_tags", multiple=True, help="a tag to remove (repeat)")
    @click.option("--clear-tags", is_flag=True, help="remove every tag")
    @click.option("--description", help="the new description")
    @click.option("--clear-description", is_flag=True, help="remove the description")
    @json_option
    @click.pass_context
    @handles_errors
    def edit(ctx: click.Context, ref: str, name: str | None, clear_name: bool, tags: tuple[str, ...],
             add_tags: tuple[str, ...], remove_tags: tuple[str, ...], clear_tags: bool, description: str | None,
             clear_description: bool, as_json: bool) -> None:
        client = client_of(ctx)
        changes: dict[str, Any] = {}
        if name is not None or clear_name:
            changes["name"] = None if clear_name else name
        if description is not None or clear_description:
            changes["description"] = None if clear_description else description
        if clear_tags:
            changes["tags"] = []
        elif tags:
            changes["tags"] = list(tags)
        if add_tags or remove_tags:
            present = list(changes.get("tags", _current_tags(client, noun, ref)))
            present += [tag for tag in add_tags if tag not in present]
            changes["tags"] = [tag for tag in present if tag not in remove_tags]
        if not changes:
            raise click.UsageError("nothing to change: give --name, --tag, --add-tag, --remove-tag, --description "
                                   "or a --clear-... option")
        updated = update(client)(ref, **changes)
        if as_json:
            return print_json(updated)
        lines(f"{noun} {updated.id}: name {text(getattr(updated, 'name', None))}, "
              f"tags {tags_text(getattr(updated, 'tags', None))}, "
              f"description {text(getattr(updated, 'description', None))}")

    edit.__doc__ = f"""Set or clear a {noun}'s name, tags and description (what is not given stays as it is)."""
    edit.help = edit.__doc__


def _current_tags(client: Client, noun: str, ref: str) -> list[str]:
    getter = {"dataset": client.datasets.get, "job": lambda r: client.jobs.get(r).info,
              "model": lambda r: client.models.get(r).info,
              "sweep": lambda r: client.sweeps.get(r).info}[noun]
    return list(getattr(getter(ref), "tags", None) or [])
