"""The user commands of ``lipspline``: datasets, jobs, models, predict, sweeps, webhooks, on the SDK.

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

from api_schemas.sweeps import Budget, SelectKnee, SelectMaxAccuracy, SelectMaxCertifiedAccuracy, SweepOut
from lipspline.client import Client, LipSplineError
from lipspline.client.progress import JobProgress, epoch_summary
from lipspline.client.resources import SelectRule, trials_frame
from lipspline.client.transport import DEFAULT_URL

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
    """A mapping (a TrainingConfig, a sweep's space) from a YAML or JSON file."""
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


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
              help="train for certified accuracy at this l2 radius (sets robustness.target_radius)")  # fmt: skip
@click.option("--follow/--no-follow", "follow_", default=False, help="draw live progress until the job ends")
@click.option("--notify-url", help="http(s) URL that receives the job's final event (signed webhook)")
@json_option
@click.pass_context
@handles_errors
def jobs_submit(ctx: click.Context, config: Path | None, dataset_id: str, target_radius: float | None,
                follow_: bool, notify_url: str | None, as_json: bool) -> None:  # fmt: skip
    """Train on a dataset with CONFIG (YAML or JSON TrainingConfig; default: every default); prints the job id.

    ``--target-radius R`` alone asks for a model trained for certified accuracy at radius R.
    """
    document = read_config(config) if config is not None else {}
    if target_radius is not None:
        document = {**document, "robustness": {**document.get("robustness", {}), "target_radius": target_radius}}
    job = _client(ctx).jobs.submit(dataset_id, document, notify_url=notify_url)
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
    rows = [[j.id, j.status, f"{j.progress.epoch}/{j.progress.epochs or '?'}", j.model_id or "",
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
            *[[f"{split} {k}", v] for split in ("train", "validation")
              for k, v in getattr(info.metrics, split).items()],
            ["epochs", info.metrics.epochs],
            *[["warning", w] for w in info.metrics.warnings],
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
@click.option("--local-ball", type=click.FloatRange(min=0, min_open=True),
              help="also prove each radius locally inside this l2 ball (slower; adds radius_source)")  # fmt: skip
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="CSV to write [default: stdout]")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON instead of CSV")
@click.pass_context
@handles_errors
def predict(ctx: click.Context, model_ref: str, input_path: Path, epsilon: float | None, local_ball: float | None,
            output: Path | None, as_json: bool) -> None:  # fmt: skip
    """Predict every row of --input; certificate columns beside each prediction.

    Columns added: prediction, output_0…, rounding_bound, certified_radius (classifiers),
    radius_source (with --local-ball), output_bound (with --epsilon), and lipschitz_bound
    (the same for every row).
    """
    model = _client(ctx).models.get(model_ref)
    header, rows = read_rows(input_path, model.info.feature_names)
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
        for i, row in enumerate(rows):
            line = [*_original(row, header), result.predictions[i], *result.outputs[i].tolist(),
                    result.rounding_bound[i]]  # fmt: skip
            line += [result.certified_radius[i]] if result.certified_radius is not None else []
            line += [sources[i]] if sources is not None else []
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


# ---- sweeps -----------------------------------------------------------------------------------------
@cli.group()
def sweeps() -> None:
    """Search a config space with many jobs: submit, list, show (trials, fronts, selection), cancel."""


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
                "knee (the knee of the accuracy vs log-bound front)")  # fmt: skip


