"""The user commands of ``lipspline``: datasets, jobs, models, predict, registry, sweeps, webhooks, on the SDK.

``service/cli.py`` hands these commands here and keeps serve/api/worker/keys/db/experiment.
Every command has two forms: the human one (tables and lines drawn with rich, every value as
readable text, ids always printed in full) and ``--json`` (the API's JSON, for scripts; ``jobs logs
--json`` prints one JSON event per line). ``--wide`` draws a table at its natural width, nothing
wrapped. Errors print the problem the service sent and exit 1.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from api_schemas.sweeps import Budget, SelectKnee, SelectMaxAccuracy, SelectMaxCertifiedAccuracy, SweepOut
from api_schemas.version import __version__
from lipspline_client import Client, LipSplineError
from lipspline_client.formatting import MISSING, field_rows, number, rule_text, tags_text, text, timestamp
from lipspline_client.progress import JobProgress, epoch_summary
from lipspline_client.resources import SelectRule, trials_frame
from lipspline_client.transport import DEFAULT_URL

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

#: a cell up to this long is never wrapped nor cut (an id is 32 characters, a sha256 64)
WHOLE_CELL = 64


def _client(ctx: click.Context) -> Client:
    return ctx.find_root().obj


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


json_option = click.option("--json", "as_json", is_flag=True, help="print the API's JSON instead of text")
wide_option = click.option("--wide", is_flag=True, help="draw the table at its full width (no column wrapped)")
name_filter = click.option("--name", "name_filter", help="only those with this exact name")
tag_filter = click.option("--tag", "tag_filter", multiple=True, help="only those with this tag (repeat: every one)")
poll_option = click.option("--poll", "poll_s", type=click.FloatRange(min=0.1), default=1.0,
                           help="seconds between two looks at the sweep while following it")


def label_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--name``, ``--tag`` (repeatable) and ``--description`` of a create / submit / upload command."""
    command = click.option("--description", help="free text (at most 2000 characters)")(command)
    command = click.option("--tag", "tags", multiple=True, help="a tag such as team:vision or stage=prod (repeat)")(
        command
    )
    return command


def _labels(name: str | None, tags: Sequence[str], description: str | None) -> dict[str, Any]:
    return {"name": name, "tags": list(tags) or None, "description": description}


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
        client = _client(ctx)
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


def _name_of(record: Any) -> str:
    return text(getattr(record, "name", None))


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


# ---- datasets ---------------------------------------------------------------------------------------
@cli.group()
def datasets() -> None:
    """Upload, list, show, edit and delete datasets."""


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--target", help="label column of a CSV or Parquet file [default for a CSV: its last column]")
@click.option("--name", help="dataset name [default: the file name]")
@click.option("--task", type=click.Choice(["classification", "regression"]), help="[default: inferred]")
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
    dataset = _client(ctx).datasets.upload(path, target=target, name=name, task=task, **extra)
    if as_json:
        print_json(dataset)
    else:
        click.echo(dataset.id)
        lines(f"{dataset.name}: {dataset.n_samples} rows, {dataset.n_features} features, {dataset.task}", to=err)


@datasets.command("register")
@click.argument("uri")
@click.option("--target", required=True, help="the target column")
@click.option("--feature", "features", multiple=True, help="a feature column, in order (repeat) [default: every other]")
@click.option("--name", help="dataset name [default: dataset]")
@click.option("--task", type=click.Choice(["classification", "regression"]), help="[default: inferred]")
@label_options
@json_option
@click.pass_context
@handles_errors
def datasets_register(ctx: click.Context, uri: str, target: str, features: tuple[str, ...], name: str | None,
                      task: str | None, tags: tuple[str, ...], description: str | None, as_json: bool) -> None:
    """Register Parquet objects at URI (s3://, gs://, az://, file:///shared/…) without uploading them; prints the id."""
    dataset = _client(ctx).datasets.register(uri, target=target, features=list(features) or None, task=task,
                                             name=name, tags=list(tags) or None, description=description)
    if as_json:
        return print_json(dataset)
    click.echo(dataset.id)
    lines(f"{dataset.name}: {dataset.n_samples} rows, {dataset.n_features} features, {dataset.task}, "
          f"read where it lies ({uri})", to=err)


def _last_column(path: Path) -> str | None:
    """The last name of a CSV's header line (None for an empty file: the service then says what is wrong)."""
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    return header[-1] if header else None


def _dataset_rows(items: list, wide: bool) -> list[list[Any]]:
    return [[d.id, d.name, tags_text(getattr(d, "tags", None)), d.task, d.n_samples, d.n_features,
             *([d.sha256] if wide else []), timestamp(d.created_at, short=True)] for d in items]


