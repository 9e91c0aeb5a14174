"""Scoped control of OpenBLAS threads for the certificate computations.

On a 2-core machine shared with other processes, OpenBLAS's worker threads
spin and contend on every call: a 200x200 Cholesky goes from 0.5 ms to 30 ms
under load, and a 1024x1024 ``dpotrf`` from 10 ms (one thread) to 1.3 s
(two threads, while a training worker uses the other core). Certification
runs beside training workers and request handlers, so the whole global and
local analysis runs single-threaded: measured on this 2-core VM under load,
the 784-1024-1024-10 certificate takes 0.22-0.34 s instead of 0.9-3 s. Only the OpenBLAS copies already loaded by numpy
and scipy are touched (found in ``/proc/self/maps``; nothing is loaded), and
the previous thread counts are restored afterwards. Where the symbols are not
found (another BLAS, another OS) this is a no-op: it only changes speed,
never a result's soundness.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()
_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_GETTERS = (
    "scipy_openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)
_libs: list[tuple[object, object]] | None = None
# Nested and concurrent scopes (request threads) share one setting: the first
# to enter saves the thread counts and sets 1, the last to leave restores them.
_depth = 0
_saved: list[int] = []


def _find() -> list[tuple[object, object]]:
    global _libs
    if _libs is not None:
        return _libs
    found: list[tuple[object, object]] = []
    try:
        paths = set()
        with open("/proc/self/maps") as fh:
            for line in fh:
                if "openblas" in line.lower() and "/" in line:
                    paths.add(line.split(None, 5)[-1].strip())
        for path in sorted(paths):
            lib = ctypes.CDLL(path)
            setter = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
            getter = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
            if setter is not None and getter is not None:
                getter.restype = ctypes.c_int
                found.append((setter, getter))
    except OSError:
        found = []
    _libs = found
    return found


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block with one OpenBLAS thread (restored afterwards)."""
    import numpy.linalg  # noqa: F401 - make sure the BLAS libraries are loaded
    import scipy.linalg  # noqa: F401

    global _depth, _saved
    with _LOCK:
        libs = _find()
        if _depth == 0:
            _saved = [int(get()) for _, get in libs]  # type: ignore[operator]
            for setter, _ in libs:
                setter(ctypes.c_int(1))  # type: ignore[operator]
        _depth += 1
    try:
        yield
    finally:
        with _LOCK:
            _depth -= 1
            if _depth == 0:
                for (setter, _), n in zip(libs, _saved, strict=True):
                    setter(ctypes.c_int(n))  # type: ignore[operator]
