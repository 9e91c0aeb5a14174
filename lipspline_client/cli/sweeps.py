"""``lipspline sweeps``: search a config space with many jobs, follow it, and read its fronts and selection.

A group of its own because a sweep has its own vocabulary on the command line: ``--space`` (a file
or inline JSON), the ``--select`` rule's small grammar (``parse_select``) and the trial table with
its fronts and selection marked (``show_sweep``), which ``submit --follow``, ``follow`` and ``show`` share.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from api_schemas.sweeps import Budget, SelectKnee, SelectMaxAccuracy, SelectMaxCertifiedAccuracy, SweepOut
from lipspline_client.cli.edit import edit_command
from lipspline_client.cli.options import (
    client_of,
    dataset_filter,
    given_labels,
    json_option,
    label_filters,
    label_options,
    list_options,
    poll_option,
    read_config,
    wide_option,
)
from lipspline_client.cli.output import err, handles_errors, lines, name_of, print_json, table
from lipspline_client.formatting import MISSING, rule_text, tags_text, text, timestamp
from lipspline_client.resources import SelectRule, trials_frame


@click.group()
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
    sweep = client_of(ctx).sweeps.create(
        dataset_id, read_config(config) if config else None, space=space, strategy=strategy,
        budget=Budget(max_trials=max_trials, max_concurrent=max_concurrent), select=select_rule, seed=seed,
        register_as=register_as, **given_labels(name, tags, description),
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
    _follow_sweep(client_of(ctx).sweeps.get(sweep_id), as_json, poll_s)


@sweeps.command("list")
@click.option("--status", type=click.Choice(["running", "succeeded", "failed", "cancelled"]))
@dataset_filter("sweeps")
@list_options
@click.pass_context
@handles_errors
def sweeps_list(ctx: click.Context, status: str | None, dataset_id: str | None, name_filter: str | None,
                tag_filter: tuple[str, ...], wide: bool, as_json: bool) -> None:
    """Your tenant's sweeps, newest first."""
    found = client_of(ctx).sweeps.list(status, dataset_id=dataset_id, **label_filters(name_filter, tag_filter))
    if as_json:
        return print_json(found)
    rows = [[s.id, name_of(s), s.status, s.strategy, f"{s.progress.succeeded}/{s.progress.planned}",
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
    sweep = client_of(ctx).sweeps.get(sweep_id)
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
    sweep = client_of(ctx).sweeps.get(sweep_id).cancel()
    if as_json:
        return print_json(sweep.info)
    lines(f"{sweep.id}: {sweep.status}", to=err)


edit_command(sweeps, "sweep", lambda client: client.sweeps.update)