@datasets.command("list")
@name_filter
@tag_filter
@wide_option
@json_option
@click.pass_context
@handles_errors
def datasets_list(ctx: click.Context, name_filter: str | None, tag_filter: tuple[str, ...], wide: bool,
                  as_json: bool) -> None:
    """Every dataset of your tenant, newest first."""
    found = _client(ctx).datasets.list(name=name_filter, **({"tags": list(tag_filter)} if tag_filter else {}))
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
    dataset = _client(ctx).datasets.get(dataset_id)
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
    _client(ctx).datasets.delete(dataset_id)
    if as_json:
        return print_json({"id": dataset_id, "deleted": True})
    lines(f"deleted {dataset_id}", to=err)


edit_command(datasets, "dataset", lambda client: client.datasets.update)


# ---- jobs -------------------------------------------------------------------------------------------
@cli.group()
def jobs() -> None:
    """Submit, follow, list, show, edit and cancel training jobs."""


def read_config(path: Path) -> dict:
    """A mapping (a TrainingConfig, a sweep's space) from a YAML or JSON file."""
    content = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(content) or {}
    return json.loads(content)


def follow(job: Any) -> Any:
    """Draw the job's live progress until it ends; the finished job."""
    progress = getattr(job.info, "progress", None)
    with JobProgress(job.id, progress.epochs if progress is not None else None, console=err) as view:
        for event in job.events():
            view.update(event)
    return job.refresh()


@jobs.command("submit")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False)
@click.option("--dataset", "dataset_id", required=True, help="id of the dataset to train on")
@click.option("--target-radius", type=click.FloatRange(min=0, min_open=True),
              help="train for certified accuracy at this l2 radius (sets robustness.target_radius)")
@click.option("--follow/--no-follow", "follow_", default=False, help="draw live progress until the job ends")
@click.option("--notify-url", help="http(s) URL that receives the job's final event (signed webhook)")
@click.option("--register-as", help="a registered model's name: on success the model becomes its next version")
@click.option("--name", help="a name for the job (and shown beside its id)")
@label_options
@json_option
@click.pass_context
@handles_errors
def jobs_submit(ctx: click.Context, config: Path | None, dataset_id: str, target_radius: float | None,
                follow_: bool, notify_url: str | None, register_as: str | None, name: str | None,
                tags: tuple[str, ...], description: str | None, as_json: bool) -> None:
    """Train on a dataset with CONFIG (YAML or JSON TrainingConfig; default: every default); prints the job id.

    ``--target-radius R`` alone asks for a model trained for certified accuracy at radius R.
    """
    document = read_config(config) if config is not None else {}
    if target_radius is not None:
        document = {**document, "robustness": {**document.get("robustness", {}), "target_radius": target_radius}}
    labels = {k: v for k, v in _labels(name, tags, description).items() if v is not None}
    job = _client(ctx).jobs.submit(dataset_id, document, notify_url=notify_url, register_as=register_as, **labels)
    if not follow_:
        return print_json(job.info) if as_json else click.echo(job.id)
    lines(f"job {job.id}", to=err)
    follow(job)
    if as_json:
        print_json(job.info)
    else:
        click.echo(job.id)
    _report_end(job)


def _report_end(job: Any) -> None:
    if job.status == "succeeded":
        registered = job.info.progress.registered_as if isinstance(job.info.progress, BaseModel) else None
        where = f" (registered as {registered.name} version {text(registered.version)})" if registered else ""
        err.print(Text("succeeded", style="green") + Text(f": model {job.model_id}{where}"))
    else:
        err.print(Text(str(job.status), style="red") + Text(f": {text(job.info.error)}"))
        sys.exit(1)


def _epochs(progress: Any) -> str:
    return f"{progress.epoch}/{progress.epochs if progress.epochs is not None else '?'}"


@jobs.command("list")
@click.option("--status", type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]))
@click.option("--dataset", "dataset_id", help="only the jobs of this dataset")
@name_filter
@tag_filter
@wide_option
@json_option
@click.pass_context
@handles_errors
def jobs_list(ctx: click.Context, status: str | None, dataset_id: str | None, name_filter: str | None,
              tag_filter: tuple[str, ...], wide: bool, as_json: bool) -> None:
    """Your tenant's jobs, newest first."""
    filters = {"name": name_filter, **({"tags": list(tag_filter)} if tag_filter else {})}
    found = _client(ctx).jobs.list(status, dataset_id=dataset_id, **filters)
    if as_json:
        return print_json(found)
    rows = [[j.id, _name_of(j), j.status, _epochs(j.progress), j.model_id,
             *([tags_text(getattr(j, "tags", None)), j.dataset_id, j.device, j.worker_host] if wide else []),
             timestamp(j.created_at, short=True)] for j in found.items]
    columns = ["id", "name", "status", "epoch", "model", *(["tags", "dataset", "device", "worker"] if wide else []),
               "created"]
    table("jobs", columns, rows, wide=wide)


