"""The one rule that turns a classifier's outputs into class indices, for training, metrics and serving.

Its own module, importing only numpy and torch, so every part of the core (the objectives
included, which ``lipspline.nn.model`` cannot be imported from) applies the same rule.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor


def label_of(outputs: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """The class index each row of a classifier's outputs names: the one rule, everywhere.

    One output (a binary classifier's logit): class 1 where it is > 0, class 0 otherwise (a logit
    of exactly 0 is class 0). Several: the largest output, the first on a tie. Rows are the last
    axis; a numpy array gives int64 indices, a torch tensor a long tensor (on its device).
    """
    if isinstance(outputs, Tensor):
        return (outputs[..., 0] > 0).long() if outputs.shape[-1] == 1 else outputs.argmax(dim=-1)
    out = np.asarray(outputs)
    return (out[..., 0] > 0).astype(np.int64) if out.shape[-1] == 1 else out.argmax(axis=-1).astype(np.int64)
