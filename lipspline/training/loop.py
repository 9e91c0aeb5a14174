"""The training loop: ``fit(dataset, config)`` -> a trained, servable model.

Design points and why:

- Reproducibility: the seed fixes the initial weights (global torch RNG right
  before the network is built), the train/validation split (numpy RNG) and the
  batch order (a dedicated ``torch.Generator``). The spline kernel accumulates
  gradients in a fixed order, so the same seed on CPU gives identical weights.
- Defaults that converge (docs/design.md#training-defaults): ``training_plan``
  turns the config into limits for this dataset (the step-budget rule, patience),
  ``convergence`` watches the monitored loss (early stopping, best epoch, the
  plateau schedule's lr scale), ``lr_schedule`` sets each epoch's lr, and
  ``spline_range`` places each spline layer's grid where the pre-activations of
  the freshly initialised network are.
- Checkpoint/resume: a checkpoint holds the model and optimizer state, the
  objective's lambdas, the epoch, the history, the convergence monitor, the best
  epoch's weights and both RNG states, written
  without pickle (safetensors + JSON metadata) and atomically (temp file +
  rename). A run resumed from epoch k ends with the same weights as an
  uninterrupted one, because every source of randomness resumes exactly.
- Cooperative stop: ``should_stop`` is polled every
  ``training.stop_check_every`` optimizer steps, so a cancel takes effect well
  within one epoch without the loop ever being killed mid-update.
- Loss terms are accumulated as tensors and read once per epoch, so a CUDA run
  does not synchronise on every step.
- Training for a certified radius (docs/design.md#margin-losses): a margin loss asks for the
  logit margin a certificate at radius r needs, scaled each step by the network's Lipschitz
  bound (exactly 1 for 1-Lipschitz networks); with ``training.monitor`` at
  ``certified_accuracy`` the best epoch is the one certifying most validation rows at
  ``robustness.target_radius`` (the latest of equals), not the one with the lowest loss.
- The loop knows no objective mode by name: it asks the mode's strategy
  (``lipspline.objectives``) whether the data need isotropic scaling, and runs
  its penalties and hooks, so a new mode needs no change here.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from api_schemas import TrainingConfig
from api_schemas.training_config import MARGIN_LOSSES
from lipspline.data import Dataset, Scaling
from lipspline.nn.label_rule import label_of
from lipspline.nn.model import TrainedModel
from lipspline.nn.networks import SplineNetwork, output_width
from lipspline.nn.spline_range import covering_ranges, out_of_grid_fractions, out_of_grid_warnings
from lipspline.objectives import Objective, data_loss, objective_for, resolve_loss
from lipspline.objectives.losses import MarginSpec, certified_fraction
from lipspline.objectives.strategy import ObjectiveStrategy
from lipspline.training.config_checks import check_config
from lipspline.training.convergence import ConvergenceMonitor, StopReason
from lipspline.training.data import InMemoryData, RawRows, TrainingData
from lipspline.training.lr_schedule import lr_factor
from lipspline.training.plan import TrainingPlan, plan_training
from lipspline.training.robust_accuracy import classification_scale
from lipspline.training.weight_average import WeightAverage

EVAL_CHUNK = 8192

#: auto temperature of the margin losses on 1-Lipschitz networks: tau = this / d, d the median
#: distance (standardised units) from a training point to the nearest point of another class.
#: Such a network's logit gaps are at most sqrt(2) times input distances, so tau d fixes how
#: sharp the softmax is at the data's own scale; chosen on selection splits
#: (bench/select_target_radius.py, docs/design.md#target-radius).
ONE_LIPSCHITZ_TEMPERATURE_SCALE = 16.0
#: the margin losses train for this multiple of robustness.target_radius when objective.margin is unset: a
#: margin met on the training rows shrinks on unseen ones, so asking for 1.5 r leaves room. On the selection
#: splits it certified as many or more points at r on all five tasks than a margin of r, and more at 2 r,
#: with no loss of clean accuracy (2 r certified more still but lost 3-4 points of clean accuracy on two).
TARGET_MARGIN_FACTOR = 1.5
#: the hkr loss's margin when neither objective.margin nor a target radius gives one: d / 8
HKR_DEFAULT_MARGIN_FRACTION = 1 / 8


@dataclass(frozen=True)
class MarginPlan:
    """How a run uses margins: the loss's spec, and the target the monitor counts (None: no target)."""

    loss: MarginSpec
    monitor: MarginSpec | None
    #: the standardised network's Lipschitz constant when the mode fixes it, else None (estimated per step)
    lipschitz: float | None
    #: whether anything reads the bound: a loss with a margin, or the monitor. Otherwise no step pays
    #: for the estimate (a product of SVDs) that a plain cross-entropy run would only throw away
    needs_bound: bool = False

    def bound(self, network: SplineNetwork) -> Tensor | float:
        if not self.needs_bound or self.lipschitz is not None:
            return 1.0 if self.lipschitz is None else self.lipschitz
        return network.lipschitz_estimate()