@jobs.command("show")
@click.argument("job_id")
@click.option("--config", "with_config", is_flag=True, help="also list the job's whole training config")
@wide_option
@json_option
@click.pass_context
@handles_errors
def jobs_show(ctx: click.Context, job_id: str, with_config: bool, wide: bool, as_json: bool) -> None:
    """A job's status, progress (loss terms, metrics), timings and error."""
    job = _client(ctx).jobs.get(job_id)
    if as_json:
        return print_json(job.info)
    rows = field_rows(job.info, exclude=() if with_config else ("config",))
    table(f"job {job.id}", ["field", "value"], [list(row) for row in rows], wide=wide)


@jobs.command("cancel")
@click.argument("job_id")
@json_option
@click.pass_context
@handles_errors
def jobs_cancel(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Cancel a job: at once when queued, within one epoch when running."""
    job = _client(ctx).jobs.get(job_id).cancel()
    if as_json:
        return print_json(job.info)
    lines(f"{job.id}: {job.status}" + (" (cancel requested)" if job.status == "running" else ""), to=err)


def event_line(event: Any) -> str:
    """One line of ``jobs logs``: ``#3 epoch 2/40 0.12s data 0.31 total 0.31 | train accuracy 0.9``."""
    data = event.data
    if event.type == "epoch":
        seconds = data.get("epoch_seconds")
        took = f" {seconds:.2f}s" if isinstance(seconds, int | float) else ""
        summary = epoch_summary(data)
        return f"#{event.seq} epoch {text(data.get('epoch'))}/{text(data.get('epochs'))}{took}" + (
            f" {summary}" if summary else "")
    detail = data.get("model_id") or data.get("error") or ""
    status = data.get("status")
    return " ".join(part for part in (f"#{event.seq}", str(event.type), text(status) if status else "",
                                      text(detail) if detail else "") if part)


@jobs.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", "follow_", is_flag=True, help="keep printing new events until the job ends")
@click.option("--json", "as_json", is_flag=True, help="one JSON event per line (JSON Lines)")
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
        click.echo(event.model_dump_json() if as_json else event_line(event))


edit_command(jobs, "job", lambda client: client.jobs.update)


# ---- models -----------------------------------------------------------------------------------------
@cli.group()
def models() -> None:
    """List, show, edit and download trained models (by id, NAME, NAME@ALIAS or NAME/versions/N)."""


def registrations_text(info: Any) -> str:
    """``circle v2 (production), circle-b v1`` from a model's registry entries (``-`` when it has none)."""
    entries = getattr(info, "registrations", None) or []
    parts = [f"{e.name} v{e.version}" + (f" ({', '.join(e.aliases)})" if e.aliases else "") for e in entries]
    return ", ".join(parts) or MISSING


def _headline_metric(info: Any) -> str:
    """The validation metric a model is judged by: accuracy (classification) or RMSE (regression)."""
    validation = info.metrics.validation or {}
    for key in ("accuracy", "rmse", "mse"):
        if validation.get(key) is not None:
            return f"{key} {number(validation[key])}"
    return text(validation)


@models.command("list")
@click.option("--dataset", "dataset_id", help="only the models of this dataset")
@click.option("--task", type=click.Choice(["classification", "regression"]))
@name_filter
@tag_filter
@wide_option
@json_option
@click.pass_context
@handles_errors
def models_list(ctx: click.Context, dataset_id: str | None, task: str | None, name_filter: str | None,
                tag_filter: tuple[str, ...], wide: bool, as_json: bool) -> None:
    """Your tenant's models, newest first: registry entries, certified Lipschitz bound, validation metric."""
    filters = {"name": name_filter, **({"tags": list(tag_filter)} if tag_filter else {})}
    found = _client(ctx).models.list(dataset_id=dataset_id, task=task, **filters)
    if as_json:
        return print_json(found)
    rows = [[m.id, _name_of(m), registrations_text(m), m.task, m.lipschitz.certified, _headline_metric(m),
             *([tags_text(getattr(m, "tags", None)), m.job_id, m.dataset_id] if wide else []),
             timestamp(m.created_at, short=True)] for m in found.items]
    columns = ["id", "name", "registered", "task", "certified L", "validation",
               *(["tags", "job", "dataset"] if wide else []), "created"]
    table("models", columns, rows, wide=wide)


@models.command("show")
@click.argument("ref")
@wide_option
@json_option
@click.pass_context
@handles_errors
def models_show(ctx: click.Context, ref: str, wide: bool, as_json: bool) -> None:
    """A model: metrics, every certified bound beside the lower bounds, sparsity, registry entries."""
    model = _client(ctx).models.get(ref)
    if as_json:
        return print_json(model.info)
    info = model.info
    training = info.metrics.training
    rows = [["name", _name_of(info)], ["tags", tags_text(getattr(info, "tags", None))],
            ["registered", registrations_text(info)], ["task", info.task], ["job", info.job_id],
            ["dataset", info.dataset_id],
            ["certified Lipschitz bound", info.lipschitz.certified], ["certified by", info.lipschitz.certified_by],
            ["best lower bound", info.lipschitz.best_lower], ["tightness", info.lipschitz.tightness],
            *[[f"bound {k}", v] for k, v in info.lipschitz.bounds.items()],
            *[[f"not computed: {k}", v] for k, v in info.lipschitz.skipped.items()],
            *[[f"{split} {k}", v] for split in ("train", "validation")
              for k, v in (getattr(info.metrics, split) or {}).items()],
            ["epochs", info.metrics.epochs],
            *([["stop reason", training.stop_reason], ["best epoch", training.best_epoch]] if training else []),
            *[["warning", w] for w in info.metrics.warnings],
            *certified_accuracy_rows(info.certified_accuracy), ["active knots", info.sparsity.total_active_knots],
            ["parameters", info.parameter_count], ["classes", info.classes], ["features", info.feature_names],
            ["description", getattr(info, "description", None)], ["created", timestamp(info.created_at)]]
    table(f"model {info.id}", ["field", "value"], rows, wide=wide)


def certified_accuracy_rows(curve: Any) -> list[list[Any]]:
    """The certified-accuracy curve as rows: ``radius 0.02: 0.5 (local 0.5)``, one per radius, then its notes."""
    if curve is None:
        return [["certified accuracy", None]]
    local = curve.local or [None] * len(curve.radii)
    rows = [[f"certified accuracy at radius {number(radius)}",
             number(value) + (f" (with local bounds {number(extra)})" if extra is not None else "")]
            for radius, value, extra in zip(curve.radii, curve.global_, local, strict=False)]
    rows.append(["certified accuracy measured on", f"{curve.points} {curve.split} points, radii {curve.radius_rule}"])
    if curve.target_radius is not None:
        rows.append([f"certified accuracy at the target radius {number(curve.target_radius)}",
                     curve.certified_at_target])
    rows += [[label, note] for label, note in (("note", curve.local_note), ("warning", curve.warning)) if note]
    return rows


@models.command("download")
@click.argument("ref")
@click.option("--format", "format_", type=click.Choice(["zip", "onnx"]), default="zip", help="file format")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="file to write [default: lipspline-model-ID.FORMAT]")
@json_option
@click.pass_context
@handles_errors
def models_download(ctx: click.Context, ref: str, format_: str, output: Path | None, as_json: bool) -> None:
    """Download a model: zip (model.json + weights.safetensors) or onnx (the served map)."""
    model = _client(ctx).models.get(ref)
    path = model.download(output or Path(f"lipspline-model-{model.id}.{format_}"), format=format_)
    if as_json:
        return print_json({"model_id": model.id, "format": format_, "path": str(Path(path).resolve()),
                           "bytes": Path(path).stat().st_size})
    click.echo(str(path))


