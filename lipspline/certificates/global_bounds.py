"""``certify_global``: the certified global l2 Lipschitz bound of a network's served map.

The bounds themselves are computed by the network's :class:`~lipspline.certificates.analysis.Analysis`
(cached per network state; the partition bound plugs into it from ``partition.py``); this module
adds LipSDP-Neuron when asked and takes the minimum.
"""

from __future__ import annotations

import time

from torch import nn

from lipspline.certificates._fp import mul_up
from lipspline.certificates.analysis import (
    BOUND_NAMES,
    Analysis,
    GlobalCertificate,
    analyze,
    clear_cache,
    mid_radius,
)
from lipspline.certificates.lipsdp import lipsdp_neuron
from lipspline.certificates.view import PiecewiseView


def certify_global(
    network: nn.Module,
    *,
    p: float = 2.0,
    include_lipsdp: bool = False,
    lipsdp_time_limit_s: float = 120.0,
    use_cache: bool = True,
) -> GlobalCertificate:
    """Sound global l2 Lipschitz bounds of ``network.forward`` and their minimum.

    ``p`` selects the lp -> lp topology of ``bv2_mixed`` (paper 000, Thm 1): for
    p = 2 it joins the l2 bounds; otherwise it is reported in ``other_norms``.
    ``include_lipsdp`` solves LipSDP-Neuron for small networks (optional cvxpy);
    its value is certified only after an independent positive-definiteness proof.
    """
    t0 = time.perf_counter()
    analysis = analyze(network, use_cache=use_cache)
    t_analysis = (time.perf_counter() - t0) * 1e3
    cert = analysis.certificate()
    cert.p = float(p)
    if p != 2.0:
        if "bv2_mixed" in analysis.skipped:
            cert.skipped[f"bv2_mixed_p{p:g}"] = analysis.skipped["bv2_mixed"]
        else:
            cert.other_norms[f"bv2_mixed_p{p:g}"] = analysis.bv2_mixed(p)
    if include_lipsdp:
        t1 = time.perf_counter()
        result = lipsdp_neuron(analysis.view, time_limit_s=lipsdp_time_limit_s)
        cert.timings_ms["lipsdp_neuron"] = (time.perf_counter() - t1) * 1e3
        if result.certified is not None:
            cert.bounds["lipsdp_neuron"] = mul_up(result.certified, analysis.view.prefix_factor)
            if cert.bounds["lipsdp_neuron"] < cert.certified:
                cert.certified = cert.bounds["lipsdp_neuron"]
                cert.certified_by = "lipsdp_neuron"
        else:
            cert.skipped["lipsdp_neuron"] = result.reason
        if result.solver_value is not None:
            cert.other_norms["lipsdp_neuron_solver_value"] = result.solver_value
    cert.timings_ms["total"] = t_analysis
    return cert


__all__ = [
    "BOUND_NAMES",
    "Analysis",
    "GlobalCertificate",
    "PiecewiseView",
    "analyze",
    "certify_global",
    "clear_cache",
    "mid_radius",
]
