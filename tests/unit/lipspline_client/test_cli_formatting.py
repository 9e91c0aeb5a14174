"""The CLI's human output: readable values (no Python repr), whole ids in tables, progress lines that
keep the bar, ``k/N``, the loss and the ETA at 80 columns and turn compact below, the predict CSV that
keeps every input column, and the SDK's model references and "which model answered"."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from rich.console import Console

from api_schemas.http import JobEvent
from api_schemas.sweeps import SweepOut
from lipspline_client.cli import read_rows, selection_text, table
from lipspline_client.formatting import field_rows, rule_text, text, timestamp
from lipspline_client.progress import JobProgress, SweepProgress
from lipspline_client.resources import answered_by, model_path, registry_path

ID = "5f0c6b2e9a4d4c1f8e7b6a5d4c3b2a19"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        (float("nan"), "-"),
        (True, "yes"),
        (3, "3"),
        (0.123456789, "0.1235"),
        ({"loss": 0.31, "accuracy": 0.9}, "loss 0.31, accuracy 0.9"),
        ({}, "-"),
        ([], "-"),
        (["a", "b"], "a, b"),
        ({"global": [0.5, 0.25], "note": None}, "global (0.5, 0.25), note -"),
        ({"layer": {"neurons": 4, "knots": 7}}, "layer (neurons 4, knots 7)"),
    ],
)
def test_text_reads_every_value_without_a_repr(value: object, shown: str) -> None:
    assert text(value) == shown


def test_field_rows_flatten_nested_records_with_dotted_names_and_readable_times() -> None:
    record = {"id": ID, "progress": {"epoch": 3, "losses": {"total": 0.5}, "registered_as": None},
              "warnings": [], "created_at": "2026-12-06T06:15:12.5Z", "layers": [{"n": 1}, {"n": 2}]}
    rows = dict(field_rows(record))
    assert rows == {"id": ID, "progress.epoch": "3", "progress.losses.total": "0.5", "progress.registered_as": "-",
                    "warnings": "-", "created_at": "2026-12-06 06:15:12 UTC", "layers.0": "n 1",
                    "layers.1": "n 2"}
    assert not any("{" in value or "None" in value for value in rows.values())


def test_timestamps_in_full_and_short() -> None:
    moment = datetime(2026, 12, 6, 6, 15, 12, 999, tzinfo=UTC)
    assert timestamp(moment) == "2026-12-06 06:15:12 UTC"
    assert timestamp(moment, short=True) == "2026-12-06 06:15"
    assert timestamp(None) == "-"


def test_a_sweeps_selection_line_names_its_rule_in_words() -> None:
    assert rule_text({"rule": "max_accuracy", "max_lipschitz": 20.0}) == (
        "max_accuracy with certified Lipschitz <= 20")
    assert rule_text({"rule": "max_accuracy", "max_lipschitz": None}) == "max_accuracy"
    assert rule_text({"rule": "max_certified_accuracy", "radius": 0.05}) == "max_certified_accuracy at l2 radius 0.05"
    sweep = _sweep(selected={"trial": 1, "model_id": ID, "rule": {"rule": "max_accuracy", "max_lipschitz": 20},
                             "registered_as": {"name": "circle", "version": 3}})
    assert selection_text(sweep) == (f"selected: trial 1, model {ID} (registered as circle v3) by max_accuracy "
                                     "with certified Lipschitz <= 20")


def _table_text(width: int, *args: object, **kwargs: object) -> str:
    runner = CliRunner(env={"COLUMNS": str(width)})
    with runner.isolation() as (stdout, *_streams):
        table(*args, **kwargs)
        return stdout.getvalue().decode()


@pytest.mark.parametrize("width", [60, 80, 200])
def test_tables_never_cut_an_id_whatever_the_width(width: int) -> None:
    rows = [[ID, "a long free-text name " * 6, "succeeded", "4/4", ID[::-1], "2026-12-06 06:23"]]
    shown = _table_text(width, "jobs", ["id", "name", "status", "epoch", "model", "created"], rows)
    assert ID in shown and ID[::-1] in shown and "succeeded" in shown and "…" not in shown
    if width >= 200:
        assert max(len(line.rstrip()) for line in shown.splitlines()) <= width
    wide = _table_text(width, "jobs", ["id", "name"], [[ID, "a long free-text name " * 6]], wide=True)
    assert ("a long free-text name " * 6).strip() in wide  # --wide: nothing wrapped


def test_a_table_cell_is_text_never_markup_nor_a_repr() -> None:
    shown = _table_text(120, "t", ["field", "value"], [["name", "[bold]x[/bold]"], ["metrics", {"loss": 0.5}],
                                                        ["error", None]])
    assert "[bold]x[/bold]" in shown and "loss 0.5" in shown and "None" not in shown and "{'" not in shown


def _render(view: JobProgress | SweepProgress, width: int) -> str:
    console = view.console
    console.print(view.progress.get_renderable())
    return console.file.getvalue()


def _console(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, color_system=None)


EPOCH = JobEvent(seq=13, type="epoch", job_id=ID, data={
    "epoch": 12, "epochs": 40, "losses": {"data": 0.3, "bv2": 0.002, "total": 0.3123},
    "train_metrics": {"accuracy": 0.91, "loss": 0.3}, "validation_metrics": {"accuracy": 0.9}})


def test_the_job_progress_keeps_bar_count_loss_and_eta_at_80_columns() -> None:
    view = JobProgress(ID, 40, console=_console(80))
    view.update(EPOCH)
    line = _render(view, 80).rstrip("\n")
    assert "\n" not in line and len(line) <= 80
    assert "━" in line and "12/40 epochs" in line and "loss 0.3123" in line and "ETA " in line
    assert "running" in line


@pytest.mark.parametrize("width", [80, 60])
def test_a_job_that_ended_early_shows_no_time_left(width: int) -> None:
    view = JobProgress(ID, 40, console=_console(width))
    view.update(EPOCH)
    view.update(JobEvent(seq=14, type="final", job_id=ID, data={"status": "succeeded"}))
    line = _render(view, width)
    assert "succeeded" in line and "12/40" in line and "ETA" not in line


def test_the_job_progress_is_compact_below_80_columns() -> None:
    view = JobProgress(ID, 40, console=_console(60))
    view.update(EPOCH)
    line = _render(view, 60).rstrip("\n")
    assert "\n" not in line and len(line) <= 60
    assert "━" not in line and "12/40" in line and "loss 0.3123" in line and "ETA " in line


def test_the_job_progress_shows_the_metrics_when_there_is_room() -> None:
    view = JobProgress(ID, 40, console=_console(140))
    view.update(EPOCH)
    assert "val accuracy 0.9" in _render(view, 140)


def _sweep(**members: object) -> SweepOut:
    base = {"id": ID, "status": "running", "dataset_id": ID, "strategy": "grid", "budget": {"max_trials": 6},
            "space": {"objective.lambda": [1e-6, 1e-3]}, "select": {"rule": "max_accuracy"},
            "progress": {"planned": 6, "launched": 4, "active": 2, "succeeded": 2, "stopped": 0, "failed": 0,
                         "cancelled": 0, "epochs": 40},
            "trials": [], "front": {"lipschitz": [{"trial": 0, "model_id": ID, "score": 0.9},
                                                 {"trial": 1, "model_id": ID, "score": 0.95}],
                                    "certified_accuracy": []},
            "created_at": "2026-12-06T06:00:00Z", "updated_at": "2026-12-06T06:01:00Z"}
    return SweepOut.model_validate({**base, **members})


@pytest.mark.parametrize("width", [80, 60])
def test_the_sweep_progress_counts_trials_and_the_front(width: int) -> None:
    view = SweepProgress(ID, 6, console=_console(width))
    view.update(_sweep())
    line = _render(view, width).rstrip("\n")
    assert "\n" not in line and len(line) <= width and "2/6" in line
    if width >= 80:
        assert "━" in line and "2/6 trials done" in line and "2 running, front 2" in line
    else:
        assert "2 run, front 2" in line


def test_predict_reads_the_features_by_name_and_keeps_every_column(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("x1,inside,x2\n0.5,1,0.25\n\n1.5,0,2\n")
    header, body, values = read_rows(path, ["x1", "x2"])
    assert header == ["x1", "inside", "x2"]
    assert body == [["0.5", "1", "0.25"], ["1.5", "0", "2"]]
    assert values == [[0.5, 0.25], [1.5, 2.0]]
    # no header names in common, as many columns as features: every column, in order
    path.write_text("a,b\n1,2\n")
    assert read_rows(path, ["x1", "x2"])[2] == [[1.0, 2.0]]


def test_predict_refuses_a_csv_it_cannot_map_with_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="no column x1, x2"):
        read_rows(path, ["x1", "x2"])
    path.write_text("x1,x2\n1,oops\n")
    with pytest.raises(ValueError, match="line 2"):
        read_rows(path, ["x1", "x2"])


@pytest.mark.parametrize(
    ("ref", "path"),
    [
        (ID, f"/v1/models/{ID}"),
        ("circle", "/v1/models/circle"),
        ("circle@production", "/v1/models/circle%40production"),
        ("circle/versions/2", "/v1/models/circle%2Fversions%2F2"),
    ],
)
def test_a_model_reference_is_one_path_segment(ref: str, path: str) -> None:
    assert model_path(ref) == path
    assert httpx.URL("http://h" + path).path == "/v1/models/" + ref  # what the service decodes


def test_registry_paths_quote_each_segment() -> None:
    assert registry_path("circle", "aliases", "prod") == "/v1/registered-models/circle/aliases/prod"
    assert registry_path("circle", "versions", 2) == "/v1/registered-models/circle/versions/2"


def test_which_model_answered_from_the_body_else_the_headers_else_nothing() -> None:
    body = {"predictions": [1], "model_id": ID, "registered_name": "circle", "version": 2}
    assert answered_by(httpx.Response(200, json=body)) == {"model_id": ID, "registered_name": "circle", "version": 2}
    headers = {"X-LipSpline-Model-Id": ID, "X-LipSpline-Model-Name": "circle", "X-LipSpline-Model-Version": "3"}
    from_headers = answered_by(httpx.Response(200, content=json.dumps({"predictions": [1]}), headers=headers))
    assert from_headers == {"model_id": ID, "registered_name": "circle", "version": 3}
    assert answered_by(httpx.Response(200, json={"predictions": [1]})) == {
        "model_id": None, "registered_name": None, "version": None}


README_SPACE = {"objective.lambda": {"low": 1e-6, "high": 1e-1, "scale": "log"}, "spline.knots": [5, 11, 21]}


def test_the_sdk_refuses_an_unbounded_grid_before_sending_and_says_how_to_fix_it() -> None:
    from lipspline_client.resources import sweep_request

    budget = {"max_trials": 12, "max_concurrent": 3}
    with pytest.raises(ValueError, match="objective.lambda is a range without a count.*strategy='random'"):
        sweep_request(ID, {"training": {"epochs": 30}}, README_SPACE, None, budget)
    # the two fixes: random draws, or a count that makes the grid 4 x 3 = 12 points
    assert sweep_request(ID, None, README_SPACE, "random", budget).json["strategy"] == "random"
    counted = {**README_SPACE, "objective.lambda": {**README_SPACE["objective.lambda"], "count": 4}}
    assert sweep_request(ID, None, counted, None, budget).json["space"]["objective.lambda"]["count"] == 4
