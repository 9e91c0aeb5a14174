"""What a recipe is given (how to train, where to write) and what it gives back.

Recipes never train directly: they call ``ctx.trainer.train`` so that the same
recipe runs through the core in-process or through a running service
(``--url``), and the numbers in docs/results.md can be reproduced either way.
Trained models worth re-examining (by ``bound_kinds``) are kept on disk in
the work directory with the data points they were trained on.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lipspline.experiments.tables import Table
from lipspline.experiments.trainers import Trainer
from lipspline.nn import serialization
from lipspline.nn.model import TrainedModel


@dataclass
class RecipeResult:
    """Tables, figures and the choices a recipe had to make where the paper is silent."""

    name: str
    title: str
    tables: list[Table]
    figures: list[Path] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    seconds: float = 0.0
    quick: bool = False

    def table(self, title_start: str) -> Table:
        """The table whose title starts with ``title_start`` (for tests and cross-recipe use)."""
        for table in self.tables:
            if table.title.startswith(title_start):
                return table
        raise KeyError(f"{self.name} has no table titled {title_start!r}…")


@dataclass
class KeptModel:
    recipe: str
    label: str
    model: TrainedModel
    inputs: np.ndarray
    info: dict


@dataclass
class ExperimentContext:
    quick: bool
    trainer: Trainer
    docs_dir: Path
    work_dir: Path
    seeds: list[int] | None = None
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))

    def seed_list(self, full: int, quick: int) -> list[int]:
        """The seeds to run: ``--seeds`` if given, else ``range(full)`` or ``range(quick)``."""
        if self.seeds:
            return list(self.seeds)
        return list(range(quick if self.quick else full))

    def figure_path(self, recipe: str, name: str) -> Path:
        path = self.docs_dir / "figures" / f"{recipe}-{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def keep_model(self, recipe: str, label: str, model: TrainedModel, inputs: np.ndarray, **info: object) -> None:
        """Save a trained model and its data points so that ``bound_kinds`` can re-examine it."""
        directory = self.work_dir / "models" / recipe / label
        serialization.save(model, directory)
        np.save(directory / "inputs.npy", np.asarray(inputs, dtype=np.float64), allow_pickle=False)
        (directory / "info.json").write_text(json.dumps({"recipe": recipe, "label": label, **info}, indent=2))

    def kept_models(self, recipe: str) -> list[KeptModel]:
        root = self.work_dir / "models" / recipe
        kept = []
        for directory in sorted(p for p in root.glob("*") if (p / "model.json").exists()):
            info = json.loads((directory / "info.json").read_text())
            inputs = np.load(directory / "inputs.npy", allow_pickle=False)
            kept.append(KeptModel(recipe, directory.name, serialization.load(directory), inputs, info))
        return kept