def plan_margins(
    config: TrainingConfig, strategy: ObjectiveStrategy, scaling: Scaling, x_train: Tensor, y_train: Tensor,
    n_outputs: int, task: str, loss_name: str,
) -> MarginPlan:
    """Resolve the margin losses' radius and temperature, and the monitor's target, for this data.

    Radii are given in raw input units; a raw step of length r moves the standardised input by
    at most ``r / min(input_scale)``, so that is the radius in the units the network sees.
    ``loss_name`` is the resolved loss (``resolve_loss``: ``auto`` already replaced).
    """
    objective, robust = config.objective, config.robustness
    factor = 1.0 if n_outputs == 1 else math.sqrt(2.0)
    to_standard = 1.0 / float(np.min(scaling.input_scale))
    fixed = strategy.lipschitz_by_construction
    if task != "classification":
        return MarginPlan(MarginSpec(factor=factor), None, fixed)
    margin_loss = loss_name in ("lipschitz_margin", "hkr")
    # the data's scale sets the auto temperature of a margin loss on a 1-Lipschitz network, and hkr's
    # default margin; other runs never read it, so they do not pay its pairwise distances
    auto_temperature = loss_name in MARGIN_LOSSES and objective.temperature is None and fixed is not None
    needs_scale = auto_temperature or (loss_name == "hkr" and objective.margin is None and robust.target_radius is None)
    scale = 0.0
    if needs_scale:
        scale = classification_scale(x_train[:4096].double().cpu().numpy(), y_train[:4096].cpu().numpy())
    margin = objective.margin
    if margin is None and robust.target_radius is not None:
        margin = TARGET_MARGIN_FACTOR * robust.target_radius
    if margin is None:
        margin = HKR_DEFAULT_MARGIN_FRACTION * scale / to_standard if loss_name == "hkr" else 0.0
    temperature = objective.temperature
    if temperature is None:
        temperature = ONE_LIPSCHITZ_TEMPERATURE_SCALE / scale if auto_temperature and scale > 0 else 1.0
    loss = MarginSpec(margin * to_standard, float(temperature), objective.hkr_alpha, factor)
    watch = config.training.monitor
    target = robust.target_radius
    monitor = None
    if target is not None and watch in ("auto", "certified_accuracy"):
        monitor = MarginSpec(target * to_standard, factor=factor)
    return MarginPlan(loss, monitor, fixed, needs_bound=monitor is not None or (margin_loss and loss.radius > 0))


@dataclass
class EpochReport:
    """What the per-epoch callback receives (and the history stores).

    ``improved`` marks an epoch whose monitored loss was the best so far; the served epoch
    (with ``restore_best``) is the last such epoch, which the run's outcome names as
    ``best_epoch``. ``lr`` is the weights' learning rate during the epoch.
    """

    epoch: int
    epochs: int
    losses: dict[str, float]
    train_metrics: dict[str, float]
    validation_metrics: dict[str, float]
    elapsed_s: float
    lambdas: list[float] = field(default_factory=list)
    lr: float | None = None
    improved: bool = False

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class TrainingOutcome:
    """How a run ended and what it serves: why it stopped, which epoch, and how well the grids fit."""

    stop_reason: StopReason
    epochs_run: int
    epochs_planned: int
    best_epoch: int | None  # the epoch of lowest monitored loss (None if no epoch finished)
    served_epoch: int | None  # best_epoch with restore_best, else the last epoch
    #: what early stopping and the plateau schedule watch: "validation" or "training" (the loss),
    #: or "validation_certified_accuracy" (at robustness.target_radius)
    monitor: str
    spline_ranges: list[float]  # the grid half-width of each spline layer
    out_of_grid_fraction: list[float]  # per spline layer, share of training pre-activations off the grid
    warnings: list[str] = field(default_factory=list)
    #: the data loss the run minimised: objective.loss with ``auto`` resolved (``resolve_loss``), so a
    #: user reads what the defaults chose (tau_cross_entropy for a 1-Lipschitz classifier, ...)
    loss: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    model: TrainedModel
    history: list[EpochReport]
    stopped: bool  # cancelled through should_stop (no model should be served)
    device: str
    scaling: Scaling
    outcome: TrainingOutcome


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but no CUDA device is available on this worker")
    return torch.device(requested)


