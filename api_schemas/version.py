"""The installed distribution's version (``version`` in pyproject.toml, the one place it is written).

In the shared contracts, read from the package metadata: the ML core, the service and the client
(installed without torch: ``pip install 'lipspline[client]'``) all report the same one.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lipspline")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
