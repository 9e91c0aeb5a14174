"""The one TrainingConfig: every field has a default and a checked range.

The API validates submissions against it (errors name the field path), the
worker passes it to the core unchanged, and a saved model carries it, so a
model can always be rebuilt from its own JSON document.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ActivationName = Literal["deepspline", "relu", "leaky_relu", "prelu", "abs", "groupsort"]
ObjectiveMode = Literal["bv2", "tv2", "lipschitz_coupled", "layerwise_spectral", "maxnorm", "one_lipschitz", "none"]
LossName = Literal["auto", "bce", "cross_entropy", "mse", "mae", "tau_cross_entropy", "lipschitz_margin", "hkr"]
#: the losses that ask for a margin between the true logit and the others (classification only)
MARGIN_LOSSES = ("tau_cross_entropy", "lipschitz_margin", "hkr")
OneLipschitzLayer = Literal["auto", "spectral", "bjorck", "aol"]
OneLipschitzConv = Literal["auto", "spectral", "aol"]
LrScheduleName = Literal["plateau", "cosine", "none"]
PositiveRange = Annotated[float, Field(gt=0, le=1e4)]


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in a config must not silently train
    # something else than what was asked for.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ArchitectureConfig(_Strict):
    kind: Literal["mlp", "cnn"] = "mlp"
    # one hidden layer of 64: on the selection splits of the defaults benchmark
    # (docs/design.md#training-defaults) it beat [16, 16] and [32] on digits and Boston and
    # matched them elsewhere
    hidden: list[int] = Field(default_factory=lambda: [64], max_length=32)
    activation: ActivationName = "deepspline"
    conv_channels: list[int] = Field(default_factory=lambda: [8, 16], max_length=8)
    kernel_size: int = Field(3, ge=1, le=11)
    conv_stride: int = Field(2, ge=1, le=4)
    input_shape: tuple[int, int, int] | None = Field(
        None, description="(channels, height, width) of image inputs; required for kind='cnn'"
    )

    @model_validator(mode="after")
    def _check(self) -> ArchitectureConfig:
        if any(w < 1 or w > 65536 for w in self.hidden):
            raise ValueError("hidden widths must be between 1 and 65536")
        if any(c < 1 or c > 4096 for c in self.conv_channels):
            raise ValueError("conv_channels must be between 1 and 4096")
        if self.kind == "cnn" and self.input_shape is None:
            raise ValueError("input_shape (channels, height, width) is required when kind is 'cnn'")
        if self.activation == "groupsort" and any(w % 2 for w in self.hidden):
            raise ValueError("groupsort (MaxMin) needs even hidden widths")
        return self


class SplineConfig(_Strict):
    """The learnable activations' grid.

    ``range`` ``None`` (the default) lets training choose each layer's grid from where the
    freshly initialised network's pre-activations fall on the training data
    (``lipspline.nn.spline_range``); a number fixes one range for every layer, and
    ``layer_ranges`` one per activation layer. A trained model's saved config holds the
    ranges it was trained with in ``layer_ranges``, so it can be rebuilt exactly.
    """

    knots: int = Field(21, ge=3, le=1025)
    range: float | None = Field(
        None, gt=0, le=1e4, description="the grid covers [-range, range]; null: chosen from the data per layer"
    )
    layer_ranges: list[PositiveRange] | None = Field(
        None, max_length=64, description="one range per activation layer (overrides range)"
    )
    init: Literal["relu", "leaky_relu", "identity", "abs"] = "relu"
    lr: float | None = Field(None, gt=0, le=10, description="spline coefficients learning rate (default: training.lr)")


class ObjectiveConfig(_Strict):
    mode: ObjectiveMode = "bv2"
    lambda_: float = Field(1e-4, alias="lambda", ge=0, le=1e6)
    mu: float = Field(1e-4, ge=0, le=1e6, description="weight decay: mu * sum_l ||W_l||_F^2")
    auto_lambda: bool = Field(False, description="set lambda_l from mu by Theorem 4 at each epoch start")
    outer_norm: Literal["l1", "l2"] = "l1"
    max_norm: float = Field(10.0, gt=0, description="MaxNorm radius c of each unit's incoming weights")
    loss: LossName = Field(
        "auto",
        description="auto: cross_entropy (bce for one logit) / mse by task, tau_cross_entropy for 1-Lipschitz "
        "classifiers (one_lipschitz mode: their logits are small); cross_entropy and bce are one loss (one logit: "
        "its binary form); mse and mae are regression losses; the margin losses (classification): "
        "tau_cross_entropy = CE(tau z) / tau; lipschitz_margin = the same with every non-true logit raised by "
        "sqrt(2) L r (the margin a certificate at radius r needs); hkr = hinge (margin sqrt(2) L r) + "
        "Kantorovich-Rubinstein term (docs/design.md#margin-losses)",
    )
    margin: float | None = Field(
        None,
        ge=0,
        le=1e12,
        allow_inf_nan=False,
        description="the l2 radius (raw input units) the margin losses train for; null: 1.5 x "
        "robustness.target_radius, else 0 (lipschitz_margin) or the data's scale d/8 (hkr)",
    )
    temperature: float | None = Field(
        None,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="tau of the margin losses (logits times tau before the softmax); null: 1 for unconstrained "
        "networks, 16 / d for 1-Lipschitz ones (d: the data's median distance to another class)",
    )
    hkr_alpha: float = Field(
        0.9, gt=0, lt=1, description="hkr: weight of the hinge term; 1 - alpha weighs the Kantorovich-Rubinstein term"
    )
    one_lipschitz_layer: OneLipschitzLayer = Field(
        "auto",
        description="one_lipschitz: how a dense layer keeps ||W||_2 <= 1 while it trains: spectral rescaling, "
        "Björck orthonormalisation or AOL rescaling (auto: bjorck)",
    )
    one_lipschitz_conv: OneLipschitzConv = Field(
        "auto",
        description="one_lipschitz: how a convolution keeps its operator norm <= 1: spectral (divided by the sum "
        "of its taps' norms, as models saved before aol existed) or aol (input channels rescaled by the "
        "kernel's autocorrelation; auto: aol, or spectral when one_lipschitz_layer is spectral)",
    )

    def resolved_one_lipschitz_layer(self) -> str:
        return "bjorck" if self.one_lipschitz_layer == "auto" else self.one_lipschitz_layer

    def resolved_one_lipschitz_conv(self) -> str:
        if self.one_lipschitz_conv != "auto":
            return self.one_lipschitz_conv
        return "spectral" if self.one_lipschitz_layer == "spectral" else "aol"


class TrainingLoopConfig(_Strict):
    """How long and how fast to train; the defaults are chosen on evidence (docs/design.md#training-defaults).

    ``epochs`` is the most epochs a run may take; ``None`` sets it from the step-budget rule
    (``lipspline.training.plan``), which gives small datasets enough optimizer steps to
    converge and caps large ones. With a validation split, early stopping ends the run once
    the validation loss has not improved for ``patience`` epochs, and ``restore_best`` serves
    the weights of the best validation epoch.
    """

    epochs: int | None = Field(
        None, ge=1, le=100000, description="most epochs; null: from the step-budget rule (scales with the data)"
    )
    batch_size: int = Field(64, ge=1, le=65536)
    lr: float = Field(4e-3, gt=0, le=10)
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(0.9, ge=0, lt=1)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    validation_split: float = Field(0.2, ge=0, lt=1)
    stop_check_every: int = Field(10, ge=1, description="optimizer steps between checks of the stop flag")
    lr_schedule: LrScheduleName = Field(
        "plateau",
        description="plateau: halve the lr when the monitored loss stalls; cosine: decay to 0 over the epochs; none",
    )
    warmup_epochs: int = Field(0, ge=0, le=10000, description="epochs of linear lr warm-up from lr/10")
    early_stopping: bool | None = Field(
        None, description="stop when the validation loss stops improving; null: on when there is a validation split"
    )
    patience: int | None = Field(
        None, ge=1, le=100000, description="epochs without improvement before stopping; null: from the step budget"
    )
    min_improvement: float = Field(
        1e-2,
        ge=0,
        lt=1,
        description="relative decrease of the monitored loss that counts as progress (early stopping, plateau)",
    )
    restore_best: bool = Field(True, description="serve the weights of the best validation epoch (see monitor)")
    monitor: Literal["auto", "loss", "certified_accuracy"] = Field(
        "auto",
        description="what early stopping and restore_best watch on the validation split: its loss, or its "
        "certified accuracy at robustness.target_radius (early stopping then also waits for the loss to stall; "
        "the plateau schedule always follows the loss); auto: the latter when a target radius is set",
    )
    time_limit_s: float | None = Field(None, gt=0, le=1e7, description="stop (and keep the model) after this long")
    ema_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="validate, monitor and serve an exponential moving average of the weights with this decay per "
        "optimizer step (warmed up as min(decay, (1 + t) / (10 + t))); null: the trained weights themselves",
    )


class RobustnessConfig(_Strict):
    """How the certified robust accuracy stored with every model is measured
    (``lipspline/training/robust_accuracy.py``)."""

    radii: list[float] | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="l2 radii (raw input units) at which certified robust accuracy (classifiers) or the certified "
        "output tolerance (regression) is measured; default: fractions of the data's scale (see the README)",
    )
    extra_radii: list[float] | None = Field(
        None,
        min_length=1,
        max_length=8,
        description="radii measured besides the default (or given) ones, e.g. the radius a sweep selects at: "
        "a sweep adds its select and front radii here for every trial, so they are read exactly",
    )
    local: bool = Field(True, description="also count points certified by the local bound in the ball")
    local_max_points: int = Field(
        512, ge=0, le=100_000, description="local bounds only when the evaluation set has at most this many points"
    )
    target_radius: float | None = Field(
        None,
        gt=0,
        le=1e12,
        allow_inf_nan=False,
        description="classifiers: the l2 radius (raw input units) the model must be certified at. Fields left "
        "unset then default to a model trained for certified accuracy at that radius (docs/design.md#target-radius)",
    )

    @field_validator("radii", "extra_radii")
    @classmethod
    def _finite_radii(cls, values: list[float] | None) -> list[float] | None:
        if values is not None and any(not (0 <= r <= 1e12) for r in values):
            raise ValueError("radii must be finite numbers between 0 and 1e12")
        return values


#: What ``robustness.target_radius`` sets when the request leaves it unset, per section and field.
#: Chosen on selection splits, never test splits (``bench/select_target_radius.py``,
#: docs/design.md#target-radius): a 1-Lipschitz network of orthogonal (Björck) layers, two hidden
#: layers of 128 with GroupSort, trained with the Lipschitz-margin loss at the target radius (its
#: temperature follows the data's scale) at a larger lr than the loop's default, which under-fits
#: 1-Lipschitz networks on low-dimensional data.
TARGET_RADIUS_DEFAULTS: dict[str, dict[str, object]] = {
    "architecture": {"hidden": [128, 128], "activation": "groupsort"},
    "objective": {"mode": "one_lipschitz", "loss": "lipschitz_margin"},
    "training": {"lr": 2e-2, "ema_decay": 0.99},
}


def _explicit(parent: BaseModel, section: str) -> set[str]:
    """The fields of ``parent.<section>`` that the request itself set (by field name)."""
    if section not in parent.model_fields_set:
        return set()
    return set(getattr(parent, section).model_fields_set)


class TrainingConfig(_Strict):
    architecture: ArchitectureConfig = Field(default_factory=ArchitectureConfig)
    spline: SplineConfig = Field(default_factory=SplineConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    training: TrainingLoopConfig = Field(default_factory=TrainingLoopConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    robustness: RobustnessConfig = Field(default_factory=RobustnessConfig)

    @model_validator(mode="after")
    def _target_radius_defaults(self) -> TrainingConfig:
        """Fill what a target radius implies, leaving every field the request set alone.

        The result is stored fully spelled out, so validating it again changes nothing: a job,
        its model and a sweep's trials all carry the resolved choices.
        """
        if self.robustness.target_radius is None:
            return self
        updates = {}
        for section, defaults in TARGET_RADIUS_DEFAULTS.items():
            explicit = _explicit(self, section)
            fill = {name: value for name, value in defaults.items() if name not in explicit}
            if section == "architecture" and fill.get("activation") == "groupsort":
                widths = fill.get("hidden", self.architecture.hidden)
                if self.architecture.kind == "cnn":
                    widths = [*widths, *self.architecture.conv_channels]
                if any(w % 2 for w in widths):
                    fill["activation"] = "deepspline"  # GroupSort pairs units: odd widths get 1-Lipschitz splines
            if fill:
                updates[section] = getattr(self, section).model_copy(update=fill)
        if not updates:
            return self
        resolved = self.model_copy(update=updates)
        # the copy's nested models keep their own fields_set; mark the filled ones as set too
        for section, model in updates.items():
            model.__pydantic_fields_set__.update(TARGET_RADIUS_DEFAULTS[section])  # (same names when adapted)
        resolved.__pydantic_fields_set__.update(updates)
        return resolved

    def to_json(self) -> dict:
        """JSON-ready form with public field names (``lambda``, not ``lambda_``)."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_stored(cls, document: dict) -> TrainingConfig:
        """A config stored fully spelled out (``to_json``: a model document, a job row), read back with
        the behaviour it had when it was written.

        A model must compute what it computed when it was certified, and a queued job trains as it
        was submitted. A field such a document lacks was added after it was written; where the new
        field's default would build something different, the old behaviour is filled in:

        - ``objective.one_lipschitz_conv`` (default AOL): convolutions were rescaled by their tap
          sum before it existed, so a document without it gets ``spectral``.
        - ``training.ema_decay``: a target radius fills 0.99 into an unset field, and a job queued
          before the field existed trained its last weights; a document without it gets ``null``.
        """
        objective = document.get("objective")
        if isinstance(objective, dict) and "one_lipschitz_conv" not in objective:
            document = {**document, "objective": {**objective, "one_lipschitz_conv": "spectral"}}
        training = document.get("training")
        if isinstance(training, dict) and "ema_decay" not in training:
            document = {**document, "training": {**training, "ema_decay": None}}
        return cls.model_validate(document)

    def explicit_json(self) -> dict:
        """Only the fields the request set (and those its target radius filled), as JSON.

        What a sweep's base is carried as: a trial validates the base *with its own values*, so a
        trial that sets ``robustness.target_radius`` gets what that radius implies in every field
        the base left to the defaults. The spelled-out ``to_json`` would make every field look
        chosen by the user, and the trial would keep the accuracy defaults beside its radius.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)