edit_command(models, "model", lambda client: client.models.update)


# ---- predict ----------------------------------------------------------------------------------------
def read_rows(path: Path, feature_names: list[str]) -> tuple[list[str], list[list[str]], list[list[float]]]:
    """The CSV's header, its rows as written (every column kept: a label column stays as it is) and the
    model's inputs: its feature columns by name when the header has them all, else every column."""
    with path.open(newline="") as handle:
        records = list(csv.reader(handle))
    if not records:
        raise ValueError(f"{path}: empty file (a header line, then one row per input)")
    header, body = records[0], [r for r in records[1:] if r]
    if feature_names and all(name in header for name in feature_names):
        index = [header.index(name) for name in feature_names]
    elif not feature_names or len(header) == len(feature_names):
        index = list(range(len(header)))
    else:
        missing = [name for name in feature_names if name not in header]
        raise ValueError(f"{path}: the header has no column {', '.join(missing)} (the model's features "
                         f"are {', '.join(feature_names)}) and {len(header)} columns, not "
                         f"{len(feature_names)}")
    values = []
    for number_, row in enumerate(body, start=2):
        try:
            values.append([float(row[i]) for i in index])
        except (IndexError, ValueError) as error:
            raise ValueError(f"{path}, line {number_}: not a row of numbers in the feature columns ({error})") from None
    return header, body, values


def answered_text(result: Any, ref: str) -> str:
    """``answered by circle version 2 (model 5f0c…)`` or ``answered by model 5f0c…`` (ids in full)."""
    if result.registered_name and result.version is not None:
        return f"answered by {result.registered_name} version {result.version} (model {result.model_id}) for {ref}"
    return f"answered by model {result.model_id}" + (f" for {ref}" if ref != result.model_id else "")


