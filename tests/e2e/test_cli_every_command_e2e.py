"""Every ``lipspline`` client command, in its human form and its ``--json`` form, against the session's
live embedded deployment (``tests/e2e/conftest.py``), on real data: a CSV uploaded, jobs trained,
models registered under a name with aliases, sweeps run to the end and cancelled, webhooks added.

Each run must exit 0 without a traceback; a human form must print no Python repr (``{'``, ``['``,
``None``); a ``--json`` form must print valid JSON (``jobs logs --json``: one JSON object per line).
The commands are enumerated from click's command tree, so a command added to the CLI without a run
here fails :func:`test_every_cli_command_in_both_forms` until it is added.

The commands run in-process through click's ``CliRunner`` (the same ``cli`` object the ``lipspline``
executable runs, against the live server over HTTP): a subprocess per command would cost a Python
start-up each, about 80 times; ``tests/e2e/test_sdk_cli_e2e.py`` runs the executable itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from lipspline.data import make_circle
from lipspline_client.cli import cli
from tests.support.processes import Deployment

pytestmark = pytest.mark.e2e

#: what a Python repr leaves in text: a dict's or a list's opening, a bare None
REPRS = re.compile(r"\{'|\['|\bNone\b|Traceback")
SMALL = {"architecture": {"hidden": [4]}, "training": {"epochs": 4, "batch_size": 32, "seed": 0}, "device": "cpu"}
#: trials and jobs that cannot end before they are cancelled, even on an idle machine
LONG = {**SMALL, "training": {"epochs": 5000, "batch_size": 4, "seed": 0}}
#: a public address (no name to resolve): the service accepts it as a webhook target
WEBHOOK_URL = "http://93.184.215.14/lipspline-hook"


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every runnable command under ``group``, as its words (``("registry", "alias", "set")``)."""
    paths: set[tuple[str, ...]] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths |= command_paths(command, (*prefix, name))
        else:
            paths.add((*prefix, name))
    return paths


class Cli:
    """Runs commands, checks each run's output for its form, and records which (command, form) ran."""

    def __init__(self, deployment: Deployment, workdir: Path) -> None:
        self.env = {"LIPSPLINE_URL": deployment.url, "LIPSPLINE_API_KEY": deployment.api_key, "COLUMNS": "80"}
        self.workdir, self.ran = workdir, set()

    def _run(self, args: list[str]) -> Result:
        runner = CliRunner(env=self.env)
        with _cwd(self.workdir):
            result = runner.invoke(cli, args, catch_exceptions=True)
        shown = f"lipspline {' '.join(args)}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{shown}\ncrashed: {result.exception!r}") from result.exception
        assert result.exit_code == 0, shown
        assert "Traceback" not in result.output, shown
        return result

    def _path(self, args: list[str]) -> tuple[str, ...]:
        words, group = [], cli
        for word in args:
            command = group.commands.get(word) if isinstance(group, click.Group) else None
            if command is None:
                break
            words.append(word)
            group = command
        return tuple(words)

    def human(self, *args: str) -> Result:
        result = self._run(list(args))
        for name, output in (("stdout", result.stdout), ("stderr", result.stderr)):
            found = REPRS.search(output)
            assert found is None, f"lipspline {' '.join(args)}: a Python repr in the {name}:\n{output}"
        self.ran.add((self._path(list(args)), "human"))
        return result

    def json(self, *args: str) -> object:
        result = self._run([*args, "--json"])
        self.ran.add((self._path(list(args)), "json"))
        text = result.stdout.strip()
        if args[:2] == ("jobs", "logs"):
            return [json.loads(line) for line in text.splitlines()]
        return json.loads(text)


