"""Paper experiments as runnable recipes (``lipspline experiment run NAME``).

Each recipe lives in its own module and exposes ``TITLE`` and ``run(ctx)``,
returning a :class:`~lipspline.experiments.results.RecipeResult`. Modules are
imported lazily so that ``--help`` or running one recipe does not pay for
matplotlib or the others' imports.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# bound_kinds comes last: it measures the models the recipes before it trained.
RECIPES: tuple[str, ...] = ("circle", "noise", "one_lipschitz", "bound_kinds")


def recipe_module(name: str) -> ModuleType:
    if name not in RECIPES:
        raise KeyError(f"unknown experiment {name!r}; choose from {', '.join(RECIPES)}")
    return importlib.import_module(f"lipspline.experiments.{name}")