@cli.command("predict")
@click.argument("model_ref")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with a header; the model's feature columns are picked by name, the others kept")
@click.option("--epsilon", type=float, help="input change (l2) for output_bound: how far each output can move")
@click.option("--local-ball", type=click.FloatRange(min=0, min_open=True),
              help="also prove each radius locally inside this l2 ball (slower; adds radius_source)")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="CSV to write [default: stdout]")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON instead of CSV")
@click.pass_context
@handles_errors
def predict(ctx: click.Context, model_ref: str, input_path: Path, epsilon: float | None, local_ball: float | None,
            output: Path | None, as_json: bool) -> None:
    """Predict every row of --input with MODEL_REF (an id, NAME, NAME@ALIAS or NAME/versions/N); the input's
    columns are kept (a label column too) and certificate columns are added beside each prediction.

    Columns added: prediction, output_0…, rounding_bound, certified_radius (classifiers),
    radius_source (with --local-ball), output_bound (with --epsilon), and lipschitz_bound
    (the same for every row). Which model and version answered is printed on stderr.
    """
    model = _client(ctx).models.get(model_ref)
    header, body, rows = read_rows(input_path, model.info.feature_names)
    result = model.predict(rows, epsilon=epsilon, local_ball=local_ball)
    if as_json:
        return print_json(result.response)
    width = result.outputs.shape[1]
    columns = [*header, "prediction", *[f"output_{i}" for i in range(width)], "rounding_bound"]
    sources = result.response.radius_source
    columns += ["certified_radius"] if result.certified_radius is not None else []
    columns += ["radius_source"] if sources is not None else []
    columns += ["output_bound"] if result.output_bounds is not None else []
    columns += ["lipschitz_bound"]
    with output.open("w", newline="") if output else _stdout() as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for i, row in enumerate(body):
            line = [*row, *[""] * (len(header) - len(row)), _cell(result.predictions[i]),
                    *result.outputs[i].tolist(), result.rounding_bound[i]]
            line += [result.certified_radius[i]] if result.certified_radius is not None else []
            line += [sources[i]] if sources is not None else []
            line += [result.output_bounds[i]] if result.output_bounds is not None else []
            writer.writerow([*line, result.lipschitz_bound])
    lines(answered_text(result, model_ref), to=err)
    if output:
        lines(f"{len(rows)} predictions written to {output}", to=err)


