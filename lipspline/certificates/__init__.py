"""Lipschitz certificates of the user-visible map, sound in floating point.

See global_bounds.py for why each bound holds, spectral.py for how spectral
norms are proven, local_bounds.py for the ball bounds, lower_bounds.py for
the lower bounds reported beside them, exact_1d.py for the test oracle.
"""

from __future__ import annotations

import numpy as np

from lipspline.certificates.exact_1d import exact_lipschitz_1d
from lipspline.certificates.global_bounds import GlobalCertificate, certify_global
from lipspline.certificates.local_bounds import LocalCertificate, local_bounds
from lipspline.certificates.lower_bounds import empirical_lower_bound, jacobian_lower_bound
from lipspline.certificates.robustness import certified_radius, local_radius, output_deviation_bound
from lipspline.certificates.spectral import proven_spectral_norm
from lipspline.certificates.structure import CertificateError
from lipspline.networks import SplineNetwork

__all__ = [
    "CertificateError",
    "GlobalCertificate",
    "LocalCertificate",
    "certificate_report",
    "certified_radius",
    "certify_global",
    "empirical_lower_bound",
    "exact_lipschitz_1d",
    "jacobian_lower_bound",
    "local_bounds",
    "local_radius",
    "output_deviation_bound",
    "proven_spectral_norm",
]


def certificate_report(network: SplineNetwork, inputs: np.ndarray) -> dict:
    """Every global bound, both lower bounds and the tightness, JSON-ready."""
    certificate = certify_global(network)
    empirical = empirical_lower_bound(network, inputs)
    jacobian = jacobian_lower_bound(network, inputs[:256])
    lower = max(empirical, jacobian)
    report = certificate.to_json()
    report.update({
        "empirical_lower": empirical,
        "jacobian_lower": jacobian,
        "tightness": certificate.certified / lower if lower > 0 else None,
    })
    return report