def build_network(config: TrainingConfig, dataset: Dataset | TrainingData, scaling: Scaling) -> SplineNetwork:
    """A fresh network for the dataset; its initial weights come from the config's seed."""
    torch.manual_seed(config.training.seed)
    n_classes = len(dataset.classes) if dataset.classes is not None else None
    return SplineNetwork(
        config,
        dataset.n_features,
        output_width(dataset.task, n_classes),
        input_mean=torch.tensor(np.array(scaling.input_mean), dtype=torch.float64),
        input_scale=torch.tensor(np.array(scaling.input_scale), dtype=torch.float64),
        target_mean=scaling.target_mean,
        target_scale=scaling.target_scale,
    )


def _make_optimizer(network: SplineNetwork, config: TrainingConfig) -> torch.optim.Optimizer:
    loop = config.training
    groups = [{"params": network.weight_parameters(), "lr": loop.lr}]
    spline_params = network.spline_parameters()
    if spline_params:
        groups.append({"params": spline_params, "lr": config.spline.lr or loop.lr})
    if loop.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=loop.lr, momentum=loop.momentum)
    # Not fused=True, though the fused CPU Adam steps a small net 3-4x faster: it updates the
    # parameters without bumping their version counters, which the served-weight caches of the
    # 1-Lipschitz layers and splines key on (``lipspline.nn.layers``). Measured: a one_lipschitz
    # run then validated stale weights every epoch, its lr schedule and restore_best followed
    # them, and it served epoch 3's weights (two moons 76.5 % instead of 99 %). foreach=True is
    # within the noise on the service's small nets (-4 % per step on a 784-256-256-10 net, 1 thread).
    return torch.optim.Adam(groups, lr=loop.lr)


@torch.no_grad()
def evaluate(
    network: SplineNetwork, x: Tensor, y: Tensor, task: str, loss_name: str, target_scale: float,
    margins: MarginPlan | None = None,
) -> dict:
    """Loss and task metrics on standardised tensors (regression errors in target units).

    With a monitored target radius (``margins.monitor``), also ``certified_accuracy_at_target``:
    the share of rows correct with the margin the certificate at that radius needs.
    """
    if x.shape[0] == 0:
        return {}
    was_training = network.training
    network.eval()
    outputs = torch.cat([network.forward_standardized(x[i : i + EVAL_CHUNK]) for i in range(0, x.shape[0], EVAL_CHUNK)])
    lipschitz = float(margins.bound(network)) if margins is not None else 1.0
    network.train(was_training)
    spec = margins.loss if margins is not None else None
    metrics = {"loss": float(data_loss(loss_name, outputs, y, spec, lipschitz))}
    if task == "classification":
        predicted = label_of(outputs)
        metrics["accuracy"] = float((predicted == y).double().mean())
        if margins is not None and margins.monitor is not None:
            metrics["certified_accuracy_at_target"] = certified_fraction(outputs, y, margins.monitor, lipschitz)
    else:
        error = (outputs.squeeze(-1) - y).double() * target_scale
        metrics["mse"] = float((error**2).mean())
        metrics["mae"] = float(error.abs().mean())
    return metrics


