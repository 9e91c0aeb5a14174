"""Paper 004's kinds of Lipschitz constant, side by side on the models the other recipes trained.

Paper 004 contrasts, for AlexNet, an analytical estimate (a product of norms,
2.51e3), the empirical constant over pairs of samples (7.32e-3) and the
largest local constant (the Jacobian's norm, 1.44). Here the same three kinds
are measured on every model ``circle``, ``noise`` and ``one_lipschitz`` kept
(``ctx.keep_model``), with every analytical bound the certificates know by
name (docs/design.md#bounds), so the table shows how loose each kind is and which one
the certificate ends up using.

Soundness is checked as the table is built, not only in the tests: every
analytical bound (each is a valid upper bound, not only their minimum) must
be at least the largest lower bound found, and for one-input networks the
exact constant (``exact_lipschitz_1d``) must lie between them. A violation
means an unsound certificate and stops the recipe.

A recipe with no kept model in ``ctx.work_dir`` is run first, in the same
mode, through the runner (so its own section of results.md is written too and
describes exactly the models measured here).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from lipspline.certificates import (
    analyze,
    certify_global,
    empirical_lower_bound,
    exact_lipschitz_1d,
    jacobian_lower_bound,
)
from lipspline.certificates.global_bounds import BOUND_NAMES
from lipspline.experiments.context import ExperimentContext, KeptModel, RecipeResult
from lipspline.experiments.tables import Table

TITLE = "Kinds of Lipschitz constant (paper 004): analytical bounds, empirical and local lower bounds"

SOURCES: tuple[str, ...] = ("circle", "noise", "one_lipschitz")

#: the analytical bounds, in the order of docs/design.md#bounds (certify_global's names)
ANALYTICAL: tuple[str, ...] = BOUND_NAMES

#: pairs of data points for the empirical bound: all of them up to this many, else a random subsample
MAX_PAIRS = 500_000

#: relative slack when comparing two float64 evaluations of the same piecewise-linear map
#: (the exact 1-D constant and a Jacobian at a point are both rounded, neither is a bound)
FLOAT_SLACK = 1e-9


@dataclass(frozen=True)
class Settings:
    lipsdp_time_limit_s: float
    jacobian_points: int
    ascent_steps: int


def settings_for(ctx: ExperimentContext) -> Settings:
    """Quick mode searches fewer Jacobian starts and gives LipSDP less time; the bounds are the same."""
    if ctx.quick:
        return Settings(lipsdp_time_limit_s=10.0, jacobian_points=128, ascent_steps=10)
    return Settings(lipsdp_time_limit_s=120.0, jacobian_points=256, ascent_steps=20)


@dataclass
class Measured:
    """Every kind of constant measured on one kept model."""

    kept: KeptModel
    hidden_units: int
    bounds: dict[str, float]
    skipped: dict[str, str]
    certified: float
    certified_by: str
    empirical: float
    jacobian: float
    exact: float | None
    lipsdp_seconds: float | None
    seconds: float
    pairs: int
    notes: list[str] = field(default_factory=list)

    @property
    def best_lower(self) -> float:
        return max(self.empirical, self.jacobian)

    @property
    def tightness(self) -> float | None:
        lower = self.best_lower
        return self.certified / lower if lower > 0 and math.isfinite(self.certified) else None


def _ensure_kept(ctx: ExperimentContext) -> tuple[dict[str, list[KeptModel]], list[str]]:
    """The kept models of each source recipe, running a recipe first if it kept none."""
    from lipspline.experiments import recipe_module
    from lipspline.experiments.runner import run_recipe

    kept: dict[str, list[KeptModel]] = {}
    notes: list[str] = []
    for name in SOURCES:
        models = ctx.kept_models(name)
        if not models:
            try:
                recipe_module(name)
            except ModuleNotFoundError as error:
                # a recipe that does not exist yet cannot be measured; say so instead of failing the others
                notes.append(f"{name}: no kept models and the recipe cannot be imported ({error}); not measured")
                kept[name] = []
                continue
            ctx.log(f"[bound_kinds] no kept models of {name} in {ctx.work_dir}; running it first")
            run_recipe(name, ctx)
            models = ctx.kept_models(name)
            notes.append(f"{name}: run by bound_kinds ({'quick' if ctx.quick else 'full'} mode) to get its models")
            if not models:
                notes.append(f"{name}: ran, but kept no models")
        kept[name] = models
    return kept, notes


def _jacobian_starts(inputs: np.ndarray, count: int) -> np.ndarray:
    """A fixed random subset of the data points (inputs may be sorted, e.g. a 1-D grid)."""
    if inputs.shape[0] <= count:
        return inputs
    pick = np.random.default_rng(0).choice(inputs.shape[0], size=count, replace=False)
    return inputs[np.sort(pick)]


def measure(kept: KeptModel, settings: Settings) -> Measured:
    """All analytical bounds, LipSDP where it runs, both lower bounds, and the exact value for 1-D inputs."""
    began = time.perf_counter()
    network = kept.model.network
    inputs = np.asarray(kept.inputs, dtype=np.float64).reshape(kept.inputs.shape[0], -1)
    cert = certify_global(network, include_lipsdp=True, lipsdp_time_limit_s=settings.lipsdp_time_limit_s)
    lipsdp_ms = cert.timings_ms.get("lipsdp_neuron")
    n = inputs.shape[0]
    empirical = empirical_lower_bound(network, inputs, max_pairs=MAX_PAIRS)
    jacobian = jacobian_lower_bound(
        network, _jacobian_starts(inputs, settings.jacobian_points), ascent_steps=settings.ascent_steps
    )
    exact = None
    if int(network.n_features) == 1 and not int(getattr(network, "n_conv", 0)):
        exact = exact_lipschitz_1d(network)
    hidden = int(analyze(network).view.hidden_units)  # cached by certify_global above
    measured = Measured(
        kept=kept,
        hidden_units=hidden,
        bounds=dict(cert.bounds),
        skipped=dict(cert.skipped),
        certified=cert.certified,
        certified_by=cert.certified_by,
        empirical=empirical,
        jacobian=jacobian,
        exact=exact,
        lipsdp_seconds=None if lipsdp_ms is None else lipsdp_ms / 1e3,
        seconds=time.perf_counter() - began,
        pairs=min(n * (n - 1) // 2, MAX_PAIRS),
    )
    check_invariants(measured)
    return measured


def check_invariants(m: Measured) -> None:
    """Certified ≥ every lower bound, every analytical bound ≥ the best lower bound, exact in between."""
    where = f"{m.kept.recipe}/{m.kept.label}"
    lower = m.best_lower
    if not m.certified >= lower:
        raise RuntimeError(f"{where}: certified {m.certified} < lower bound {lower} (unsound certificate)")
    for name, value in m.bounds.items():
        if not value >= lower:
            raise RuntimeError(f"{where}: bound {name} = {value} < lower bound {lower} (unsound)")
    if m.exact is not None:
        if not m.certified >= m.exact:
            raise RuntimeError(f"{where}: certified {m.certified} < exact constant {m.exact} (unsound)")
        if lower > m.exact * (1 + FLOAT_SLACK):
            raise RuntimeError(f"{where}: lower bound {lower} > exact constant {m.exact}")


def build_table(measured: list[Measured]) -> Table:
    """One row per model: each analytical bound by name, the certified minimum, the lower bounds, tightness."""
    columns = ["recipe", "model", "hidden units", *ANALYTICAL, "certified", "certified by", "empirical (pairs)",
               "local (Jacobian)", "exact (1-D)", "tightness", "LipSDP s"]
    table = Table("Table 1: Lipschitz constant of each kept model, by kind (ℓ2, raw inputs → outputs)", columns)
    for m in measured:
        table.add(
            m.kept.recipe,
            m.kept.label,
            m.hidden_units,
            *[m.bounds.get(name) for name in ANALYTICAL],
            m.certified,
            m.certified_by,
            m.empirical,
            m.jacobian,
            m.exact,
            m.tightness,
            m.lipsdp_seconds,
        )
    table.notes += [
        "analytical bounds (docs/design.md#bounds): bv2_mixed (paper 000 Thm 1, p = 2), frobenius (paper 000 Prop 3), "
        "spectral_product (paper 002/004), per_neuron_scaled, liplt (loop transformation), liplt_scaled "
        "(LipLT with searched per-neuron scalings), partition (1-2 inputs), lipsdp_layerwise (LipSDP-Neuron "
        "multipliers chosen layer by layer, proven on the whole program), lipsdp_neuron (semidefinite program, "
        "answer verified); "
        "certified = the smallest of them",
        "empirical: max ‖f(x) − f(y)‖/‖x − y‖ over pairs of the model's training inputs; local: the largest "
        "Jacobian norm found at data points and by a hill climb from them; exact: the true constant, computable "
        "only for one-input networks",
        "tightness = certified / max(empirical, local); the true constant lies in [max lower, certified]",
        "— : bound not applicable or not computed (reasons below)",
    ]
    reasons = {}
    for m in measured:
        for name, why in m.skipped.items():
            reasons.setdefault(f"{name}: {why}", []).append(f"{m.kept.recipe}/{m.kept.label}")
    for reason, where in reasons.items():
        table.notes.append(f"skipped {reason} ({', '.join(where)})")
    return table


def summary_table(measured: list[Measured]) -> Table:
    """Paper 004's three rows, as ratios to the best lower bound (median and range over the models)."""
    table = Table(
        "Table 2: each kind relative to the best lower bound, over all kept models (paper 004's comparison)",
        ["kind", "median ratio", "min ratio", "max ratio", "models"],
    )
    kinds: dict[str, list[float]] = {}
    for m in measured:
        lower = m.best_lower
        if lower <= 0:
            continue
        for name in ANALYTICAL:
            value = m.bounds.get(name)
            if value is not None and math.isfinite(value):
                kinds.setdefault(f"analytical: {name}", []).append(value / lower)
        kinds.setdefault("certified (smallest analytical)", []).append(m.certified / lower)
        kinds.setdefault("empirical (pairs of data points)", []).append(m.empirical / lower)
        kinds.setdefault("local (largest Jacobian norm)", []).append(m.jacobian / lower)
    for kind, ratios in kinds.items():
        table.add(kind, float(np.median(ratios)), min(ratios), max(ratios), len(ratios))
    table.notes.append("a ratio of 1 is the best lower bound itself; analytical ratios ≥ 1 by soundness")
    return table


