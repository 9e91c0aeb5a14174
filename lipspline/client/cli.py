"""The user commands of ``lipspline``: datasets, jobs, models, predict, webhooks, on the SDK.

``service/cli.py`` hands these commands here and keeps serve/api/worker/keys/db/experiment.
Every read command takes ``--json`` (the API's JSON, for scripts); tables and the live
progress bar are drawn with rich on a terminal. Errors print the problem the service sent.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from lipspline.client import Client, LipSplineError
from lipspline.client.progress import JobProgress, epoch_summary
from lipspline.client.transport import DEFAULT_URL

COMMANDS = ("datasets", "jobs", "models", "predict", "webhooks")
out = Console()
err = Console(stderr=True)


def _client(ctx: click.Context) -> Client:
    return ctx.find_root().obj


def handles_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """A problem from the service is printed (status, title, detail, the field at fault) and exits 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LipSplineError as error:
            err.print(f"[bold red]error:[/] {error}", highlight=False)
            problem = error.problem
            for item in (problem.errors or []) if problem else []:
                err.print(f"  {item.field}: {item.message}", highlight=False)
            if error.status == 401:
                err.print("  set LIPSPLINE_API_KEY (or --api-key); `lipspline serve` prints the export line")
            sys.exit(1)

    return wrapper


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        click.echo(value.model_dump_json(indent=2, by_alias=True))
    else:
        click.echo(json.dumps(value, indent=2, default=str))


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*["" if v is None else str(v) for v in row])
    out.print(view)


json_option = click.option("--json", "as_json", is_flag=True, help="print the API's JSON instead of a table")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
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


# ---- datasets ---------------------------------------------------------------------------------------
@cli.group()
def datasets() -> None:
    """Upload, list, show and delete datasets."""


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--target", help="label column of a CSV or Parquet file (default: the last column)")
@click.option("--name", help="dataset name [default: the file name]")
@click.option("--task", type=click.Choice(["classification", "regression"]), help="[default: inferred]")
@json_option
@click.pass_context
@handles_errors
def datasets_upload(ctx: click.Context, path: Path, target: str | None, name: str | None, task: str | None,
                    as_json: bool) -> None:  # fmt: skip
    """Upload PATH (CSV, .npz, Parquet or JSON); prints the new dataset's id."""
    dataset = _client(ctx).datasets.upload(path, target=target, name=name, task=task)
    if as_json:
        print_json(dataset)
    else:
        click.echo(dataset.id)
        err.print(f"{dataset.name}: {dataset.n_samples} rows, {dataset.n_features} features, {dataset.task}")


def _dataset_rows(items: list) -> list[list[Any]]:
    return [[d.id, d.name, d.task, d.n_samples, d.n_features, d.created_at.isoformat(timespec="seconds")]
            for d in items]  # fmt: skip


@datasets.command("list")
@json_option
@click.pass_context
@handles_errors
def datasets_list(ctx: click.Context, as_json: bool) -> None:
    """Every dataset of your tenant, newest first."""
    found = _client(ctx).datasets.list()
    if as_json:
        return print_json(found)
    table("datasets", ["id", "name", "task", "rows", "features", "created"], _dataset_rows(found.items))


@datasets.command("show")
@click.argument("dataset_id")
@json_option
@click.pass_context
@handles_errors
def datasets_show(ctx: click.Context, dataset_id: str, as_json: bool) -> None:
    """One dataset: sizes, classes, feature names, sha256."""
    dataset = _client(ctx).datasets.get(dataset_id)
    if as_json:
        return print_json(dataset)
    table(f"dataset {dataset.id}", ["field", "value"], [[k, v] for k, v in dataset.model_dump().items()])


@datasets.command("delete")
@click.argument("dataset_id")
@click.pass_context
@handles_errors
def datasets_delete(ctx: click.Context, dataset_id: str) -> None:
    """Delete a dataset (refused while a queued or running job uses it)."""
    _client(ctx).datasets.delete(dataset_id)
    err.print(f"deleted {dataset_id}")


# ---- jobs -------------------------------------------------------------------------------------------
@cli.group()
def jobs() -> None:
    """Submit, follow, list, show and cancel training jobs."""


def read_config(path: Path) -> dict:
    """A TrainingConfig from a YAML or JSON file."""
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


def follow(job: Any) -> Any:
    """Draw the job's live progress until it ends; the finished job."""
    with JobProgress(job.id, getattr(job.info, "progress", {}).get("epochs"), console=err) as view:
        for event in job.events():
            view.update(event)
    return job.refresh()


