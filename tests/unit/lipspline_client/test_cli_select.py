"""``lipspline sweeps submit --select``: the short forms map onto the API's ``select`` rules exactly."""

from __future__ import annotations

import pytest

from api_schemas.sweeps import SelectKnee, SelectMaxAccuracy, SelectMaxCertifiedAccuracy
from lipspline_client.cli import parse_select


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("max_accuracy", SelectMaxAccuracy(rule="max_accuracy")),
        ("max_accuracy:20", SelectMaxAccuracy(rule="max_accuracy", max_lipschitz=20.0)),
        ("certified_accuracy:0.05", SelectMaxCertifiedAccuracy(rule="max_certified_accuracy", radius=0.05)),
        ("max_certified_accuracy:0.05", SelectMaxCertifiedAccuracy(rule="max_certified_accuracy", radius=0.05)),
        ("knee", SelectKnee(rule="knee")),
    ],
)
def test_each_form_is_its_rule(text: str, rule: object) -> None:
    assert parse_select(text) == rule


@pytest.mark.parametrize("text", ["", "best", "max_accuracy:-1", "max_accuracy:x", "certified_accuracy", "knee:2"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_select(text)


def test_the_lipspline_command_hands_exactly_the_user_cli_commands_to_it() -> None:
    """`lipspline COMMAND` keeps its own list of the SDK CLI's commands (so `serve` does not import click's
    user CLI); it must name every one of them and nothing else."""
    from lipspline_client.cli import cli
    from service.cli import USER_COMMANDS

    assert sorted(USER_COMMANDS) == sorted(cli.commands)
