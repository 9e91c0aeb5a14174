"""Measurements the recipes share: weight norms, bounds of the
standardised core next to the served map, lower bounds, and a one-thread guard for training.

Why a *standardised* certificate beside the served one: a network owns its input
standardisation and target scaling (networks.py), so ``certify_global(network)``
bounds the raw-input -> raw-output map that clients call. The papers' quantities
(paper 002's product of ||W_l||_2, paper 003's "1-Lipschitz by construction")
are about the trainable core between those affine maps. Certifying a copy whose
scaling buffers are the identity gives exactly that core's bound, so both can be
reported and compared.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from lipspline.certificates import certify_global, empirical_lower_bound, jacobian_lower_bound
from lipspline.certificates.spectral import proven_spectral_norm
from lipspline.nn.layers import served_weight


@contextmanager
def single_thread() -> Iterator[None]:
    """Train tiny networks on one intra-op thread, restoring the previous setting afterwards.

    For 1-10-10-10-1 or 13-20-20-20-1 networks the per-op work is microseconds,
    and a second thread only adds synchronisation; when other processes load
    the cores (recipes run in parallel) that synchronisation made GroupSort's
    max/min reductions ~20x slower in our measurements. One thread gives the
    same numbers (the CPU kernels are deterministic) in a predictable time.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def standardised_copy(network: nn.Module) -> nn.Module:
    """The same network with identity input standardisation and target scaling (the trainable core)."""
    core = copy.deepcopy(network).cpu()
    with torch.no_grad():
        core.input_mean.zero_()
        core.input_scale.fill_(1.0)
        core.target_mean.zero_()
        core.target_scale.fill_(1.0)
    return core


def certified_standardised(network: nn.Module) -> float:
    return float(certify_global(standardised_copy(network)).certified)


def certified_raw(network: nn.Module) -> float:
    return float(certify_global(network).certified)


def layer_norms(network: nn.Module) -> list[float]:
    """Proven upper bounds of ||W_l||_2 (float64, Cholesky-verified) of the weights each layer applies."""
    return [
        float(proven_spectral_norm(served_weight(layer).to(torch.float64).cpu().numpy())) for layer in network.layers
    ]


def activation_lipschitz(network: nn.Module) -> list[float]:
    """Largest Lipschitz constant among each activation layer's units (1 for ReLU and GroupSort)."""
    return [float(torch.as_tensor(act.lipschitz()).max()) for act in network.activations]


def max_row_norm(network: nn.Module) -> float:
    """Largest incoming-weight norm of any unit: what MaxNorm(c) clips at c."""
    return max(float(served_weight(layer).flatten(1).norm(dim=1).max()) for layer in network.layers)


def raw_lower_bound(network: nn.Module, inputs: np.ndarray, *, ascent_steps: int = 20) -> float:
    """Largest observed slope of the served map: difference quotients over pairs and Jacobian ascent."""
    return max(
        empirical_lower_bound(network, inputs),
        jacobian_lower_bound(network, inputs, ascent_steps=ascent_steps),
    )


def product(values: list[float]) -> float:
    return float(np.prod(np.asarray(values, dtype=np.float64)))
