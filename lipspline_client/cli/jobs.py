"""``lipspline jobs``: submit a training run, follow it live, read its events, list, show, edit and cancel it.

A group of its own because a job is the one resource watched while it runs: its live progress
(``--follow``), its event log (``logs``) and how its end is reported (exit 1 unless it succeeded)
live here beside the commands that use them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from rich.text import Text

from lipspline_client.cli.edit import edit_command
from lipspline_client.cli.options import (
    client_of,
    dataset_filter,
    given_labels,
    json_option,
    label_filters,
    label_options,
    list_options,
    read_config,
    wide_option,
)
from lipspline_client.cli.output import err, handles_errors, lines, name_of, print_json, table
from lipspline_client.formatting import field_rows, tags_text, text, timestamp
from lipspline_client.progress import JobProgress, epoch_summary


@click.group()
def jobs() -> None:
    """Submit, follow, list, show, edit and cancel training jobs."""


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
    job = client_of(ctx).jobs.submit(dataset_id, document, notify_url=notify_url, register_as=register_as,
                                     **given_labels(name, tags, description))
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
@dataset_filter("jobs")
@list_options
@click.pass_context
@handles_errors
def jobs_list(ctx: click.Context, status: str | None, dataset_id: str | None, name_filter: str | None,
              tag_filter: tuple[str, ...], wide: bool, as_json: bool) -> None:
    """Your tenant's jobs, newest first."""
    found = client_of(ctx).jobs.list(status, dataset_id=dataset_id, **label_filters(name_filter, tag_filter))
    if as_json:
        return print_json(found)
    rows = [[j.id, name_of(j), j.status, _epochs(j.progress), j.model_id,
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
    job = client_of(ctx).jobs.get(job_id)
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
    job = client_of(ctx).jobs.get(job_id).cancel()
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
    job = client_of(ctx).jobs.get(job_id)
    if not follow_ and job.status not in ("succeeded", "failed", "cancelled"):
        events = job.events_so_far()
    else:
        events = job.events()
    for event in events:
        click.echo(event.model_dump_json() if as_json else event_line(event))


edit_command(jobs, "job", lambda client: client.jobs.update)