def _cell(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


class _stdout:  # noqa: N801 - used like open()
    def __enter__(self) -> Any:
        return sys.stdout

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()


# ---- registry ---------------------------------------------------------------------------------------
@cli.group()
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
    found = _client(ctx).registry.list(name=name_filter)
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
    client = _client(ctx)
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
    created = _client(ctx).registry.create(name, description)
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
    client = _client(ctx)
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
    _client(ctx).registry.delete(name, force=force)
    if as_json:
        return print_json({"name": name, "deleted": True})
    lines(f"deleted {name}", to=err)


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
    moved = _client(ctx).registry.set_alias(name, alias, version)
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
    _client(ctx).registry.delete_alias(name, alias)
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
    events = _client(ctx).registry.alias_events(name, alias)
    if as_json:
        return print_json(events)

    def version(number_: int | None, missing: str) -> str:
        return missing if number_ is None else f"v{number_}"

    rows = [[timestamp(e.at), e.alias, version(e.from_version, "(new)"), version(e.to_version, "(removed)"), e.actor]
            for e in events.items]
    table(f"{name}: alias history", ["when", "alias", "from", "to", "by"], rows, wide=wide)


# ---- sweeps -----------------------------------------------------------------------------------------
@cli.group()
def sweeps() -> None:
    """Search a config space with many jobs: submit, follow, list, show (trials, fronts, selection), cancel."""


def read_space(ctx: click.Context, param: click.Parameter, value: str) -> dict:
    """--space: a JSON or YAML file, else the JSON itself (short spaces fit on the command line)."""
    path = Path(value)
    if path.is_file():
        space = read_config(path)
    else:
        try:
            space = json.loads(value)
        except json.JSONDecodeError as error:
            raise click.BadParameter(f"neither a file nor JSON ({error})") from None
    if not isinstance(space, dict):
        raise click.BadParameter("a mapping of config path -> values, e.g. '{\"objective.lambda\": [1e-6, 1e-3]}'")
    return space


#: the --select forms, as --help shows them
SELECT_FORMS = ("max_accuracy (the most accurate model), max_accuracy:L_MAX (the most accurate with "
                "certified_lipschitz <= L_MAX), certified_accuracy:R (the most certified accuracy at l2 radius R), "
                "knee (the knee of the accuracy vs log-bound front)")


def parse_select(text_: str) -> SelectRule:
    """A ``--select`` value as the service's ``select`` rule; ValueError for anything else.

    Why a small grammar instead of JSON: the rule has one number at most, and the same
    words as the API's ``rule`` (``certified_accuracy`` is ``max_certified_accuracy`` shortened).
    """
    rule, _, number_ = text_.strip().partition(":")
    if rule == "max_accuracy":
        return SelectMaxAccuracy(rule="max_accuracy", max_lipschitz=float(number_) if number_ else None)
    if rule in ("certified_accuracy", "max_certified_accuracy") and number_:
        return SelectMaxCertifiedAccuracy(rule="max_certified_accuracy", radius=float(number_))
    if rule == "knee" and not number_:
        return SelectKnee(rule="knee")
    raise ValueError(f"not a rule: {text_!r}")


class SelectOption(click.ParamType):
    name = "RULE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> SelectRule:
        if not isinstance(value, str):
            return value
        try:
            return parse_select(value)
        except ValueError:  # also a bound or radius that is not a positive number (pydantic's error)
            self.fail(f"{value!r} is not one of: {SELECT_FORMS} (L_MAX and R positive numbers)", param, ctx)


def _number(value: Any) -> str:
    """A table cell: floats to 4 significant digits, NaN / None ``-``."""
    return text(value)


def selection_text(info: SweepOut) -> str:
    """``selected: trial 2, model ID (registered as circle v3) by max_accuracy with certified Lipschitz <= 20``."""
    selected = info.selected
    registered = selected.registered_as
    name = f" (registered as {registered.name} v{text(registered.version)})" if registered else ""
    return (f"selected: trial {selected.trial}, model {text(selected.model_id)}{name} "
            f"by {rule_text(selected.rule)}")


def show_sweep(info: SweepOut, *, wide: bool = False) -> None:
    """The trial table (fronts and selection marked), then the progress and the selected model."""
    frame = trials_frame(info)
    paths = list(info.space)
    rows = []
    for trial, row in frame.iterrows():
        marks = [mark for flag, mark in ((row["selected"], "selected"), (row["on_lipschitz_front"], "L-front"),
                                         (row["on_certified_accuracy_front"], "CA-front")) if flag]
        rows.append([trial, *[_number(row[path]) for path in paths], row["status"], row["epochs"],
                     _number(row["score"]), _number(row["certified_lipschitz"]), row["model_id"],
                     *([row["job_id"]] if wide else []), " ".join(marks) or MISSING])
    columns = ["trial", *paths, "status", "epochs", "score", "certified L", "model", *(["job"] if wide else []),
               "front / selection"]
    title = f"sweep {info.id} ({info.strategy}, {info.status})"
    name = getattr(info, "name", None)
    table(f"{title}: {name}" if name else title, columns, rows, wide=wide)
    progress = info.progress
    lines(f"{progress.succeeded}/{progress.planned} trials succeeded, {progress.active} active, "
          f"{progress.stopped} stopped, {progress.failed} failed, {progress.cancelled} cancelled; "
          f"{progress.epochs} epochs")
    if info.selected is not None:
        lines(selection_text(info))
    elif info.status != "running":
        lines(f"nothing selected: {info.note or 'no reason recorded'}")


@sweeps.command("submit")
@click.option("--dataset", "dataset_id", required=True, help="id of the dataset every trial trains on")
@click.option("--space", required=True, callback=read_space, metavar="FILE_OR_JSON",
              help='config path -> a list of values or a range {low, high, scale: linear|log, count}: a JSON or '
                   'YAML file, or inline JSON such as \'{"objective.lambda": [1e-6, 1e-3], "spline.knots": [5, 11]}\'')
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the base TrainingConfig (YAML or JSON) every trial starts from [default: the defaults]")
@click.option("--strategy", type=click.Choice(["grid", "random", "halving"]), default="grid",
              help="grid: every combination (a range needs count); random: --max-trials draws; halving: "
                   "random draws, the weak ones stopped early")
@click.option("--max-trials", type=click.IntRange(min=1), required=True, help="most trials")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=Budget.model_fields["max_concurrent"].default,
              help="most trials queued or running at once")
@click.option("--select", "select_rule", type=SelectOption(), help=f"which model the sweep selects: {SELECT_FORMS} "
              "[default: max_accuracy]")
@click.option("--seed", type=click.IntRange(min=0), help="the random and halving draws [default: 0]")
@click.option("--register-as", help="a registered model's name: the selected model becomes its next version")
@click.option("--follow/--no-follow", "follow_", default=False,
              help="draw the trials' progress (done/running/planned, front size) until the sweep ends, then show it")