@jobs.command("submit")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", "dataset_id", required=True, help="id of the dataset to train on")
@click.option("--follow/--no-follow", "follow_", default=False, help="draw live progress until the job ends")
@click.option("--notify-url", help="http(s) URL that receives the job's final event (signed webhook)")
@json_option
@click.pass_context
@handles_errors
def jobs_submit(ctx: click.Context, config: Path, dataset_id: str, follow_: bool, notify_url: str | None,
                as_json: bool) -> None:  # fmt: skip
    """Train on a dataset with CONFIG (YAML or JSON TrainingConfig); prints the job id."""
    job = _client(ctx).jobs.submit(dataset_id, read_config(config), notify_url=notify_url)
    if not follow_:
        return print_json(job.info) if as_json else click.echo(job.id)
    err.print(f"job {job.id}")
    follow(job)
    if as_json:
        print_json(job.info)
    else:
        click.echo(job.id)
    _report_end(job)


def _report_end(job: Any) -> None:
    if job.status == "succeeded":
        err.print(f"[green]succeeded[/]: model {job.model_id}")
    else:
        err.print(f"[red]{job.status}[/]: {job.info.error or ''}", highlight=False)
        sys.exit(1)


@jobs.command("list")
@click.option("--status", type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]))
@json_option
@click.pass_context
@handles_errors
def jobs_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """Your tenant's jobs, newest first."""
    found = _client(ctx).jobs.list(status)
    if as_json:
        return print_json(found)
    rows = [[j.id, j.status, f"{j.progress.get('epoch', 0)}/{j.progress.get('epochs', '?')}", j.model_id or "",
             j.created_at.isoformat(timespec="seconds")] for j in found.items]  # fmt: skip
    table("jobs", ["id", "status", "epoch", "model", "created"], rows)


@jobs.command("show")
@click.argument("job_id")
@json_option
@click.pass_context
@handles_errors
def jobs_show(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """A job's status, progress, timings and error."""
    job = _client(ctx).jobs.get(job_id)
    if as_json:
        return print_json(job.info)
    info = job.info.model_dump(exclude={"config"})
    table(f"job {job.id}", ["field", "value"], [[k, v] for k, v in info.items()])


@jobs.command("cancel")
@click.argument("job_id")
@click.pass_context
@handles_errors
def jobs_cancel(ctx: click.Context, job_id: str) -> None:
    """Cancel a job: at once when queued, within one epoch when running."""
    job = _client(ctx).jobs.get(job_id).cancel()
    err.print(f"{job.id}: {job.status}" + (" (cancel requested)" if job.status == "running" else ""))


@jobs.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", "follow_", is_flag=True, help="keep printing new events until the job ends")
@json_option
@click.pass_context
@handles_errors
def jobs_logs(ctx: click.Context, job_id: str, follow_: bool, as_json: bool) -> None:
    """A job's events: status changes and one line per epoch (loss terms, metrics, seconds)."""
    job = _client(ctx).jobs.get(job_id)
    if not follow_ and job.status not in ("succeeded", "failed", "cancelled"):
        events = job.events_so_far()
    else:
        events = job.events()
    for event in events:
        if as_json:
            click.echo(event.model_dump_json())
        elif event.type == "epoch":
            data = event.data
            click.echo(f"#{event.seq} epoch {data.get('epoch')}/{data.get('epochs')} "
                       f"{data.get('epoch_seconds', 0):.2f}s {epoch_summary(data)}")  # fmt: skip
        else:
            detail = event.data.get("model_id") or event.data.get("error") or ""
            click.echo(f"#{event.seq} {event.type} {event.data.get('status')} {detail}".rstrip())


# ---- models -----------------------------------------------------------------------------------------
@cli.group()
def models() -> None:
    """List, show and download trained models."""


@models.command("list")
@json_option
@click.pass_context
@handles_errors
def models_list(ctx: click.Context, as_json: bool) -> None:
    """Your tenant's models, newest first, with their certified Lipschitz bound."""
    found = _client(ctx).models.list()
    if as_json:
        return print_json(found)
    rows = [[m.id, m.task, m.lipschitz.certified, json.dumps(m.metrics, default=str)[:60], m.job_id]
            for m in found.items]  # fmt: skip
    table("models", ["id", "task", "certified L", "metrics", "job"], rows)


@models.command("show")
@click.argument("ref")
@json_option
@click.pass_context
@handles_errors
def models_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """A model: metrics, every certified bound beside the lower bounds, sparsity."""
    model = _client(ctx).models.get(ref)
    if as_json:
        return print_json(model.info)
    info = model.info
    rows = [["task", info.task], ["certified Lipschitz bound", info.lipschitz.certified],
            ["certified by", info.lipschitz.certified_by], ["best lower bound", info.lipschitz.best_lower],
            *[[f"bound {k}", v] for k, v in info.lipschitz.bounds.items()],
            *[[f"metric {k}", v] for k, v in info.metrics.items()],
            ["parameters", info.parameter_count], ["classes", info.classes]]  # fmt: skip
    table(f"model {info.id}", ["field", "value"], rows)


@models.command("download")
@click.argument("ref")
@click.option("--format", "format_", type=click.Choice(["zip", "onnx"]), default="zip", help="file format")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="file to write [default: lipspline-model-ID.FORMAT]")  # fmt: skip
@click.pass_context
@handles_errors
def models_download(ctx: click.Context, ref: str, format_: str, output: Path | None) -> None:
    """Download a model: zip (model.json + weights.safetensors) or onnx (the served map)."""
    model = _client(ctx).models.get(ref)
    path = model.download(output or Path(f"lipspline-model-{model.id}.{format_}"), format=format_)
    click.echo(str(path))


