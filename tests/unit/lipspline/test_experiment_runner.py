"""The experiment runner's bookkeeping: results.md sections, tables, and the CLI's argument errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipspline.experiments.runner import HEADER, write_section
from lipspline.experiments.tables import Table, fmt
from service.cli import main


def _section(name: str, body: str) -> str:
    return f"<!-- experiment:{name}:start -->\n{body}\n<!-- experiment:{name}:end -->"


def test_sections_are_replaced_in_place_and_kept_in_recipe_order(tmp_path: Path) -> None:
    md = tmp_path / "results.md"
    write_section(md, "one_lipschitz", _section("one_lipschitz", "ONE v1"))
    write_section(md, "circle", _section("circle", "CIRCLE v1"))
    write_section(md, "noise", _section("noise", "NOISE v1"))
    write_section(md, "circle", _section("circle", "CIRCLE v2"))
    text = md.read_text()
    assert text.startswith(HEADER)
    assert "CIRCLE v1" not in text and text.count("CIRCLE v2") == 1
    assert text.index("CIRCLE v2") < text.index("NOISE v1") < text.index("ONE v1")


def test_table_rejects_ragged_rows_and_formats_gaps() -> None:
    table = Table("t", ["a", "b"])
    table.add(1, None)
    with pytest.raises(ValueError, match="2 columns"):
        table.add(1)
    assert table.column("b") == [None]
    assert fmt(float("nan")) == "—" and fmt(0.98536) == "0.9854" and fmt(True) == "yes"
    assert "| 1 | — |" in table.to_markdown()


def test_cli_refuses_unknown_recipes_and_url_without_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIPSPLINE_API_KEY", raising=False)
    assert main(["experiment", "run", "nope", "--docs-dir", str(tmp_path)]) == 2
    assert main(["experiment", "run", "circle", "--url", "http://127.0.0.1:9", "--docs-dir", str(tmp_path)]) == 2
    assert not (tmp_path / "results.md").exists()
