"""LipSpline ML core: deep-spline networks, BV2 training and Lipschitz certificates.

Imports torch, numpy and the shared pydantic contracts only: nothing from the
web service, the task queue or the database layer.

``__version__`` is the installed package's version (``version`` in pyproject.toml, the one
place it is written): the API's OpenAPI ``info.version``, ``lipspline --version``, the SDK's
User-Agent and the exported model files all read it from here.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lipspline")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