@poll_option
@click.option("--name", help="a name for the sweep")
@label_options
@json_option
@click.pass_context
@handles_errors
def sweeps_submit(ctx: click.Context, dataset_id: str, space: dict, config: Path | None, strategy: str,
                  max_trials: int, max_concurrent: int, select_rule: SelectRule | None, seed: int | None,
                  register_as: str | None, follow_: bool, poll_s: float, name: str | None, tags: tuple[str, ...],
                  description: str | None, as_json: bool) -> None:
    """Start a sweep of --space over --dataset; prints the sweep id (with --follow: its trials when it ends)."""
    labels = {k: v for k, v in _labels(name, tags, description).items() if v is not None}
    sweep = _client(ctx).sweeps.create(
        dataset_id, read_config(config) if config else None, space=space, strategy=strategy,
        budget=Budget(max_trials=max_trials, max_concurrent=max_concurrent), select=select_rule, seed=seed,
        register_as=register_as, **labels,
    )
    if not follow_:
        return print_json(sweep.info) if as_json else click.echo(sweep.id)
    lines(f"sweep {sweep.id}: {sweep.info.trials} trials", to=err)
    _follow_sweep(sweep, as_json, poll_s)


def _follow_sweep(sweep: Any, as_json: bool, poll_s: float) -> None:
    from lipspline_client.progress import SweepProgress

    planned = sweep.info.progress.planned if isinstance(sweep.info, SweepOut) else getattr(sweep.info, "trials", None)
    with SweepProgress(sweep.id, planned, console=err) as view:
        while sweep.refresh().status == "running":
            view.update(sweep.info)
            _sleep(poll_s)
        view.update(sweep.info)
    if as_json:
        print_json(sweep.info)
    else:
        click.echo(sweep.id)
        show_sweep(sweep.info)
    if sweep.status != "succeeded":
        sys.exit(1)


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


@sweeps.command("follow")
@click.argument("sweep_id")
@poll_option
@json_option
@click.pass_context
@handles_errors
def sweeps_follow(ctx: click.Context, sweep_id: str, poll_s: float, as_json: bool) -> None:
    """Draw a running sweep's progress (trials done/running/planned, front size) until it ends, then show it."""
    _follow_sweep(_client(ctx).sweeps.get(sweep_id), as_json, poll_s)


@sweeps.command("list")
@click.option("--status", type=click.Choice(["running", "succeeded", "failed", "cancelled"]))
@click.option("--dataset", "dataset_id", help="only the sweeps of this dataset")
@name_filter
@tag_filter
@wide_option
@json_option
@click.pass_context
@handles_errors
def sweeps_list(ctx: click.Context, status: str | None, dataset_id: str | None, name_filter: str | None,
                tag_filter: tuple[str, ...], wide: bool, as_json: bool) -> None:
    """Your tenant's sweeps, newest first."""
    filters = {"name": name_filter, **({"tags": list(tag_filter)} if tag_filter else {})}
    found = _client(ctx).sweeps.list(status, dataset_id=dataset_id, **filters)
    if as_json:
        return print_json(found)
    rows = [[s.id, _name_of(s), s.status, s.strategy, f"{s.progress.succeeded}/{s.progress.planned}",
             s.selected.model_id if s.selected else None, *([tags_text(getattr(s, "tags", None))] if wide else []),
             s.dataset_id, timestamp(s.created_at, short=True)] for s in found.items]
    columns = ["id", "name", "status", "strategy", "succeeded", "selected model", *(["tags"] if wide else []),
               "dataset", "created"]
    table("sweeps", columns, rows, wide=wide)


@sweeps.command("show")
@click.argument("sweep_id")
@wide_option
@json_option
@click.pass_context
@handles_errors
def sweeps_show(ctx: click.Context, sweep_id: str, wide: bool, as_json: bool) -> None:
    """A sweep's trials (params, status, score, certified bound, model; fronts and selection marked)."""
    sweep = _client(ctx).sweeps.get(sweep_id)
    if as_json:
        return print_json(sweep.info)
    show_sweep(sweep.info, wide=wide)


@sweeps.command("cancel")
@click.argument("sweep_id")
@json_option
@click.pass_context
@handles_errors
def sweeps_cancel(ctx: click.Context, sweep_id: str, as_json: bool) -> None:
    """Cancel a sweep: no more trials; queued ones at once, running ones within one epoch."""
    sweep = _client(ctx).sweeps.get(sweep_id).cancel()
    if as_json:
        return print_json(sweep.info)
    lines(f"{sweep.id}: {sweep.status}", to=err)


edit_command(sweeps, "sweep", lambda client: client.sweeps.update)


# ---- webhooks ---------------------------------------------------------------------------------------
@cli.group()
def webhooks() -> None:
    """The signing secret and the endpoints that receive every job's final event."""


@webhooks.command("secret")
@json_option
@click.pass_context
@handles_errors
def webhooks_secret(ctx: click.Context, as_json: bool) -> None:
    """Create or rotate the tenant's signing secret (printed once: store it)."""
    secret = _client(ctx).webhooks.create_secret()
    print_json(secret) if as_json else click.echo(secret.secret)


