"""``lipspline registry``: registered models (names with numbered versions) and their aliases.

Apart from ``models`` because a registered name is a pointer, not a model: its versions and its
aliases (``NAME@ALIAS``, moved atomically, every move recorded) are how a deployment names "the model
in production" without an id; the ``alias`` subgroup sets, removes and lists the history of them.
"""

from __future__ import annotations

import click

from lipspline_client import LipSplineError
from lipspline_client.cli.options import client_of, json_option, wide_option
from lipspline_client.cli.output import handles_errors, lines, print_deleted, print_json, table
from lipspline_client.formatting import MISSING, text, timestamp


@click.group()
def registry() -> None:
    """Registered models: names, numbered versions, aliases (NAME@ALIAS) and who moved which alias when."""


def _aliases_text(aliases: dict[str, int]) -> str:
    return ", ".join(f"{alias} -> v{version}" for alias, version in sorted(aliases.items())) or MISSING


@registry.command("list")
@click.option("--name", "name_filter", help="only this name")
@wide_option
@json_option
@click.pass_context
@handles_errors
def registry_list(ctx: click.Context, name_filter: str | None, wide: bool, as_json: bool) -> None:
    """Every registered model of your tenant, newest first: latest version and aliases."""
    found = client_of(ctx).registry.list(name=name_filter)
    if as_json:
        return print_json(found)
    rows = [[r.name, r.latest_version, _aliases_text(r.aliases), r.description, timestamp(r.updated_at, short=True)]
            for r in found.items]
    table("registered models", ["name", "latest", "aliases", "description", "updated"], rows, wide=wide)


def _versions_table(name: str, versions: list, wide: bool) -> None:
    rows = [[f"v{v.version}", v.model_id, ", ".join(v.aliases) or MISSING, v.task, v.lipschitz_bound,
             *([v.lineage.job_id, v.lineage.dataset_id] if wide else []), v.created_by,
             timestamp(v.created_at, short=True)] for v in versions]
    columns = ["version", "model", "aliases", "task", "certified L", *(["job", "dataset"] if wide else []),
               "created by", "created"]
    table(f"{name}: versions", columns, rows, wide=wide)


@registry.command("show")
@click.argument("name")
@wide_option
@json_option
@click.pass_context
@handles_errors
def registry_show(ctx: click.Context, name: str, wide: bool, as_json: bool) -> None:
    """A registered model: its versions (model, aliases, bound, who added it) and its aliases."""
    client = client_of(ctx)
    registered = client.registry.get(name)
    versions = client.registry.versions(name)
    if as_json:
        listed = versions.model_dump(mode="json", by_alias=True)["items"]
        return print_json({**registered.model_dump(mode="json"), "versions": listed})
    lines(f"{registered.name}: latest version {text(registered.latest_version)}, "
          f"aliases {_aliases_text(registered.aliases)}",
          *([f"description: {registered.description}"] if registered.description else []))
    _versions_table(registered.name, versions.items, wide)
    if registered.aliases:
        lines(*[f"use {registered.name}@{alias} (version {version})" for alias, version in
                sorted(registered.aliases.items())])


@registry.command("create")
@click.argument("name")
@click.option("--description", help="what the name is for")
@json_option
@click.pass_context
@handles_errors
def registry_create(ctx: click.Context, name: str, description: str | None, as_json: bool) -> None:
    """Create an empty registered model NAME (``register`` creates it too when it is missing)."""
    created = client_of(ctx).registry.create(name, description)
    if as_json:
        return print_json(created)
    lines(f"created {created.name}")


@registry.command("register")
@click.argument("name")
@click.argument("model_ref")
@click.option("--alias", "aliases", multiple=True, help="also point this alias at the new version (repeat)")
@click.option("--create/--no-create", default=True, help="create NAME first when it does not exist")
@json_option
@click.pass_context
@handles_errors
def registry_register(ctx: click.Context, name: str, model_ref: str, aliases: tuple[str, ...], create: bool,
                      as_json: bool) -> None:
    """Add a trained model (MODEL_REF: an id, or any model reference) as NAME's next version."""
    client = client_of(ctx)
    model_id = model_ref if _looks_like_id(model_ref) else client.models.get(model_ref).id
    if create:
        try:
            client.registry.get(name)
        except LipSplineError as error:
            if error.status != 404:
                raise
            client.registry.create(name)
    version = client.registry.register(name, model_id)
    moved = [client.registry.set_alias(name, alias, version.version) for alias in aliases]
    if as_json:
        added = [m.alias for m in moved if m.alias not in version.aliases]
        return print_json({**version.model_dump(mode="json", by_alias=True), "aliases": [*version.aliases, *added]})
    lines(f"{name} version {version.version}: model {version.model_id}",
          *[f"{m.reference} -> version {m.version}" for m in moved])


def _looks_like_id(ref: str) -> bool:
    return len(ref) == 32 and all(c in "0123456789abcdef" for c in ref)


@registry.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="delete even while aliases point into it")
@json_option
@click.pass_context
@handles_errors
def registry_delete(ctx: click.Context, name: str, force: bool, as_json: bool) -> None:
    """Delete NAME with its versions, aliases and alias history (the trained models stay)."""
    client_of(ctx).registry.delete(name, force=force)
    print_deleted(as_json, f"deleted {name}", name=name)


@registry.group("alias")
def registry_alias() -> None:
    """Set (or move), delete and list the history of NAME's aliases."""


@registry_alias.command("set")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=click.IntRange(min=1))
@json_option
@click.pass_context
@handles_errors
def alias_set(ctx: click.Context, name: str, alias: str, version: int, as_json: bool) -> None:
    """Point ALIAS of NAME at VERSION (set, or moved atomically): NAME@ALIAS then names that version."""
    moved = client_of(ctx).registry.set_alias(name, alias, version)
    if as_json:
        return print_json(moved)
    lines(f"{moved.reference} -> version {moved.version} (model {moved.model_id})")


@registry_alias.command("delete")
@click.argument("name")
@click.argument("alias")
@json_option
@click.pass_context
@handles_errors
def alias_delete(ctx: click.Context, name: str, alias: str, as_json: bool) -> None:
    """Remove ALIAS of NAME (recorded in its history)."""
    client_of(ctx).registry.delete_alias(name, alias)
    if as_json:
        return print_json({"name": name, "alias": alias, "deleted": True})
    lines(f"removed {name}@{alias}")


@registry_alias.command("history")
@click.argument("name")
@click.option("--alias", help="only this alias' moves")
@wide_option
@json_option
@click.pass_context
@handles_errors
def alias_history(ctx: click.Context, name: str, alias: str | None, wide: bool, as_json: bool) -> None:
    """Every alias move under NAME, oldest first: when, which alias, from which version to which, by whom."""
    events = client_of(ctx).registry.alias_events(name, alias)
    if as_json:
        return print_json(events)

    def version(number_: int | None, missing: str) -> str:
        return missing if number_ is None else f"v{number_}"

    rows = [[timestamp(e.at), e.alias, version(e.from_version, "(new)"), version(e.to_version, "(removed)"), e.actor]
            for e in events.items]
    table(f"{name}: alias history", ["when", "alias", "from", "to", "by"], rows, wide=wide)
