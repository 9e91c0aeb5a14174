"""The certificate report: every bound by name, the lower bounds beside them, the tightness.

One typed document travels from the worker that computes it, through the
database (as its JSON), to the API that serves it. Its certified value has one
name everywhere inside the code, ``certified``: the smallest sound global l2
Lipschitz bound of the served map. (The HTTP API calls the same number
``lipschitz_bound`` in a prediction and ``lipschitz.certified`` on a model.)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from lipspline.certificates.global_bounds import certify_global
from lipspline.certificates.lower_bounds import empirical_lower_bound, jacobian_lower_bound
from lipspline.certificates.partition import DOMAIN_MAX_DIM, domain_bound
from lipspline.certificates.served_map import ARITHMETIC, ServedMap


class LowerBounds(BaseModel):
    """Lower bounds of the true constant: observed difference quotients and Jacobian norms."""

    empirical: float | None = None
    jacobian: float | None = None


class CertificateReport(BaseModel):
    """The stored certificate of a model. The true constant lies in ``[best_lower_bound, certified]``.

    Unknown keys are ignored when reading, so documents stored by older versions still load.
    """

    model_config = ConfigDict(extra="ignore")

    topology: str = "l2"
    bounds: dict[str, float | None] = Field(default_factory=dict)
    certified: float | None = None
    certified_by: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    skipped: dict[str, str] = Field(default_factory=dict)
    other_norms: dict[str, float | None] = Field(default_factory=dict)
    p: float = 2.0
    notes: list[str] = Field(default_factory=list)
    lower_bounds: LowerBounds = Field(default_factory=LowerBounds)
    best_lower_bound: float | None = None
    tightness: float | None = None
    ratios: dict[str, float | None] = Field(default_factory=dict)
    #: which function these numbers are about: the service checks it against the map it serves
    served_map_sha256: str | None = None
    arithmetic: str | None = None
    #: a bound valid only for pairs of points in the box of the certified inputs (``domain_bound``:
    #: ``{"domain": {"lo", "hi"}, "certified", ...}``), reported beside ``certified`` and never in its
    #: place: served radii and tolerances are about balls that may leave that box, so they use ``certified``
    domain: dict | None = None
    #: ``domain["certified"] / best_lower_bound`` (the lower bounds may come from points outside the box)
    domain_tightness: float | None = None

    def to_json(self) -> dict:
        """The JSON document stored in the database."""
        return self.model_dump(mode="json")


def certificate_report(
    network: nn.Module,
    inputs: torch.Tensor | np.ndarray,
    *,
    include_lipsdp: bool = False,
    lipsdp_time_limit_s: float = 120.0,
    max_pairs: int = 4096,
    jacobian_points: int = 256,
    ascent_steps: int = 20,
    domain_time_s: float = 1.0,
) -> CertificateReport:
    """Global certificate + empirical and Jacobian lower bounds + ``tightness = certified / best lower``.

    Users see how far the certificate can be from the truth: the true constant
    lies in ``[best lower, certified]``. With ``domain_time_s > 0``, at least one input row
    and at most ``DOMAIN_MAX_DIM`` features, the bound on the inputs' box
    (``partition.domain_bound``) is added as ``domain``, stating its box; ``certified``
    stays the global bound.
    """
    x = np.asarray(inputs.detach().cpu() if isinstance(inputs, torch.Tensor) else inputs, dtype=np.float64)
    served = ServedMap(network)
    cert = certify_global(network, include_lipsdp=include_lipsdp, lipsdp_time_limit_s=lipsdp_time_limit_s)
    empirical = empirical_lower_bound(served, x, max_pairs=max_pairs)
    jacobian = jacobian_lower_bound(served, x[:jacobian_points], ascent_steps=ascent_steps)
    lower = max(empirical, jacobian)
    glob = cert.to_json()
    finite = math.isfinite(cert.certified)
    domain = None
    if domain_time_s > 0 and x.ndim == 2 and x.shape[0] >= 1 and x.shape[1] <= DOMAIN_MAX_DIM and np.isfinite(x).all():
        domain = domain_bound(network, x.min(axis=0), x.max(axis=0), time_s=domain_time_s).to_json()
    dom_value = domain["certified"] if domain is not None else None
    return CertificateReport(
        **glob,
        lower_bounds=LowerBounds(empirical=empirical, jacobian=jacobian),
        best_lower_bound=lower,
        tightness=cert.certified / lower if lower > 0 and finite else None,
        ratios={k: (v / lower if lower > 0 and v is not None else None) for k, v in glob["bounds"].items()},
        served_map_sha256=served.fingerprint,
        arithmetic=ARITHMETIC,
        domain=domain,
        domain_tightness=dom_value / lower if dom_value is not None and lower > 0 else None,
    )