@webhooks.command("add")
@click.argument("url")
@json_option
@click.pass_context
@handles_errors
def webhooks_add(ctx: click.Context, url: str, as_json: bool) -> None:
    """Register URL for the final event of every job; prints the endpoint's id."""
    endpoint = _client(ctx).webhooks.register(url)
    if as_json:
        return print_json(endpoint)
    click.echo(endpoint.id)
    if endpoint.secret:
        lines(f"signing secret (created now, shown once): {endpoint.secret}", to=err)


@webhooks.command("list")
@wide_option
@json_option
@click.pass_context
@handles_errors
def webhooks_list(ctx: click.Context, wide: bool, as_json: bool) -> None:
    """The registered endpoints, newest first."""
    found = _client(ctx).webhooks.list()
    if as_json:
        return print_json(found)
    rows = [[e.id, e.url, timestamp(e.created_at, short=True)] for e in found.items]
    table("webhooks", ["id", "url", "created"], rows, wide=wide)


@webhooks.command("delete")
@click.argument("endpoint_id")
@json_option
@click.pass_context
@handles_errors
def webhooks_delete(ctx: click.Context, endpoint_id: str, as_json: bool) -> None:
    """Stop sending to an endpoint (its deliveries keep their history)."""
    _client(ctx).webhooks.delete(endpoint_id)
    if as_json:
        return print_json({"id": endpoint_id, "deleted": True})
    lines(f"deleted {endpoint_id}", to=err)


@webhooks.command("deliveries")
@click.argument("job_id")
@wide_option
@json_option
@click.pass_context
@handles_errors
def webhooks_deliveries(ctx: click.Context, job_id: str, wide: bool, as_json: bool) -> None:
    """Every delivery of a job's final event: endpoint, state, attempts and the last answer."""
    found = _client(ctx).webhooks.deliveries(job_id)
    if as_json:
        return print_json(found)
    rows = []
    for d in found.items:
        last = d.attempts[-1] if d.attempts else None
        answer = MISSING if last is None else (f"HTTP {last.status_code}" if last.status_code else text(last.error))
        rows.append([d.id, d.url, d.event, d.state, len(d.attempts), answer, timestamp(d.created_at, short=True)])
    table(f"deliveries of job {job_id}", ["id", "url", "event", "state", "attempts", "last answer", "created"], rows,
          wide=wide)


# ---- storage credentials ----------------------------------------------------------------------------
@cli.group()
def storage() -> None:
    """Your tenant's own keys for s3:// dataset URIs (else the service's are used)."""


def _credentials_rows(found: Any) -> list[list[Any]]:
    return [["access key id", found.s3.access_key_id_hint], ["region", text(found.s3.region)],
            ["session token", "given" if found.s3.has_session_token else "none"],
            ["updated", timestamp(found.updated_at)]]


@storage.command("set-s3")
@click.option("--access-key-id", required=True)
@click.option("--secret-access-key", prompt=True, hide_input=True, envvar="LIPSPLINE_S3_SECRET_ACCESS_KEY",
              help="[default: asked for, not echoed; or $LIPSPLINE_S3_SECRET_ACCESS_KEY]")
@click.option("--session-token", envvar="LIPSPLINE_S3_SESSION_TOKEN", help="for temporary (STS) keys")
@click.option("--region", help="[default: the service's]")
@json_option
@click.pass_context
@handles_errors
def storage_set_s3(ctx: click.Context, access_key_id: str, secret_access_key: str, session_token: str | None,
                   region: str | None, as_json: bool) -> None:
    """Store (or replace) your S3 keys: sealed by the service, never shown again."""
    stored = _client(ctx).storage.set_s3_credentials(access_key_id, secret_access_key, session_token=session_token,
                                                      region=region)
    if as_json:
        return print_json(stored)
    table("storage credentials", ["field", "value"], _credentials_rows(stored), wide=False)


@storage.command("show")
@json_option
@click.pass_context
@handles_errors
def storage_show(ctx: click.Context, as_json: bool) -> None:
    """Which S3 keys are stored (the key id's last four characters), never the keys."""
    found = _client(ctx).storage.credentials()
    if as_json:
        return print_json(found)
    table("storage credentials", ["field", "value"], _credentials_rows(found), wide=False)


@storage.command("delete")
@json_option
@click.pass_context
@handles_errors
def storage_delete(ctx: click.Context, as_json: bool) -> None:
    """Forget your S3 keys: your URIs are read with the service's credentials again."""
    _client(ctx).storage.delete_credentials()
    if as_json:
        return print_json({"deleted": True})
    lines("deleted the tenant's storage credentials", to=err)


def main(argv: list[str]) -> int:
    try:
        cli.main(args=argv, prog_name="lipspline", standalone_mode=True)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


__all__ = ["cli", "main", "parse_select", "read_rows", "show_sweep", "table"]