class _cwd:  # noqa: N801 - used like contextlib.chdir (a test runs in its own directory)
    def __init__(self, path: Path) -> None:
        self.path, self.before = path, Path.cwd()

    def __enter__(self) -> None:
        import os

        os.chdir(self.path)

    def __exit__(self, *exc: object) -> None:
        import os

        os.chdir(self.before)


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    data = make_circle(240, seed=11)
    rows = ["x1,x2,inside", *[f"{a},{b},{int(c)}" for (a, b), c in zip(data.X.tolist(), data.y.tolist(), strict=True)]]
    (tmp_path / "circle.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "small.json").write_text(json.dumps(SMALL))
    (tmp_path / "long.json").write_text(json.dumps(LONG))
    # the label column in the middle: it must come out as it went in, beside the predictions
    (tmp_path / "rows.csv").write_text("x1,inside,x2\n0.0,1,0.0\n0.9,0,0.9\n")
    # Parquet objects to register by reference (the shared deployment lists the temporary directory)
    for part in range(2):
        half = slice(part * 120, (part + 1) * 120)
        columns = {"x1": data.X[half, 0], "x2": data.X[half, 1], "inside": data.y[half].astype(int)}
        pq.write_table(pa.table(columns), tmp_path / f"rows-{part}.parquet")
    yield tmp_path


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)  # the session's shared embedded deployment
def test_every_cli_command_in_both_forms(deployment: Deployment, workdir: Path) -> None:
    run = Cli(deployment, workdir)

    # ---- datasets
    first = run.human("datasets", "upload", "circle.csv", "--target", "inside", "--name", "cli-circle", "--tag",
                      "cli-e2e", "--description", "the circle, from the CLI test").stdout.strip()
    second = run.json("datasets", "upload", "circle.csv", "--target", "inside", "--name", "cli-circle-2")["id"]
    listed = run.human("datasets", "list", "--tag", "cli-e2e").stdout
    assert first in listed and second not in listed  # full ids, filtered by tag
    assert second in {d["id"] for d in run.json("datasets", "list", "--name", "cli-circle-2")["items"]}
    assert "x1, x2" in run.human("datasets", "show", first, "--wide").stdout
    assert run.json("datasets", "show", first)["n_samples"] == 240
    registered = run.human("datasets", "register", f"file://{workdir}/rows-*.parquet", "--target", "inside",
                           "--name", "cli-by-reference").stdout.strip()
    assert run.json("datasets", "show", registered)["uri"] == f"file://{workdir}/rows-*.parquet"
    assert run.json("datasets", "register", f"file://{workdir}/rows-0.parquet", "--target", "inside",
                    "--feature", "x2")["n_features"] == 1
    assert "tags cli-e2e, extra" in run.human("datasets", "edit", first, "--add-tag", "extra").stdout
    assert run.json("datasets", "edit", second, "--tag", "cli-e2e", "--tag", "two")["tags"] == ["cli-e2e", "two"]

    # ---- jobs: two trained models, two jobs cancelled
    job = run.human("jobs", "submit", "small.json", "--dataset", first, "--name", "cli job", "--tag", "cli-e2e",
                    "--follow").stdout.strip()
    other = run.json("jobs", "submit", "small.json", "--dataset", first, "--follow")
    assert other["status"] == "succeeded"
    table = run.human("jobs", "list", "--tag", "cli-e2e").stdout
    assert job in table and "cli job" in table and "4/4" in table
    assert run.human("jobs", "list", "--wide").stdout.count(job) == 1
    assert job in {j["id"] for j in run.json("jobs", "list", "--status", "succeeded")["items"]}
    shown = run.human("jobs", "show", job).stdout
    assert "progress.validation_metrics.accuracy" in shown and "config." not in shown
    info = run.json("jobs", "show", job)
    model, other_model = info["model_id"], other["model_id"]
    assert sum(" epoch " in line for line in run.human("jobs", "logs", job).stdout.splitlines()) == 4
    assert run.json("jobs", "logs", job)[-1]["type"] == "final"
    assert "name renamed job" in run.human("jobs", "edit", job, "--name", "renamed job").stdout
    assert run.json("jobs", "edit", job, "--add-tag", "more")["tags"] == ["cli-e2e", "more"]
    queued = run.human("jobs", "submit", "long.json", "--dataset", first).stdout.strip()
    run.human("jobs", "cancel", queued)
    queued_json = run.json("jobs", "submit", "long.json", "--dataset", first)["id"]
    assert run.json("jobs", "cancel", queued_json)["status"] in ("cancelled", "running")

    # ---- models
    listed = run.human("models", "list").stdout
    assert model in listed and other_model in listed
    assert model in {m["id"] for m in run.json("models", "list", "--dataset", first)["items"]}
    assert "certified Lipschitz bound" in run.human("models", "show", model, "--wide").stdout
    assert run.json("models", "show", model)["id"] == model
    assert (workdir / run.human("models", "download", model, "-o", "m.zip").stdout.strip()).stat().st_size > 0
    assert run.json("models", "download", model, "--format", "onnx", "-o", "m.onnx")["bytes"] > 0
    assert "name cli model" in run.human("models", "edit", model, "--name", "cli model", "--tag", "cli-e2e").stdout
    assert run.json("models", "edit", other_model, "--description", "the second")["description"] == "the second"

    # ---- registry: a name with two versions and aliases moved between them
    assert "created cli-circle-reg" in run.human("registry", "create", "cli-circle-reg", "--description", "d").stdout
    assert run.json("registry", "create", "cli-scratch")["latest_version"] is None
    registered = run.human("registry", "register", "cli-circle-reg", model, "--alias", "production").stdout
    assert f"cli-circle-reg version 1: model {model}" in registered
    assert run.json("registry", "register", "cli-circle-reg", other_model, "--alias", "staging")["version"] == 2
    assert "cli-circle-reg" in run.human("registry", "list").stdout
    assert {r["name"] for r in run.json("registry", "list")["items"]} >= {"cli-circle-reg", "cli-scratch"}
    shown = run.human("registry", "show", "cli-circle-reg").stdout
    assert model in shown and other_model in shown and "production -> v1, staging -> v2" in shown
    assert [v["version"] for v in run.json("registry", "show", "cli-circle-reg")["versions"]] == [2, 1]
    assert "cli-circle-reg@canary -> version 1" in run.human("registry", "alias", "set", "cli-circle-reg", "canary",
                                                             "1").stdout
    assert run.json("registry", "alias", "set", "cli-circle-reg", "production", "2")["model_id"] == other_model
    assert "removed cli-circle-reg@canary" in run.human("registry", "alias", "delete", "cli-circle-reg",
                                                        "canary").stdout
    assert run.json("registry", "alias", "delete", "cli-circle-reg", "staging")["deleted"] is True
    history = run.human("registry", "alias", "history", "cli-circle-reg").stdout
    assert "(new)" in history and "(removed)" in history
    moves = run.json("registry", "alias", "history", "cli-circle-reg", "--alias", "production")["items"]
    assert [(m["from_version"], m["to_version"]) for m in moves] == [(None, 1), (1, 2)]

    # ---- predict: by alias (the label column kept), by version, by id
    predicted = run.human("predict", "cli-circle-reg@production", "--input", "rows.csv")
    header, *lines = predicted.stdout.splitlines()
    assert header.split(",")[:4] == ["x1", "inside", "x2", "prediction"]
    assert [line.split(",")[:3] for line in lines] == [["0.0", "1", "0.0"], ["0.9", "0", "0.9"]]
    assert other_model in predicted.stderr and "answered by" in predicted.stderr
    answer = run.json("predict", "cli-circle-reg/versions/1", "--input", "rows.csv", "--epsilon", "0.05")
    assert len(answer["predictions"]) == 2 and len(answer["output_bounds"]) == 2
    assert run.json("predict", model, "--input", "rows.csv")["predictions"] == answer["predictions"]

    run.human("registry", "delete", "cli-scratch")
    assert run.json("registry", "delete", "cli-circle-reg", "--force")["deleted"] is True

    # ---- sweeps
    space = '{"objective.lambda": [1e-6, 1e-3]}'
    followed = run.human("sweeps", "submit", "--dataset", first, "--space", space, "--config", "small.json",
                         "--max-trials", "2", "--select", "max_accuracy:1000", "--name", "cli sweep", "--tag",
                         "cli-e2e", "--follow", "--poll", "0.3")
    sweep = followed.stdout.splitlines()[0].strip()
    assert "by max_accuracy with certified Lipschitz <= 1000" in followed.stdout
    second_sweep = run.json("sweeps", "submit", "--dataset", first, "--space", space, "--config", "small.json",
                            "--max-trials", "2")["id"]
    assert run.json("sweeps", "follow", second_sweep, "--poll", "0.3")["status"] == "succeeded"
    assert "selected: trial" in run.human("sweeps", "follow", sweep).stdout  # finished: shown at once
    listed = run.human("sweeps", "list", "--tag", "cli-e2e").stdout
    assert sweep in listed and "cli sweep" in listed and second_sweep not in listed
    assert {sweep, second_sweep} <= {s["id"] for s in run.json("sweeps", "list")["items"]}
    shown = run.human("sweeps", "show", sweep, "--wide").stdout
    assert "2/2 trials succeeded" in shown and "selected: trial" in shown
    assert len(run.json("sweeps", "show", sweep)["trials"]) == 2
    assert "name cli sweep 1" in run.human("sweeps", "edit", sweep, "--name", "cli sweep 1").stdout
    assert run.json("sweeps", "edit", sweep, "--clear-tags")["tags"] == []
    long_space = '{"spline.knots": [5, 11]}'
    running = run.json("sweeps", "submit", "--dataset", first, "--space", long_space, "--config", "long.json",
                       "--max-trials", "2")["id"]
    run.human("sweeps", "cancel", running)
    running = run.json("sweeps", "submit", "--dataset", first, "--space", long_space, "--config", "long.json",
                       "--max-trials", "2")["id"]
    assert run.json("sweeps", "cancel", running)["status"] == "cancelled"

    # ---- storage credentials (set, shown without the keys, deleted again)
    keys = ["--access-key-id", "AKIACLITEST00042", "--secret-access-key", "cli-secret-key"]
    assert "…0042" in run.human("storage", "set-s3", *keys, "--region", "eu-west-3").stdout
    assert run.json("storage", "set-s3", *keys)["s3"]["access_key_id_hint"] == "…0042"
    shown = run.human("storage", "show").stdout
    assert "…0042" in shown and "cli-secret-key" not in shown
    assert run.json("storage", "show")["s3"]["has_session_token"] is False
    run.human("storage", "delete")
    assert "no S3 keys stored" in run.human("storage", "show").stdout  # nothing stored: an answer, exit 0
    assert run.json("storage", "show") == {"s3": None, "updated_at": None}
    run.json("storage", "set-s3", *keys)
    assert run.json("storage", "delete") == {"deleted": True}

    # ---- webhooks (the endpoints are deleted again before any job ends: nothing is sent to them)
    assert run.human("webhooks", "secret").stdout.strip()
    assert run.json("webhooks", "secret")["secret"]
    endpoint = run.human("webhooks", "add", WEBHOOK_URL).stdout.strip()
    endpoint_json = run.json("webhooks", "add", WEBHOOK_URL + "/2")["id"]
    assert endpoint in run.human("webhooks", "list").stdout
    assert {endpoint, endpoint_json} <= {e["id"] for e in run.json("webhooks", "list")["items"]}
    run.human("webhooks", "deliveries", job)
    assert run.json("webhooks", "deliveries", job)["items"] == []
    run.human("webhooks", "delete", endpoint)
    assert run.json("webhooks", "delete", endpoint_json)["deleted"] is True

    # ---- cleanup of the second dataset, in both forms of delete
    spare = run.json("datasets", "upload", "circle.csv", "--name", "cli-spare")["id"]
    run.human("datasets", "delete", spare)
    assert run.json("datasets", "delete", second)["deleted"] is True

    every = command_paths(cli)
    missing = sorted((" ".join(path), form) for path in every for form in ("human", "json")
                     if (path, form) not in run.ran)
    assert not missing, f"commands never run in this test (add them): {missing}"
