"""``lipspline models`` and ``lipspline predict``: read, download and use the models training produced.

``predict`` is a top-level command (``lipspline predict REF``) but lives here: it is a model put to
use, through the same SDK model handle and the same model references (an id, NAME, NAME@ALIAS or
NAME/versions/N) as ``models show`` and ``models download``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import click

from lipspline_client.cli.edit import edit_command
from lipspline_client.cli.options import (
    client_of,
    dataset_filter,
    json_option,
    label_filters,
    list_options,
    wide_option,
)
from lipspline_client.cli.output import err, handles_errors, lines, name_of, print_json, table
from lipspline_client.formatting import MISSING, number, tags_text, text, timestamp


@click.group()
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
@dataset_filter("models")
@click.option("--task", type=click.Choice(["classification", "regression"]))
@list_options
@click.pass_context
@handles_errors
def models_list(ctx: click.Context, dataset_id: str | None, task: str | None, name_filter: str | None,
                tag_filter: tuple[str, ...], wide: bool, as_json: bool) -> None:
    """Your tenant's models, newest first: registry entries, certified Lipschitz bound, validation metric."""
    found = client_of(ctx).models.list(dataset_id=dataset_id, task=task, **label_filters(name_filter, tag_filter))
    if as_json:
        return print_json(found)
    rows = [[m.id, name_of(m), registrations_text(m), m.task, m.lipschitz.certified, _headline_metric(m),
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
    model = client_of(ctx).models.get(ref)
    if as_json:
        return print_json(model.info)
    info = model.info
    training = info.metrics.training
    rows = [["name", name_of(info)], ["tags", tags_text(getattr(info, "tags", None))],
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
    model = client_of(ctx).models.get(ref)
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


@click.command("predict")
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
    model = client_of(ctx).models.get(model_ref)
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
