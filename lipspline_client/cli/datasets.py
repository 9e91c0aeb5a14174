"""``lipspline datasets``: upload or register training data, then list, show, edit and delete it.

The data every job and sweep trains on, by id. ``upload`` sends a local file (a CSV's last header
column is its default target); ``register`` records objects where they lie (s3://, gs://, az://,
file:///shared/…), read with the tenant's own keys (``lipspline storage``) when it stored some.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import click

from lipspline_client.cli.edit import edit_command
from lipspline_client.cli.options import (
    client_of,
    json_option,
    label_filters,
    label_options,
    list_options,
    wide_option,
)
from lipspline_client.cli.output import err, handles_errors, lines, print_deleted, print_json, table
from lipspline_client.formatting import field_rows, tags_text, timestamp


@click.group()
def datasets() -> None:
    """Upload, list, show, edit and delete datasets."""


task_option = click.option("--task", type=click.Choice(["classification", "regression"]), help="[default: inferred]")


def _print_added(dataset: Any, as_json: bool, *, where: str = "") -> None:
    """What ``upload`` and ``register`` print: the new dataset's id alone on stdout (for a script), its size
    on stderr."""
    if as_json:
        return print_json(dataset)
    click.echo(dataset.id)
    lines(f"{dataset.name}: {dataset.n_samples} rows, {dataset.n_features} features, {dataset.task}{where}", to=err)


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--target", help="label column of a CSV or Parquet file [default for a CSV: its last column]")
@click.option("--name", help="dataset name [default: the file name]")
@task_option
@label_options
@json_option
@click.pass_context
@handles_errors
def datasets_upload(ctx: click.Context, path: Path, target: str | None, name: str | None, task: str | None,
                    tags: tuple[str, ...], description: str | None, as_json: bool) -> None:
    """Upload PATH (CSV, .npz, Parquet or JSON); prints the new dataset's id."""
    extra = {"tags": list(tags), "description": description} if tags or description else {}
    if target is None and path.suffix.lower() == ".csv":
        target = _last_column(path)
    dataset = client_of(ctx).datasets.upload(path, target=target, name=name, task=task, **extra)
    _print_added(dataset, as_json)


@datasets.command("register")
@click.argument("uri")
@click.option("--target", required=True, help="the target column")
@click.option("--feature", "features", multiple=True, help="a feature column, in order (repeat) [default: every other]")
@click.option("--name", help="dataset name [default: dataset]")
@task_option
@label_options
@json_option
@click.pass_context
@handles_errors
def datasets_register(ctx: click.Context, uri: str, target: str, features: tuple[str, ...], name: str | None,
                      task: str | None, tags: tuple[str, ...], description: str | None, as_json: bool) -> None:
    """Register Parquet objects at URI (s3://, gs://, az://, file:///shared/…) without uploading them; prints the id."""
    dataset = client_of(ctx).datasets.register(uri, target=target, features=list(features) or None, task=task,
                                               name=name, tags=list(tags) or None, description=description)
    _print_added(dataset, as_json, where=f", read where it lies ({uri})")


def _last_column(path: Path) -> str | None:
    """The last name of a CSV's header line (None for an empty file: the service then says what is wrong)."""
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    return header[-1] if header else None


def _dataset_rows(items: list, wide: bool) -> list[list[Any]]:
    return [[d.id, d.name, tags_text(getattr(d, "tags", None)), d.task, d.n_samples, d.n_features,
             *([d.sha256] if wide else []), timestamp(d.created_at, short=True)] for d in items]


@datasets.command("list")
@list_options
@click.pass_context
@handles_errors
def datasets_list(ctx: click.Context, name_filter: str | None, tag_filter: tuple[str, ...], wide: bool,
                  as_json: bool) -> None:
    """Every dataset of your tenant, newest first."""
    found = client_of(ctx).datasets.list(**label_filters(name_filter, tag_filter))
    if as_json:
        return print_json(found)
    columns = ["id", "name", "tags", "task", "rows", "features", *(["sha256"] if wide else []), "created"]
    table("datasets", columns, _dataset_rows(found.items, wide), wide=wide)


@datasets.command("show")
@click.argument("dataset_id")
@wide_option
@json_option
@click.pass_context
@handles_errors
def datasets_show(ctx: click.Context, dataset_id: str, wide: bool, as_json: bool) -> None:
    """One dataset: sizes, classes, feature names, sha256."""
    dataset = client_of(ctx).datasets.get(dataset_id)
    if as_json:
        return print_json(dataset)
    table(f"dataset {dataset.id}", ["field", "value"], [list(row) for row in field_rows(dataset)], wide=wide)


@datasets.command("delete")
@click.argument("dataset_id")
@json_option
@click.pass_context
@handles_errors
def datasets_delete(ctx: click.Context, dataset_id: str, as_json: bool) -> None:
    """Delete a dataset (refused while a queued or running job uses it)."""
    client_of(ctx).datasets.delete(dataset_id)
    print_deleted(as_json, f"deleted {dataset_id}", id=dataset_id)


edit_command(datasets, "dataset", lambda client: client.datasets.update)