def resolve_spline_ranges(config: TrainingConfig, network: SplineNetwork, x_train: Tensor) -> TrainingConfig:
    """The config with every spline layer's range fixed: as given, or by the covering-range rule.

    ``network`` is the freshly initialised network (built unresolved); the config returned
    builds the same weights (same seed) with the chosen grids, and is the one the trained
    model carries, so the saved model rebuilds exactly.
    """
    spline = config.spline
    if config.architecture.activation != "deepspline" or spline.layer_ranges is not None:
        return config
    if spline.range is not None:
        ranges = [spline.range] * len(network.activations)
    else:
        ranges = covering_ranges(network, x_train)
    return config.model_copy(update={"spline": spline.model_copy(update={"layer_ranges": ranges})})


@dataclass
class _Run:
    """One training run's state between its steps (``fit`` = setup, epochs, finish)."""

    data: TrainingData
    config: TrainingConfig
    device: torch.device
    scaling: Scaling
    network: SplineNetwork
    plan: TrainingPlan
    objective: Objective
    optimizer: torch.optim.Optimizer
    base_lrs: list[float]
    loss_name: str
    margins: MarginPlan
    watch_certified: bool
    shuffle: torch.Generator
    monitor: ConvergenceMonitor
    lr_monitor: ConvergenceMonitor
    history: list[EpochReport] = field(default_factory=list)
    best_state: dict[str, Tensor] | None = None
    start_epoch: int = 0
    step: int = 0
    #: ``training.ema_decay``: the averaged weights are the ones validated, monitored and served
    average: WeightAverage | None = None


def _setup(
    data: TrainingData, config: TrainingConfig, checkpoint_path: str | Path | None, resume: bool,
    epoch_cap: int | None,
) -> _Run:
    """Scaling, spline grids, network, optimizer, margins and monitors; restored from the checkpoint if asked."""
    loop = config.training
    device = resolve_device(config.device)
    # a mode that bounds the Lipschitz constant (e.g. one_lipschitz) needs one common scale, or
    # the served (raw-unit) map would not keep the network's bound
    isotropic = objective_for(config.objective).isotropic_scaling
    scaling = data.fit_scaling(isotropic=isotropic)
    data.prepare(scaling, device)
    x_sample, y_sample = data.train_sample()
    config = resolve_spline_ranges(config, build_network(config, data, scaling).to(device), x_sample)
    network = build_network(config, data, scaling).to(device)
    objective = Objective(config.objective, network)
    optimizer = _make_optimizer(network, config)
    plan = plan_training(loop, data.n_train, data.n_validation, epoch_cap)
    fixed = objective.strategy.lipschitz_by_construction is not None
    loss_name = resolve_loss(config.objective.loss, data.task, network.n_outputs, lipschitz_fixed=fixed)
    margins = plan_margins(
        config, objective.strategy, scaling, x_sample, y_sample, network.n_outputs, data.task, loss_name
    )
    run = _Run(
        data=data, config=config, device=device, scaling=scaling, network=network, plan=plan, objective=objective,
        optimizer=optimizer, base_lrs=[group["lr"] for group in optimizer.param_groups],
        loss_name=loss_name, margins=margins,
        watch_certified=margins.monitor is not None and plan.monitor == "validation",
        shuffle=torch.Generator().manual_seed(loop.seed),
        monitor=ConvergenceMonitor(plan.patience, plan.plateau_patience, loop.min_improvement),
        # Watching certified accuracy, the lr still follows the validation loss: certified accuracy
        # moves in steps and stalls while the margins are still growing, and halving the lr on those
        # stalls froze 1-Lipschitz runs before they had fitted (two moons: 85 % clean, not 97 %).
        lr_monitor=ConvergenceMonitor(plan.patience, plan.plateau_patience, loop.min_improvement),
    )
    if loop.ema_decay is not None:
        run.average = WeightAverage(network, loop.ema_decay)
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        restored = load_checkpoint(checkpoint_path, network, optimizer, run.objective, run.shuffle, run.average)
        run.start_epoch, run.history, run.best_state = restored.epoch, restored.history, restored.best_state
        if restored.monitor is not None:
            run.monitor = restored.monitor
        if restored.lr_monitor is not None:
            run.lr_monitor = restored.lr_monitor
    return run