def parse_select(text: str) -> SelectRule:
    """A ``--select`` value as the service's ``select`` rule; ValueError for anything else.

    Why a small grammar instead of JSON: the rule has one number at most, and the same
    words as the API's ``rule`` (``certified_accuracy`` is ``max_certified_accuracy`` shortened).
    """
    rule, _, number = text.strip().partition(":")
    if rule == "max_accuracy":
        return SelectMaxAccuracy(rule="max_accuracy", max_lipschitz=float(number) if number else None)
    if rule in ("certified_accuracy", "max_certified_accuracy") and number:
        return SelectMaxCertifiedAccuracy(rule="max_certified_accuracy", radius=float(number))
    if rule == "knee" and not number:
        return SelectKnee(rule="knee")
    raise ValueError(f"not a rule: {text!r}")


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
    """A table cell: floats to 4 significant digits, NaN / None empty."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def show_sweep(info: SweepOut) -> None:
    """The trial table (fronts and selection marked), then the progress and the selected model."""
    frame = trials_frame(info)
    paths = list(info.space)
    rows = []
    for trial, row in frame.iterrows():
        marks = [mark for flag, mark in ((row["selected"], "selected"), (row["on_lipschitz_front"], "L-front"),
                                         (row["on_certified_accuracy_front"], "CA-front")) if flag]  # fmt: skip
        rows.append([trial, *[_number(row[path]) for path in paths], row["status"], row["epochs"],
                     _number(row["score"]), _number(row["certified_lipschitz"]), row["model_id"] or "",
                     " ".join(marks)])  # fmt: skip
    columns = ["trial", *paths, "status", "epochs", "score", "certified L", "model", "front / selection"]
    table(f"sweep {info.id} ({info.strategy}, {info.status})", columns, rows)
    progress = info.progress
    out.print(f"{progress.succeeded}/{progress.planned} trials succeeded, {progress.active} active, "
              f"{progress.stopped} stopped, {progress.failed} failed, {progress.cancelled} cancelled; "
              f"{progress.epochs} epochs", highlight=False)  # fmt: skip
    if info.selected is not None:
        registered = info.selected.registered_as
        name = f" (registered as {registered.name} v{registered.version})" if registered else ""
        out.print(f"selected: trial {info.selected.trial}, model {info.selected.model_id}{name} "
                  f"by {info.selected.rule.model_dump(exclude_none=True)}", highlight=False)  # fmt: skip
    elif info.status != "running":
        out.print(f"nothing selected: {info.note or 'no reason recorded'}", highlight=False)


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
@click.option("--follow/--no-follow", "follow_", default=False, help="wait until the sweep ends, then show it")
@json_option
@click.pass_context
@handles_errors
def sweeps_submit(ctx: click.Context, dataset_id: str, space: dict, config: Path | None, strategy: str,
                  max_trials: int, max_concurrent: int, select_rule: SelectRule | None, seed: int | None,
                  register_as: str | None, follow_: bool, as_json: bool) -> None:  # fmt: skip
    """Start a sweep of --space over --dataset; prints the sweep id (with --follow: its trials when it ends)."""
    sweep = _client(ctx).sweeps.create(
        dataset_id, read_config(config) if config else None, space=space, strategy=strategy,
        budget=Budget(max_trials=max_trials, max_concurrent=max_concurrent), select=select_rule, seed=seed,
        register_as=register_as,
    )  # fmt: skip
    if not follow_:
        return print_json(sweep.info) if as_json else click.echo(sweep.id)
    err.print(f"sweep {sweep.id}: {sweep.info.trials} trials")
    with err.status(f"sweep {sweep.id} running"):
        sweep.wait()
    if as_json:
        print_json(sweep.info)
    else:
        click.echo(sweep.id)
        show_sweep(sweep.info)
    if sweep.status != "succeeded":
        sys.exit(1)


@sweeps.command("list")
@click.option("--status", type=click.Choice(["running", "succeeded", "failed", "cancelled"]))
@json_option
@click.pass_context
@handles_errors
def sweeps_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """Your tenant's sweeps, newest first."""
    found = _client(ctx).sweeps.list(status)
    if as_json:
        return print_json(found)
    rows = [[s.id, s.status, s.strategy, f"{s.progress.succeeded}/{s.progress.planned}",
             s.selected.model_id if s.selected else "", s.dataset_id, s.created_at.isoformat(timespec="seconds")]
            for s in found.items]  # fmt: skip
    table("sweeps", ["id", "status", "strategy", "succeeded", "selected model", "dataset", "created"], rows)


@sweeps.command("show")
@click.argument("sweep_id")
@json_option
@click.pass_context
@handles_errors
def sweeps_show(ctx: click.Context, sweep_id: str, as_json: bool) -> None:
    """A sweep's trials (params, status, score, certified bound, model; fronts and selection marked)."""
    sweep = _client(ctx).sweeps.get(sweep_id)
    if as_json:
        return print_json(sweep.info)
    show_sweep(sweep.info)


@sweeps.command("cancel")
@click.argument("sweep_id")
@click.pass_context
@handles_errors
def sweeps_cancel(ctx: click.Context, sweep_id: str) -> None:
    """Cancel a sweep: no more trials; queued ones at once, running ones within one epoch."""
    sweep = _client(ctx).sweeps.get(sweep_id).cancel()
    err.print(f"{sweep.id}: {sweep.status}")


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
