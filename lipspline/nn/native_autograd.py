"""The optional C++ autograd node of the spline activation: why it exists, how it is built and found.

Why. Training through :class:`~lipspline.nn.splines._SplineEval` (a Python ``autograd.Function``)
runs a few dozen interpreter lines per layer per step, forward and backward. Inside a training step
the interpreter runs cold (the matmuls and the autograd engine evict it from the caches), so those
lines cost about as much as the fused kernel they call. Measured on the 784-256-256-10 net of
``bench/bench_splines.py`` (one thread): the stock ReLU wrapped in a Python ``autograd.Function``
made the step about 5 % slower than the C++ ReLU. ``lipspline/csrc/spline_autograd.cpp`` is the same
node in C++ (forward and backward), over the very kernels of ``lipspline._spline_kernels`` (it takes
their function table from that module's ``_C_API`` capsule), so its results are bit-identical to the
Python node's; only the interpreter is gone from the step.

How it is built. It needs torch's C++ headers and a C++ compiler, so it cannot be built inside pip's
isolated build environment (which has no torch) like the C kernels. ``make install`` (and the Docker
image) build it after torch and the package are installed: ``python -m lipspline.nn.native_autograd``
compiles it with ``torch.utils.cpp_extension`` (about 30 s on two cores) into :func:`extension_dir`,
one directory per torch version and Python, under a name that carries a hash of its sources.

How it is found. :func:`load` imports the built module if it is there and matches (same source hash,
same torch, the kernel table's version), and returns None otherwise: then training goes through the
Python node, with the same results. It never compiles: a training step must not wait for a compiler.
``LIPSPLINE_NATIVE_AUTOGRAD=0`` turns it off (the Python node then runs, e.g. to compare the two).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent.parent / "csrc" / "spline_autograd.cpp"
#: the kernel table both sides compile against (lipspline/_spline_kernels.c fills it)
HEADER = SOURCE.with_name("kernel_api.h")
#: where the built module lives (default: under the environment's prefix, see extension_dir)
DIR_VARIABLE = "LIPSPLINE_EXTENSION_DIR"
#: "0" turns the C++ node off
SWITCH_VARIABLE = "LIPSPLINE_NATIVE_AUTOGRAD"


def module_name() -> str | None:
    """The built module's name: its sources' hash in it, so a changed source is never served stale."""
    try:
        digest = hashlib.sha256(SOURCE.read_bytes() + HEADER.read_bytes()).hexdigest()[:12]
    except OSError:
        return None
    return f"lipspline_spline_autograd_{digest}"


def extension_dir() -> Path:
    """One directory per torch version and Python: a module built for another torch would not load."""
    configured = os.environ.get(DIR_VARIABLE)
    base = Path(configured) if configured else Path(sys.prefix) / "lib" / "lipspline-extensions"
    return base / f"torch-{torch.__version__}-{sys.implementation.cache_tag}"


def built_path() -> Path | None:
    name = module_name()
    return None if name is None else extension_dir() / f"{name}.so"


def build(verbose: bool = False) -> Path:
    """Compile the node into :func:`extension_dir` (needs a C++ compiler and torch's headers)."""
    from torch.utils import cpp_extension  # heavy (setuptools); only the build needs it

    name, path = module_name(), built_path()
    if name is None or path is None:
        raise FileNotFoundError(f"the C++ source is missing: {SOURCE}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # cpp_extension runs `ninja` from PATH; pip installs it (lipspline[native]) beside this interpreter
    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    cpp_extension.load(
        name=name, sources=[str(SOURCE)], build_directory=str(path.parent), extra_cflags=["-O2"], verbose=verbose,
    )
    return path


def load(kernels: ModuleType) -> ModuleType | None:
    """The built node, bound to ``kernels`` (the C module splines uses); None when it is off, not built,
    stale or unusable."""
    if os.environ.get(SWITCH_VARIABLE, "1") == "0":
        return None
    path = built_path()
    if path is None or not path.is_file():
        return None
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not module.bind(kernels._C_API):
            log.warning("C++ spline node %s does not match the kernels' table; using the Python node", path)
            return None
    except (ImportError, OSError, AttributeError) as error:  # e.g. built against another libtorch
        log.warning("C++ spline node %s did not load (%s); using the Python node", path, error)
        return None
    return module


def main() -> None:
    began = time.perf_counter()
    try:
        path = build(verbose="--verbose" in sys.argv)
    except Exception as error:  # noqa: BLE001 - report any build failure, then say what still works
        print(f"C++ spline node not built ({error}); training uses the Python node (same results, slower)")
        sys.exit(1 if "--strict" in sys.argv else 0)
    print(f"C++ spline node built in {time.perf_counter() - began:.0f} s: {path}")


if __name__ == "__main__":
    main()