def _train_epoch(run: _Run, epoch: int, should_stop: Callable[[], bool] | None) -> dict[str, float] | None:
    """One pass of optimizer steps; the mean of each loss term, or None when ``should_stop`` ended it."""
    loop, network, optimizer, objective = run.config.training, run.network, run.optimizer, run.objective
    lr_scale = run.lr_monitor.lr_scale if run.watch_certified else run.monitor.lr_scale
    factor = lr_factor(loop.lr_schedule, epoch, run.plan.epochs, loop.warmup_epochs, lr_scale)
    for group, base in zip(optimizer.param_groups, run.base_lrs, strict=True):
        group["lr"] = base * factor
    objective.on_epoch_start(network)
    sums: dict[str, Tensor] = {}
    batches = 0
    for x_batch, y_batch in run.data.epoch_batches(loop.batch_size, run.shuffle):
        outputs = network.forward_standardized(x_batch)
        terms = {"data": data_loss(run.loss_name, outputs, y_batch, run.margins.loss, run.margins.bound(network))}
        terms.update(objective.penalties(network))
        total = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        objective.after_step(network)
        if run.average is not None:
            run.average.update()
        terms["total"] = total
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.detach()
        batches += 1
        run.step += 1
        if should_stop is not None and run.step % loop.stop_check_every == 0 and should_stop():
            return None
    return {name: float(value) / batches for name, value in sums.items()}


def _record_epoch(run: _Run, epoch: int, losses: dict[str, float], began: float) -> EpochReport:
    """Validate, let the monitors judge the epoch, keep the best weights; the epoch's report.

    With a weight average the averaged weights are the epoch's model: validated, judged and kept.
    """
    with run.average.applied() if run.average is not None else nullcontext():
        return _judge_epoch(run, epoch, losses, began)


def _judge_epoch(run: _Run, epoch: int, losses: dict[str, float], began: float) -> EpochReport:
    loop, data, network = run.config.training, run.data, run.network
    x_val, y_val = data.validation()
    target_scale = run.scaling.target_scale
    validation_metrics = evaluate(network, x_val, y_val, data.task, run.loss_name, target_scale, run.margins)
    plateau = loop.lr_schedule == "plateau"
    if run.watch_certified:
        # certified error: the epoch that certifies most validation rows at the target is the best
        monitored = 1.0 - validation_metrics["certified_accuracy_at_target"]
        run.lr_monitor.record(epoch + 1, validation_metrics["loss"], plateau=plateau)
        plateau = False
    else:
        monitored = validation_metrics["loss"] if run.plan.monitor == "validation" else losses["total"]
    # certified accuracy moves in steps of one validation row: of the epochs at the best level, serve the latest
    improved = run.monitor.record(epoch + 1, monitored, plateau=plateau, ties_win=run.watch_certified)
    if improved and run.plan.restore_best:
        run.best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    x_sample, y_sample = data.train_sample()
    report = EpochReport(
        epoch=epoch + 1,
        epochs=run.plan.epochs,
        losses=losses,
        train_metrics=evaluate(network, x_sample, y_sample, data.task, run.loss_name, target_scale, run.margins),
        validation_metrics=validation_metrics,
        elapsed_s=time.perf_counter() - began,
        lambdas=list(run.objective.lambdas) if run.config.objective.auto_lambda else [],
        lr=run.optimizer.param_groups[0]["lr"],
        improved=improved,
    )
    run.history.append(report)
    return report


def _converged(run: _Run) -> bool:
    """Whether early stopping may end the run: no progress for ``patience`` epochs.

    Watching certified accuracy at a target radius, *both* monitors must have stalled: the
    certified count and the validation margin loss. The count moves in steps of one validation
    row and stalls while the margins are still growing; stopping on it alone ended runs before
    the lr had annealed. Measured against the count alone on one machine: the selection splits'
    medians (bench/select_target_radius.py) did not move on any of the five tasks; on
    bench_robustness's test splits circles and iris certified more at the target (+1.0 and +2.2
    points at d/8) and no task certified less (docs/results.md), for 0-25 s more a run.
    """
    if run.watch_certified:
        return run.monitor.converged and run.lr_monitor.converged
    return run.monitor.converged