# ---- predict ----------------------------------------------------------------------------------------
def read_rows(path: Path, feature_names: list[str]) -> tuple[list[str], list[list[float]]]:
    """The CSV's header and rows: the model's feature columns by name when the header has them all."""
    with path.open(newline="") as handle:
        records = list(csv.reader(handle))
    header, body = records[0], [r for r in records[1:] if r]
    if all(name in header for name in feature_names):
        index = [header.index(name) for name in feature_names]
    else:
        index = list(range(len(header)))
    return header, [[float(row[i]) for i in index] for row in body]


@cli.command("predict")
@click.argument("model_ref")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with a header; the model's feature columns are picked by name")  # fmt: skip
@click.option("--epsilon", type=float, help="input change (l2) for output_bound: how far each output can move")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="CSV to write [default: stdout]")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON instead of CSV")
@click.pass_context
@handles_errors
def predict(ctx: click.Context, model_ref: str, input_path: Path, epsilon: float | None, output: Path | None,
            as_json: bool) -> None:  # fmt: skip
    """Predict every row of --input; certificate columns beside each prediction.

    Columns added: prediction, output_0…, rounding_bound, certified_radius (classifiers),
    output_bound (with --epsilon), and lipschitz_bound (the same for every row).
    """
    model = _client(ctx).models.get(model_ref)
    header, rows = read_rows(input_path, model.info.feature_names)
    result = model.predict(rows, epsilon=epsilon)
    if as_json:
        return print_json(result.response)
    width = result.outputs.shape[1]
    columns = [*header, "prediction", *[f"output_{i}" for i in range(width)], "rounding_bound"]
    columns += ["certified_radius"] if result.certified_radius is not None else []
    columns += ["output_bound"] if result.output_bounds is not None else []
    columns += ["lipschitz_bound"]
    with output.open("w", newline="") if output else _stdout() as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for i, row in enumerate(rows):
            line = [*_original(row, header), result.predictions[i], *result.outputs[i].tolist(),
                    result.rounding_bound[i]]  # fmt: skip
            line += [result.certified_radius[i]] if result.certified_radius is not None else []
            line += [result.output_bounds[i]] if result.output_bounds is not None else []
            writer.writerow([*line, result.lipschitz_bound])
    if output:
        err.print(f"{len(rows)} predictions written to {output}")


def _original(row: list[float], header: list[str]) -> list[Any]:
    return row if len(row) == len(header) else [*row, *[""] * (len(header) - len(row))]


class _stdout:  # noqa: N801 - used like open()
    def __enter__(self) -> Any:
        return sys.stdout

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()


# ---- webhooks ---------------------------------------------------------------------------------------
@cli.group()
def webhooks() -> None:
    """The signing secret and the endpoints that receive every job's final event."""


@webhooks.command("secret")
@click.pass_context
@handles_errors
def webhooks_secret(ctx: click.Context) -> None:
    """Create or rotate the tenant's signing secret (printed once: store it)."""
    click.echo(_client(ctx).webhooks.create_secret().secret)


@webhooks.command("add")
@click.argument("url")
@json_option
@click.pass_context
@handles_errors
def webhooks_add(ctx: click.Context, url: str, as_json: bool) -> None:
    """Register URL for the final event of every job."""
    endpoint = _client(ctx).webhooks.register(url)
    print_json(endpoint) if as_json else click.echo(endpoint.id)


def main(argv: list[str]) -> int:
    try:
        cli.main(args=argv, prog_name="lipspline", standalone_mode=True)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0