def run(ctx: ExperimentContext) -> RecipeResult:
    """Measure every kept model (running the source recipes first where needed) and tabulate."""
    settings = settings_for(ctx)
    kept, notes = _ensure_kept(ctx)
    began = time.perf_counter()
    measured: list[Measured] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: a second intra-op thread only adds synchronisation
    try:
        for name in SOURCES:
            for model in kept[name]:
                m = measure(model, settings)
                measured.append(m)
                ctx.log(
                    f"[bound_kinds] {name}/{model.label}: certified {m.certified:.4g} by {m.certified_by}, "
                    f"lower {m.best_lower:.4g}, {m.seconds:.1f} s"
                )
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - began
    choices = notes + [
        f"models: those kept by {', '.join(SOURCES)} in {ctx.work_dir} ({len(measured)} in all)",
        f"empirical bound over all pairs of a model's training inputs (a random {MAX_PAIRS:,} when there are more)",
        f"Jacobian search from {settings.jacobian_points} of those inputs (a fixed random subset), "
        f"{settings.ascent_steps} hill-climb steps",
        f"LipSDP-Neuron attempted on every model, with a {settings.lipsdp_time_limit_s:g} s limit; networks over "
        "200 hidden units or with non-element-wise activations (GroupSort) are skipped with the solver's reason",
        f"measuring took {seconds:.1f} s (not counting any recipe run first)",
    ]
    tables = [build_table(measured), summary_table(measured)] if measured else [build_table(measured)]
    return RecipeResult("bound_kinds", TITLE, tables, [], choices)


__all__ = ["ANALYTICAL", "SOURCES", "TITLE", "Measured", "check_invariants", "measure", "run"]
