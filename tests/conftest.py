"""Session-wide settings of the test suite.

One intra-op thread for torch and BLAS, here and in every server and worker process the
tests start (they inherit the environment). The networks under test are tiny: a second
thread buys nothing, and on a 2-core machine shared by a test process, an API server and
one or two workers, OpenMP threads that spin-wait for a core each time an operation
starts made training steps wait on the scheduler (a 60-epoch circle fit took 95 s under
load instead of 4 s). It changes no result: the kernels are deterministic per thread count
and every assertion holds for any thread count.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