def _stop_reason(run: _Run, epoch: int, should_stop: Callable[[], bool] | None) -> StopReason | None:
    """Why the run ends after this epoch, or None to go on."""
    if should_stop is not None and should_stop():
        return "cancelled" if epoch + 1 < run.plan.epochs else "max_epochs"
    if run.plan.early_stopping and _converged(run):
        return "converged"
    limit = run.config.training.time_limit_s
    if limit is not None and sum(r.elapsed_s for r in run.history) >= limit:
        return "time_limit"
    return None


def fit(
    dataset: Dataset | TrainingData,
    config: TrainingConfig,
    *,
    callback: Callable[[EpochReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    epoch_cap: int | None = None,
) -> FitResult:
    """Train a network on ``dataset`` as ``config`` says; resume from the checkpoint if asked.

    ``dataset`` is held in memory (a :class:`Dataset`) or streamed (a
    :class:`~lipspline.training.data.StreamedData`): the loop is the same.
    ``epoch_cap`` caps the automatic epoch limit (``training.epochs`` unset), e.g. at a
    deployment's most epochs per job.

    The run ends at the plan's epoch limit (``max_epochs``), when early stopping sees no
    improvement for ``patience`` epochs (``converged``), past ``time_limit_s``
    (``time_limit``) or when ``should_stop`` says so (``cancelled``). Unless cancelled, the
    model returned is the best monitored epoch's with ``restore_best`` (and a validation
    split), else the last epoch's.
    """
    data = dataset if isinstance(dataset, TrainingData) else None
    if data is None:
        data = InMemoryData(dataset, config.training.validation_split, config.training.seed)
    check_config(config, data.task)
    run = _setup(data, config, checkpoint_path, resume, epoch_cap)
    stop_reason: StopReason = "max_epochs"
    run.network.train()
    for epoch in range(run.start_epoch, run.plan.epochs):
        began = time.perf_counter()
        losses = _train_epoch(run, epoch, should_stop)
        if losses is None:
            stop_reason = "cancelled"
            break
        report = _record_epoch(run, epoch, losses, began)
        if checkpoint_path is not None:
            save_checkpoint(
                checkpoint_path, run.network, run.optimizer, run.objective, run.shuffle, epoch + 1, run.history,
                run.monitor, run.best_state, run.lr_monitor if run.watch_certified else None, run.average,
            )
        if callback is not None:
            callback(report)
        reason = _stop_reason(run, epoch, should_stop)
        if reason is not None:
            stop_reason = reason
            break
    return _finish(run, stop_reason)


def _finish(run: _Run, stop_reason: StopReason) -> FitResult:
    """The served weights (the best epoch's unless cancelled), the outcome, and the metrics of the served map."""
    network, history, monitor, data = run.network, run.history, run.monitor, run.data
    served_epoch = history[-1].epoch if history else None
    if stop_reason != "cancelled" and run.plan.restore_best and run.best_state is not None:
        network.load_state_dict(run.best_state)
        served_epoch = monitor.best_epoch
    elif run.average is not None:
        run.average.install()  # the last epoch's model, as it was validated: its average
    fractions = out_of_grid_fractions(network, data.train_sample()[0])
    outcome = TrainingOutcome(
        stop_reason=stop_reason,
        epochs_run=history[-1].epoch if history else 0,
        epochs_planned=run.plan.epochs,
        best_epoch=monitor.best_epoch or None,
        served_epoch=served_epoch,
        monitor=run.plan.monitor if not run.watch_certified else "validation_certified_accuracy",
        spline_ranges=[spline.grid_range for spline in network.splines()],
        out_of_grid_fraction=fractions,
        warnings=out_of_grid_warnings(fractions),
        loss=run.loss_name,
    )
    network.eval()
    model = TrainedModel(
        network=network.cpu(),
        config=run.config,
        task=data.task,
        classes=data.classes,
        feature_names=list(data.feature_names),
    )
    if served_epoch is not None:
        served = history[served_epoch - 1]
        model.metrics = {
            "train": served_metrics(model, data.raw_rows("train"), data.task, served.train_metrics),
            "validation": served_metrics(model, data.raw_rows("validation"), data.task, served.validation_metrics),
            "epochs": outcome.epochs_run,
            "training": outcome.to_json(),
            "warnings": list(outcome.warnings),
        }
    return FitResult(
        model=model,
        history=history,
        stopped=stop_reason == "cancelled",
        device=str(run.device),
        scaling=run.scaling,
        outcome=outcome,
    )


def served_metrics(model: TrainedModel, rows: RawRows, task: str, epoch_metrics: dict) -> dict:
    """The model's reported metrics, measured on what the endpoint will return for the raw rows.

    Per-epoch metrics come from the float32 training graph on standardised data;
    the final ones are recomputed through the served map, so the accuracy a user
    reads is the accuracy the served model has on those rows. The loss stays the
    training graph's (it is an optimisation quantity, not a served one).
    """
    n = rows.n_rows
    if n == 0:
        return dict(epoch_metrics)
    metrics = {"loss": epoch_metrics["loss"]} if "loss" in epoch_metrics else {}
    predicted = np.empty(n)
    for begin in range(0, n, EVAL_CHUNK):
        outputs = model.outputs(rows.chunk(begin, begin + EVAL_CHUNK)).numpy()
        predicted[begin : begin + len(outputs)] = label_of(outputs) if task == "classification" else outputs[:, 0]
    if task == "classification":
        metrics["accuracy"] = float((predicted == rows.targets).mean())
    else:
        error = predicted - rows.targets.astype(np.float64)
        metrics["mse"] = float((error**2).mean())
        metrics["mae"] = float(np.abs(error).mean())
    return metrics


# ---- checkpoints ----------------------------------------------------------------------
@dataclass
class Checkpoint:
    """What a checkpoint restores besides the model, optimizer, objective and RNG states."""

    epoch: int
    history: list[EpochReport]
    monitor: ConvergenceMonitor | None  # None in checkpoints written before early stopping existed
    best_state: dict[str, Tensor] | None
    #: the lr schedule's own monitor when the run watches certified accuracy (None otherwise)
    lr_monitor: ConvergenceMonitor | None = None


def save_checkpoint(
    path: str | Path,
    network: SplineNetwork,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    shuffle: torch.Generator,
    epoch: int,
    history: list[EpochReport],
    monitor: ConvergenceMonitor | None = None,
    best_state: dict[str, Tensor] | None = None,
    lr_monitor: ConvergenceMonitor | None = None,
    average: WeightAverage | None = None,
) -> None:
    tensors: dict[str, Tensor] = {f"model.{k}": v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
    if average is not None:
        tensors.update({f"average.{k}": v for k, v in average.tensors().items()})
    opt_state = optimizer.state_dict()
    for param_id, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{param_id}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = shuffle.get_state()
    meta = {
        "epoch": epoch,
        "param_groups": opt_state["param_groups"],
        "objective": objective.state_dict(),
        "history": [r.to_json() for r in history],
        "convergence": None if monitor is None else monitor.to_json(),
        "lr_convergence": None if lr_monitor is None else lr_monitor.to_json(),
        "average_updates": None if average is None else average.updates,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"checkpoint": json.dumps(meta)})
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(
    path: str | Path,
    network: SplineNetwork,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    shuffle: torch.Generator,
    average: WeightAverage | None = None,
) -> Checkpoint:
    """Restore a run's state in place; what else the run needs comes back as a :class:`Checkpoint`.

    ``average``: the run's weight average, restored from the checkpoint (a checkpoint without one, e.g.
    written by a run without an average, starts it afresh).
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["checkpoint"])
    tensors = load_file(str(path))
    device = next(network.parameters()).device
    network.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, param_id, name = key.split(".", 2)
            state.setdefault(int(param_id), {})[name] = value.to(device) if name != "step" else value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    objective.load_state_dict(meta["objective"])
    torch.set_rng_state(tensors["rng.torch"])
    shuffle.set_state(tensors["rng.shuffle"])
    if average is not None:
        average.restore(
            {k[8:]: v for k, v in tensors.items() if k.startswith("average.")}, meta.get("average_updates") or 0
        )
    convergence = meta.get("convergence")
    return Checkpoint(
        epoch=int(meta["epoch"]),
        history=[EpochReport(**r) for r in meta["history"]],
        monitor=None if convergence is None else ConvergenceMonitor.from_json(convergence),
        lr_monitor=None if meta.get("lr_convergence") is None else ConvergenceMonitor.from_json(meta["lr_convergence"]),
        best_state=best or None,
    )
