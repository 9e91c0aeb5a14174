# syntax=docker/dockerfile:1
#
# LipSpline image: the API (default CMD), the Celery workers and the migration
# job all run from it; docker-compose.yml picks the command per service.
#
#   CPU image:  docker build -t lipspline:cpu .
#   GPU image:  docker build -t lipspline:gpu \
#                 --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#
# The CUDA torch wheels carry their own CUDA runtime (nvidia-* wheels), so the
# GPU image needs no CUDA base image: only the host driver, exposed to the
# container by the NVIDIA Container Toolkit.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# Build stage: the only place with a C compiler. It builds the lipspline wheel,
# including the optional native spline kernel (lipspline/_spline_kernels.c,
# OpenMP). The kernel is optional (setup.py: optional=True): without a compiler
# the wheel would still build and the splines fall back to pure PyTorch.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the package build needs (README.md is the project's `readme`).
COPY pyproject.toml setup.py README.md ./
COPY lipspline ./lipspline
COPY lipspline_platform ./lipspline_platform
COPY api_schemas ./api_schemas
COPY service ./service
COPY worker ./worker
COPY migrations ./migrations
# --no-deps: the runtime stage resolves dependencies, after torch is pinned.
RUN pip wheel --no-deps --wheel-dir /wheels .

# The spline activation's C++ autograd node (lipspline/nn/native_autograd.py) needs torch's headers,
# so it is compiled here against the very torch the runtime stage installs (the same two ARGs) and
# copied over; without it the workers train through the Python node (same results, slower steps).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN mkdir -p /opt/lipspline-extensions \
    && pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}" \
    && pip install "$(ls /wheels/lipspline-*.whl)[native]" \
    && LIPSPLINE_EXTENSION_DIR=/opt/lipspline-extensions python -m lipspline.nn.native_autograd

# ---------------------------------------------------------------------------
# Runtime stage: no compiler, non-root.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# torch is installed FIRST and pinned, from the index chosen here: the project
# only requires torch>=2.3, and a bare `torch` requirement resolved from PyPI
# would pull the multi-GB CUDA build into the CPU image.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libgomp1: the OpenMP runtime the native kernel links against (the compiler
# itself stays in the build stage).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

# Then the project with its server dependencies (`pip install 'lipspline[server]'`, as the
# wheel built above); torch>=2.3 is already satisfied, so pip keeps the pinned build.
COPY --from=build /wheels /tmp/wheels
RUN pip install "$(ls /tmp/wheels/lipspline-*.whl)[server]" && rm -rf /tmp/wheels
COPY --from=build /opt/lipspline-extensions /opt/lipspline-extensions
ENV LIPSPLINE_EXTENSION_DIR=/opt/lipspline-extensions

# Non-root user; /data is created owned by it so a fresh named volume mounted
# there inherits that ownership (Docker copies the image's directory into an
# empty named volume on first use).
RUN groupadd --system --gid 10001 lipspline \
    && useradd --system --uid 10001 --gid lipspline --create-home --home-dir /home/lipspline lipspline \
    && mkdir -p /data \
    && chown lipspline:lipspline /data

ENV LIPSPLINE_DATA_DIR=/data
USER lipspline
WORKDIR /home/lipspline

EXPOSE 8000

# Liveness of the default command (the API). python:3.11-slim has no curl, so
# the probe is Python's urllib; urlopen raises on a non-2xx answer. Services
# that run another command (workers, migrations) override or disable it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

CMD ["lipspline", "api", "--host", "0.0.0.0", "--port", "8000"]
