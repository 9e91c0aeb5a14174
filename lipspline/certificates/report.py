"""One JSON-ready document: every bound by name, the lower bounds beside them, the tightness."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from lipspline.certificates.global_bounds import certify_global
from lipspline.certificates.lower_bounds import empirical_lower_bound, jacobian_lower_bound
from lipspline.certificates.served_map import ARITHMETIC, ServedMap


def certificate_report(
    network: nn.Module,
    inputs: torch.Tensor | np.ndarray,
    *,
    include_lipsdp: bool = False,
    max_pairs: int = 4096,
    jacobian_points: int = 256,
    ascent_steps: int = 20,
) -> dict[str, Any]:
    """Global certificate + empirical and Jacobian lower bounds + ``tightness = certified / best lower``.

    Users see how far the certificate can be from the truth: the true constant
    lies in ``[best lower, certified]``.
    """
    x = np.asarray(inputs.detach().cpu() if isinstance(inputs, torch.Tensor) else inputs, dtype=np.float64)
    served = ServedMap(network)
    cert = certify_global(network, include_lipsdp=include_lipsdp)
    empirical = empirical_lower_bound(served, x, max_pairs=max_pairs)
    jacobian = jacobian_lower_bound(served, x[:jacobian_points], ascent_steps=ascent_steps)
    lower = max(empirical, jacobian)
    report = cert.to_json()
    report["lower_bounds"] = {"empirical": empirical, "jacobian": jacobian}
    report["best_lower_bound"] = lower
    report["tightness"] = cert.certified / lower if lower > 0 and math.isfinite(cert.certified) else None
    report["ratios"] = {k: (v / lower if lower > 0 and v is not None else None) for k, v in report["bounds"].items()}
    # which function these numbers are about: the service checks it against the map it serves
    report["served_map_sha256"] = served.fingerprint
    report["arithmetic"] = ARITHMETIC
    return report
