"""The built-in objective modes, one module each (or one per family of closely related modes).

Every module in this package is imported here, and each registers its classes with
:func:`~lipspline.objectives.register_objective` as it is defined, so adding a mode means
adding a file with one decorated class; no list elsewhere has to learn its name.
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
