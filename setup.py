"""Build hook for the optional native spline kernel.

The extension is plain C against the CPython API (no torch headers), so it
builds in seconds inside pip's isolated build environment. It is optional:
without a compiler the package installs anyway and the splines fall back to a
pure-PyTorch path (also the path used on CUDA).

The C++ autograd nodes over this kernel (lipspline/csrc) need torch's headers, which
the isolated build environment does not have: they are compiled after install by
``python -m lipspline.nn.native_autograd`` (``make install`` and the image do it).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lipspline._spline_kernels",
            sources=["lipspline/_spline_kernels.c"],
            depends=["lipspline/csrc/kernel_api.h"],
            extra_compile_args=["-O3", "-fopenmp", "-std=c11", "-ffp-contract=off"],
            extra_link_args=["-fopenmp"],
            optional=True,
        )
    ]
)
