"""An exponential moving average (EMA) of a network's parameters, validated and served instead of the raw weights.

Why: the certified radius of a point is its margin over the Lipschitz bound, so what counts is the
margin on *unseen* rows. The last iterate of Adam at a large lr (the target-radius rule trains
1-Lipschitz networks at 0.02) jitters around the boundary it is learning; an average of recent
iterates sits nearer the middle of that jitter, and its margins generalise better. On the selection
splits of ``bench/select_target_radius.py`` (never the test splits) the average certified as many or
more rows at the target radius on four of five tasks (docs/concepts/objectives.md, 2.6b).

What is averaged: the parameters only, after the step's projection (``Objective.after_step``). Every
certificate is proven on the weights that are served, whatever they are; averaging changes which
weights those are, not how they are proven (a 1-Lipschitz layer orthonormalises the averaged raw
weight as it would any other; a norm-ball projection's set is convex, so the average stays inside).

The decay warms up as ``min(decay, (1 + t) / (10 + t))`` at update ``t`` (the first update copies the
weights): early on the average follows the weights closely instead of dragging the initialisation
along for hundreds of steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class WeightAverage:
    """The running average of ``network``'s parameters, updated after every optimizer step."""

    def __init__(self, network: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an average's decay must lie in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self._params = list(network.parameters())
        self.shadow: list[Tensor] | None = None  # filled by the first update

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current parameters into the average (call after the optimizer step and its projection)."""
        if self.shadow is None:
            self.shadow = [p.detach().clone() for p in self._params]
            return
        self.updates += 1
        weight = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for average, param in zip(self.shadow, self._params, strict=True):
            average.mul_(weight).add_(param.detach(), alpha=1.0 - weight)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Within the block the network holds the averaged parameters; the trained ones come back after.

        Copies in place under ``no_grad`` (``copy_`` bumps each parameter's version, so caches keyed on
        it, such as a 1-Lipschitz layer's served weight, see the swap).
        """
        if self.shadow is None:
            yield
            return
        trained = [p.detach().clone() for p in self._params]
        self.install()
        try:
            yield
        finally:
            self._load(trained)

    def install(self) -> None:
        """Leave the averaged parameters in the network for good (the run is over)."""
        if self.shadow is not None:
            self._load(self.shadow)

    @torch.no_grad()
    def _load(self, values: list[Tensor]) -> None:
        for param, value in zip(self._params, values, strict=True):
            param.copy_(value)

    def tensors(self) -> dict[str, Tensor]:
        """The average as named tensors, for a checkpoint (empty before the first update)."""
        if self.shadow is None:
            return {}
        return {str(i): t.detach().cpu().contiguous() for i, t in enumerate(self.shadow)}

    def restore(self, tensors: dict[str, Tensor], updates: int) -> None:
        """Take back what :meth:`tensors` saved (nothing saved: the average starts afresh)."""
        if not tensors:
            self.shadow, self.updates = None, 0
            return
        if len(tensors) != len(self._params):
            raise ValueError(f"checkpoint holds {len(tensors)} averaged tensors, the network {len(self._params)}")
        self.shadow = [
            tensors[str(i)].to(device=p.device, dtype=p.dtype).clone() for i, p in enumerate(self._params)
        ]
        self.updates = int(updates)
