"""Lipschitz certificates of the user-visible map, sound in floating point .

Modules: ``spectral`` (proven spectral norms), ``view`` (the certified chain:
scaling folded in, convolutions densified), ``global_bounds`` (named global
bounds and why each holds), ``liplt_scaled`` (LipLT with searched
per-neuron scalings), ``local_bounds`` (bounds in a ball),
``lower_bounds`` (empirical and Jacobian lower bounds), ``exact_1d`` (exact
constant for 1-D inputs, the test oracle), ``robustness`` (certified radii),
``lipsdp`` (optional LipSDP-Neuron with a verified answer), ``layerwise_sdp``
(LipSDP-Neuron multipliers chosen layer by layer, proven on the whole program), ``partition``
(bounds from a partition of the input space: global for 1-2 inputs, and the
domain bound on a box, reported beside the global one), ``report``,
``served_map`` (the function the endpoint computes, float64, with a proven
bound on its rounding).
"""

from __future__ import annotations

from lipspline.certificates.exact_1d import exact_lipschitz_1d
from lipspline.certificates.global_bounds import GlobalCertificate, analyze, certify_global, clear_cache
from lipspline.certificates.layerwise_sdp import layerwise_bound  # importing it registers the bound
from lipspline.certificates.local_bounds import LocalCertificate, local_bounds
from lipspline.certificates.lower_bounds import empirical_lower_bound, jacobian_lower_bound
from lipspline.certificates.partition import DomainCertificate, domain_bound
from lipspline.certificates.report import CertificateReport, LowerBounds, certificate_report
from lipspline.certificates.robustness import (
    certified_radius,
    local_radius,
    local_served_radius,
    output_deviation_bound,
    served_output_bound,
    served_radius,
)
from lipspline.certificates.served_map import ARITHMETIC, ServedMap, ServedOutputs
from lipspline.certificates.spectral import proven_spectral_norm

__all__ = [
    "CertificateReport",
    "LowerBounds",
    "ARITHMETIC",
    "ServedMap",
    "ServedOutputs",
    "served_output_bound",
    "served_radius",
    "DomainCertificate",
    "GlobalCertificate",
    "LocalCertificate",
    "analyze",
    "certificate_report",
    "certified_radius",
    "certify_global",
    "clear_cache",
    "domain_bound",
    "empirical_lower_bound",
    "exact_lipschitz_1d",
    "jacobian_lower_bound",
    "layerwise_bound",
    "local_bounds",
    "local_radius",
    "local_served_radius",
    "output_deviation_bound",
    "proven_spectral_norm",
]
