"""LipSpline ML core: deep-spline networks, BV2 training and Lipschitz certificates.

Imports torch, numpy and the shared pydantic contracts only: nothing from the
web service, the task queue or the database layer.

The public API is the names in ``__all__``::

    from lipspline import TrainingConfig, certify_global, fit, from_arrays

    dataset = from_arrays(inputs, targets)
    result = fit(dataset, TrainingConfig())
    certificate = certify_global(result.model.network)

Each name is loaded when first used (PEP 562): ``import lipspline`` stays cheap, and no module
of the package imports the package root, which would tie every module to every other one.
``__version__`` is the installed distribution's (``api_schemas.version``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from api_schemas.version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "TrainingConfig": "api_schemas",
    "Dataset": "lipspline.data",
    "DatasetError": "lipspline.data",
    "from_arrays": "lipspline.data",
    "parse_upload": "lipspline.data",
    "make_circle": "lipspline.data",
    "fit": "lipspline.training.loop",
    "FitResult": "lipspline.training.loop",
    "EpochReport": "lipspline.training.loop",
    "InMemoryData": "lipspline.training.data",
    "StreamedData": "lipspline.training.data",
    "SplineNetwork": "lipspline.nn.networks",
    "TrainedModel": "lipspline.nn.model",
    "label_of": "lipspline.nn.model",
    "certify_global": "lipspline.certificates",
    "certificate_report": "lipspline.certificates",
    "local_bounds": "lipspline.certificates",
    "ServedMap": "lipspline.certificates",
    "model_to_parts": "lipspline.nn.serialization",
    "model_from_parts": "lipspline.nn.serialization",
    "save": "lipspline.nn.serialization",
    "load": "lipspline.nn.serialization",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lipspline' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
