"""HTTP request/response contracts of the v1 API (docs/design.md#contract).

The job states are defined here once and used by the API, the worker and the tests.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from api_schemas.labels import (
    Description,
    InDescription,
    InName,
    InTags,
    OutDescription,
    OutName,
    OutTags,
    ResourceName,
    TagList,
)
from api_schemas.robustness import CertifiedAccuracyOut, CertifiedToleranceOut
from api_schemas.timestamps import as_utc
from api_schemas.training_config import TrainingConfig


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


#: states a job never leaves
TERMINAL_STATES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})
#: states in which a job still needs its dataset
ACTIVE_STATES = frozenset({JobStatus.queued, JobStatus.running})

#: an input value: a JSON number, as on /v2 (one grammar for both protocols); strings such as "1.0"
#: and booleans are refused with a 422 naming the row, never read as numbers
Number = Annotated[float, Strict()]
#: a class label or a regression value as the dataset had it: labels keep their JSON type
Label = int | float | str
#: a feature value or target of a dataset row (numbers; labels of a preview may be strings)
Cell = float | int | str
#: metric or loss name -> value (null when it could not be computed, e.g. on an empty split)
NamedValues = dict[str, float | None]


Timestamp = Annotated[datetime, AfterValidator(as_utc)]

#: the member every paginated list has beside ``items`` (service/http/pagination.py)
NEXT_CURSOR = Field(
    None, description="pass as `cursor` to get the next page; null on the last page (also sent as a `Link` header)"
)


def _nul_path(value: Any, path: tuple) -> tuple | None:
    """The path of the first string (key or value) holding a NUL byte, or None.

    Runs on validated values, where a list holds the one type its field declares: a list
    whose first item is a number is a list of numbers and is not walked (a 5-million-number
    body costs nothing here). Nested request models check themselves.
    """
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return (*path, key)
            found = _nul_path(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list | tuple) and value and not isinstance(value[0], int | float):
        for index, item in enumerate(value):
            found = _nul_path(item, (*path, index))
            if found is not None:
                return found
    return None


class _Request(BaseModel):
    # Unknown keys are errors in every request body; subclasses' model_config merges with this.
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _no_nul_bytes(self) -> _Request:
        """No string of a request may hold a NUL byte: PostgreSQL text cannot store one (it was a 500 there).

        After validation, so the size limits of the fields refuse a huge body before anything walks it.
        """
        for name, value in self.__dict__.items():
            path = _nul_path(value, (name,))
            if path is not None:
                raise ValueError(f"{'.'.join(map(str, path))}: must not contain a NUL byte")
        return self


#: the base of every request body (the registry's and the sweeps' too)
RequestBody = _Request


class LabelsPatch(_Request):
    """The body of ``PATCH /v1/{datasets,jobs,models,sweeps}/{id}`` (JSON merge semantics, RFC 7396).

    A member left out is unchanged; ``name: null`` and ``description: null`` clear them (a dataset's
    name goes back to ``dataset``); ``tags`` replaces the whole list (``[]`` or ``null``: no tags).
    The rules of each member are those of ``api_schemas/labels.py``.
    """

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "disc, 2 knots", "tags": ["team:vision", "stage=candidate"]}]}
    )

    name: ResourceName | None = Field(None, description="1-100 printable characters; null clears it")
    tags: TagList | None = Field(
        None, description="the new tags, replacing every old one: at most 20, each 1-50 of `A-Za-z0-9._:/=-`"
    )
    description: Description | None = Field(None, description="at most 2000 characters; null clears it")

    def changes(self) -> dict[str, Any]:
        """The members the body sent, with their new values (``tags: null`` read as ``[]``)."""
        sent = {name: getattr(self, name) for name in ("name", "tags", "description") if name in self.model_fields_set}
        if "tags" in sent and sent["tags"] is None:
            sent["tags"] = []
        return sent


class DatasetCreate(_Request):
    """JSON upload of a dataset (multipart file uploads use form fields instead)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "xor",
                    "inputs": [[0, 0], [0, 1], [1, 0], [1, 1]],
                    "targets": [0, 1, 1, 0],
                    "task": "classification",
                }
            ]
        },
    )

    name: str = Field("dataset", min_length=1, max_length=200)
    inputs: list[list[Any]] = Field(..., min_length=1, description="rows of feature values")
    targets: list[Any] = Field(..., min_length=1, description="one target per row (labels or numbers)")
    task: Literal["classification", "regression"] | None = Field(None, description="inferred when omitted")
    feature_names: list[str] | None = None
    tags: InTags = []
    description: InDescription = None


class DatasetOut(BaseModel):
    id: str
    name: str = Field(
        description="what the dataset is called: never null (an upload without a name is called `dataset`; "
        "`PATCH` with `name: null` sets that default back)"
    )
    task: Literal["classification", "regression"]
    n_samples: int
    n_features: int
    classes: list[Label] | None = None
    feature_names: list[str]
    target_name: str | None = None
    source_format: str
    sha256: str
    created_at: Timestamp
    tags: OutTags = []
    description: OutDescription = None
    uri: str | None = Field(
        None, description="where a dataset registered by reference lies (its objects are read there, never copied); "
        "null for an upload"
    )


class DatasetList(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None = NEXT_CURSOR


class FeatureRange(BaseModel):
    min: float
    max: float


class DatasetPreview(BaseModel):
    """The first rows of a dataset and the range of each feature (what a dashboard shows of it)."""

    id: str
    columns: list[str] = Field(description="the feature names, then `target`")
    rows: list[list[Cell]] = Field(description="the first rows: feature values, then the target (label or number)")
    n_samples: int
    feature_ranges: list[FeatureRange] = Field(description="per feature: smallest and largest value over every row")


#: a registered model's name (api_schemas/registry.py): never contains '@' or '/', the separators
#: of model references; the registry also refuses names that look like a model id (32 hex digits)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class JobCreate(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dataset_id": "5f0c6b2e9a4d4c1f8e7b6a5d4c3b2a19",
                    "config": {
                        "architecture": {"hidden": [2], "activation": "deepspline"},
                        "spline": {"knots": 21, "range": 3.0},
                        "objective": {"mode": "bv2", "lambda": 1e-4, "mu": 1e-4},
                        "training": {"epochs": 100, "batch_size": 32, "lr": 0.01, "seed": 0},
                    },
                }
            ]
        },
    )

    dataset_id: str = Field(..., min_length=1, max_length=64)
    config: TrainingConfig = Field(default_factory=TrainingConfig)
    register_as: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="a registered model's name (it must exist): when the job succeeds, its model becomes the "
        "name's next version, in the transaction that stores the model",
    )
    notify_url: str | None = Field(
        None,
        max_length=2000,
        description="http(s) URL that receives the job's final event as a signed webhook POST "
        "(needs the tenant's webhook secret: POST /v1/webhooks/secret)",
    )
    name: InName = None
    tags: InTags = []
    description: InDescription = None


class JobAccepted(BaseModel):
    id: str
    status: JobStatus


StopReason = Literal["converged", "max_epochs", "cancelled", "time_limit"]


class TrainingOutcomeFields(BaseModel):
    """How a run ended (docs/design.md#training-defaults); set once training has finished."""

    stop_reason: StopReason | None = Field(
        None,
        description="converged (early stopping: no better validation loss for `patience` epochs), max_epochs, "
        "cancelled or time_limit",
    )
    best_epoch: int | None = Field(None, description="the epoch with the lowest monitored (validation) loss")
    served_epoch: int | None = Field(
        None, description="the epoch whose weights the model has: best_epoch with restore_best, else the last"
    )
    epochs_planned: int | None = Field(None, description="the run's epoch limit (the step-budget rule's, if automatic)")
    epochs_run: int | None = None
    spline_ranges: list[float] | None = Field(None, description="each spline layer's grid half-width R")
    out_of_grid_fraction: list[float] | None = Field(
        None, description="per spline layer: share of the training pre-activations outside [-R, R] at the end"
    )
    warnings: list[str] = Field(default_factory=list, description="e.g. a spline layer with many points off its grid")
    loss: str | None = Field(
        None,
        description="the data loss the run minimised: objective.loss with auto resolved (e.g. tau_cross_entropy "
        "for a one_lipschitz classifier)",
    )


class RegisteredAs(BaseModel):
    """Where a job's ``register_as`` put its model: the name, and the version (null if the name was deleted)."""

    name: str
    version: int | None = None


class JobProgress(TrainingOutcomeFields):
    """Where a job is: the last finished epoch and its numbers, then (once finished) how it ended.

    Every member the worker writes (``worker/training_job.py``: ``epoch_progress``, ``outcome_progress``)
    is declared here, so clients get them typed.
    """

    epoch: int = 0
    epochs: int | None = Field(None, description="the epoch limit (null while it is still to be planned)")
    lr: float | None = Field(None, description="the weights' learning rate during the last epoch")
    losses: NamedValues = Field(default_factory=dict, description="the last epoch's loss terms (data, bv2 ...)")
    train_metrics: NamedValues = Field(default_factory=dict, description="the last epoch's training metrics")
    validation_metrics: NamedValues = Field(default_factory=dict, description="the last epoch's validation metrics")
    epoch_seconds: float | None = Field(None, description="how long the last epoch took")
    attempt: int | None = Field(None, description="which attempt (1, 2 ...) runs or ran the job")
    resumed_from_epoch: int | None = Field(None, description="the checkpoint epoch this attempt resumed from")
    registered_as: RegisteredAs | None = None


class TrainingOutcomeOut(TrainingOutcomeFields):
    monitor: str | None = Field(
        None,
        description="what early stopping watched: validation or training (the loss), or "
        "validation_certified_accuracy (at robustness.target_radius)",
    )


class ModelMetrics(BaseModel):
    """A model's metrics, measured through the served map, and how its training ended."""

    train: NamedValues = Field(default_factory=dict, description="metric name -> value on the training split")
    validation: NamedValues = Field(default_factory=dict, description="metric name -> value on the validation split")
    epochs: int | None = Field(None, description="epochs trained")
    training: TrainingOutcomeOut | None = None
    warnings: list[str] = Field(default_factory=list)


class JobOut(BaseModel):
    id: str
    status: JobStatus
    dataset_id: str | None
    config: TrainingConfig
    queue: str
    progress: JobProgress
    model_id: str | None = None
    error: str | None = None
    device: str | None = None
    worker_host: str | None = None
    attempts: int
    cancel_requested: bool
    created_at: Timestamp
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    updated_at: Timestamp
    train_seconds: float | None = None
    register_as: str | None = Field(None, description="the registered model the job's model is added to on success")
    #: the X-Request-ID of the submitting request: the same id is on the worker's log lines of the job
    request_id: str | None = None
    name: OutName = None
    tags: OutTags = []
    description: OutDescription = None


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = NEXT_CURSOR


class EpochHistoryRow(BaseModel):
    """One epoch of a job's history (``lipspline.training.loop.EpochReport`` plus the attempt that ran it)."""

    epoch: int
    epochs: int = Field(description="the run's epoch limit")
    losses: NamedValues
    train_metrics: NamedValues
    validation_metrics: NamedValues
    elapsed_s: float = Field(description="seconds the epoch took")
    lambdas: list[float] = Field(default_factory=list, description="the regularisation weight of each spline layer")
    lr: float | None = None
    improved: bool = Field(False, description="the monitored loss was the best so far")
    attempt: int | None = None


class JobMetrics(BaseModel):
    id: str
    status: JobStatus
    history: list[EpochHistoryRow]


JobEventType = Literal["status", "epoch", "final"]


class JobEvent(BaseModel):
    """One event of ``GET /v1/jobs/{id}/events`` (the SSE ``data:`` line; ``id:`` is ``seq``).

    ``data`` by ``type``: ``status``: ``{"status", "attempt"?, "error"?}``; ``epoch``: the job's
    progress after that epoch (``epoch``, ``epochs``, ``losses``, ``train_metrics``,
    ``validation_metrics``, ``epoch_seconds``, ``attempt``); ``final`` (last, after the status
    that ends the job): ``{"event", "job_id", "status", "model_id", "error", "train_seconds", "finished_at"}``.
    """

    seq: int = Field(description="1, 2, 3 … per job; send the last one seen as Last-Event-ID to resume")
    type: JobEventType
    job_id: str
    data: dict[str, Any]


class WebhookSecretOut(BaseModel):
    """The tenant's webhook signing secret: shown in this response only, never again."""

    secret: str = Field(description="HMAC-SHA256 key of X-LipSpline-Signature; store it now")
    created_at: Timestamp


class WebhookEndpointCreate(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"url": "https://hooks.example.com/lipspline"}]})

    url: str = Field(..., min_length=1, max_length=2000, description="http(s) URL; public addresses only by default")


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    created_at: Timestamp
    secret: str | None = Field(
        None, description="the tenant's signing secret when this registration created it (shown once), else null"
    )


class WebhookEndpointList(BaseModel):
    items: list[WebhookEndpointOut]
    next_cursor: str | None = NEXT_CURSOR


class DeliveryAttemptOut(BaseModel):
    attempt: int
    started_at: Timestamp
    duration_s: float
    status_code: int | None = Field(None, description="the receiver's HTTP status; null when no answer came")
    error: str | None = None
    succeeded: bool


class DeliveryOut(BaseModel):
    id: str
    url: str
    event: str = Field(description="`job.<status>`, `sweep.finished`, `sweep.cancelled`, `registry.version_created`, "
                       "`registry.alias_moved` (payloads: api_schemas/webhook_events.py)")
    job_id: str | None = Field(None, description="the job whose final event it is; null for the other events")
    state: Literal["pending", "delivered", "failed"]
    attempts: list[DeliveryAttemptOut]
    next_attempt_at: Timestamp | None = Field(None, description="pending: when the next attempt is due")
    created_at: Timestamp
    finished_at: Timestamp | None = None


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = NEXT_CURSOR


class LipschitzSummary(BaseModel):
    certified: float | None = Field(description="proven l2 upper bound of the served map (raw input -> output)")
    certified_by: str | None = None
    bounds: dict[str, float | None]
    empirical_lower: float | None = None
    jacobian_lower: float | None = None
    best_lower: float | None = None
    tightness: float | None = None
    norm: Literal["l2"] = "l2"
    skipped: dict[str, str] = Field(default_factory=dict)


class SparsityLayer(BaseModel):
    layer: int = Field(description="index of the spline layer")
    neurons: int
    active_knots: int = Field(description="active knots of the layer, all neurons together")
    active_knots_per_neuron: list[int]
    interior_knots_per_neuron: int = Field(description="the knots each neuron could use")


class Sparsity(BaseModel):
    """Active knots per spline layer: the sparsity BV² regularisation buys."""

    layers: list[SparsityLayer] = Field(default_factory=list)
    total_active_knots: int = 0


class ModelRegistration(BaseModel):
    """One registry entry a model is registered under: a version of a registered name, and its aliases now."""

    name: str = Field(description="the registered model's name")
    version: int = Field(description="the version number this model is under that name")
    aliases: list[str] = Field(default_factory=list, description="aliases of that name pointing at this version now")
    reference: str = Field(description="`NAME/versions/N`: a model reference every /v1/models route accepts")


class ModelOut(BaseModel):
    id: str
    job_id: str
    dataset_id: str | None
    task: Literal["classification", "regression"]
    config: TrainingConfig
    classes: list[Label] | None = None
    feature_names: list[str]
    metrics: ModelMetrics
    lipschitz: LipschitzSummary
    certified_accuracy: CertifiedAccuracyOut | None = Field(
        None, description="classifiers: certified robust accuracy against the l2 radius (the curve to plot)"
    )
    certified_tolerance: CertifiedToleranceOut | None = Field(
        None, description="regression: certified output change at each input eps, beside the validation error"
    )
    sparsity: Sparsity
    parameter_count: int
    weights_sha256: str
    created_at: Timestamp
    registrations: list[ModelRegistration] = Field(
        default_factory=list,
        description="every registry version this model is (name, version, aliases pointing at it now), by name; "
        "empty when it is not registered",
    )
    name: str | None = Field(
        None,
        description="what the model is called: the name of the job that trained it, copied when the model was "
        "stored, until PATCH /v1/models/{id} sets another (later edits of the job do not change it)",
    )
    tags: list[str] = Field(
        default_factory=list, description="the tags of the job that trained it, copied as `name` is; PATCH replaces all"
    )
    description: str | None = Field(None, description="the job's description, copied as `name` is")


class ModelList(BaseModel):
    items: list[ModelOut]
    next_cursor: str | None = NEXT_CURSOR


def _check_finite_rows(rows: list[list[float]] | None) -> list[list[float]] | None:
    if not rows:  # None (optional field) or empty: the length constraint reports it
        return rows
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"row {i} has {len(row)} values, row 0 has {width}")
        for j, value in enumerate(row):
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"row {i}, column {j}: value is not finite ({value})")
    return rows


class PredictRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"inputs": [[0.1, -0.3], [0.9, 0.8]], "epsilon": 0.05}]})

    inputs: list[list[Number]] = Field(..., min_length=1, description="rows of raw feature values")
    epsilon: float | None = Field(None, ge=0, le=1e12, description="input perturbation size (l2) for output_bound")
    local_ball: float | None = Field(
        None,
        gt=0,
        le=1e12,
        allow_inf_nan=False,
        description="classifiers: also try a local proof in the l2 ball of this radius around each input; a row's "
        "certified_radius is then the larger of the global radius and the local one (at most local_ball). Costs a "
        "local bound per row (docs/design.md#local-radius); leave it out on the hot path",
    )

    _finite = field_validator("inputs")(_check_finite_rows)


class PredictResponse(BaseModel):
    """What the endpoint returns, and what is proven about exactly these numbers.

    For any two inputs x, y the service evaluates, the returned outputs satisfy
    ``||g(x) - g(y)||_2 <= lipschitz_bound * ||x - y||_2 + rounding_bound(x) + rounding_bound(y)``.
    """

    predictions: list[Label] = Field(
        description="per input: the class label (classification, as the dataset had it) or the value (regression)"
    )
    outputs: list[list[float]]
    lipschitz_bound: float = Field(description="certified global l2 Lipschitz bound of raw input -> outputs")
    rounding_bound: list[float] = Field(
        default_factory=list,
        description="per input: proven bound on the l2 distance between the returned outputs and the exact "
        "outputs of the certified map (the floating-point rounding of this evaluation)",
    )
    arithmetic: str = Field("float64", description="the floating-point format the served map is evaluated in")
    certified_radius: list[float] | None = Field(
        None,
        description="per input: l2 radius within which the returned label provably cannot change "
        "(rounding of the served evaluation included)",
    )
    output_bound: float | None = Field(
        None,
        description="with epsilon: the largest l2 change of the returned outputs when any input moves by at most "
        "epsilon (l2), rounding included; the maximum of output_bounds",
    )
    output_bounds: list[float] | None = Field(None, description="with epsilon: output_bound for each input")
    epsilon: float | None = None
    radius_source: list[Literal["global", "local"]] | None = Field(
        None, description="with local_ball: per input, which proof gave its certified_radius"
    )
    model_id: str | None = Field(
        None,
        description="the model that answered: the id the path's reference resolved to (always set by this server; "
        "also in the `X-LipSpline-Model-Id` header)",
    )
    registered_name: str | None = Field(
        None,
        description="the registered name the reference went through (`NAME`, `NAME@ALIAS`, `NAME/versions/N`); "
        "null when the model was named by its id (`X-LipSpline-Model-Name`, absent then)",
    )
    version: int | None = Field(
        None,
        description="the version of `registered_name` that answered (the one the alias pointed at when the request "
        "resolved it); null when the model was named by its id (`X-LipSpline-Model-Version`, absent then)",
    )


class CertifyRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"inputs": [[0.1, -0.3]], "epsilon": 0.1, "norm": "l2"}]},
    )

    inputs: list[list[Number]] | None = Field(None, min_length=1)
    epsilon: float = Field(0.1, gt=0, le=1e6, description="radius of the ball around each input")
    norm: Literal["l2", "linf"] = "l2"

    _finite = field_validator("inputs")(_check_finite_rows)


class LocalBoundOut(BaseModel):
    bound: float
    bounds: dict[str, float | None]
    local_radius: float | None = Field(
        None, description="l2 radius (at most epsilon) within which the returned label provably cannot change"
    )
    rounding_bound: float | None = Field(None, description="proven rounding bound of this input's outputs")
    prediction: Label | None = Field(None, description="the label (classification) or value (regression)")


class KnotsOut(BaseModel):
    """A learnable spline's knots: positions, each unit's value there, and which knots are active."""

    x: list[float]
    y: list[list[float]] = Field(description="per unit, the value at each knot")
    active: list[list[bool]] = Field(description="per unit, whether each knot is active (a slope change)")


class PreactivationRange(BaseModel):
    min: list[float] = Field(description="per unit: the smallest training pre-activation")
    max: list[float] = Field(description="per unit: the largest training pre-activation")


class ActivationLayerOut(BaseModel):
    """One activation layer, sampled (``service/inference/activation_curves.py``)."""

    layer: int
    kind: str = Field(description="the activation's class, e.g. LinearSpline, ReLU")
    units: int = Field(description="units with a curve of their own (1 for a fixed activation)")
    learnable: bool
    x: list[float] | None = Field(None, description="the sample positions, shared by every unit")
    y: list[list[float]] | None = Field(None, description="per unit, the activation at each x")
    note: str | None = Field(None, description="why there is no per-unit curve, when there is none")
    knots: KnotsOut | None = None
    preactivation_range: PreactivationRange | None = Field(
        None, description="null when the model's dataset was deleted"
    )


class ActivationsOut(BaseModel):
    model_id: str
    points: int = Field(description="samples per curve")
    layers: list[ActivationLayerOut]


class CertifyResponse(BaseModel):
    lipschitz: LipschitzSummary
    epsilon: float
    norm: str
    local: list[LocalBoundOut] | None = None


class ProblemFieldError(BaseModel):
    """One field at fault in a 422: ``field`` is the dotted path (``config.training.epochs``, ``inputs.3``)."""

    field: str
    message: str
    type: str | None = Field(None, description="pydantic error type, for errors found by schema validation")


class Problem(BaseModel):
    """RFC 9457 problem details: the body of every error response (`application/problem+json`).

    The extension members after `instance` appear only on the problems that carry them.
    """

    # This docstring is the schema's description in /docs. The model documents what
    # service/http/problems.py sends; extra="allow" keeps the schema open to members added later.

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "https://lipspline.dev/problems/validation-error",
                    "title": "Validation Error",
                    "status": 422,
                    "detail": "config.training.epochs: Input should be greater than or equal to 1",
                    "instance": "/v1/jobs",
                    "field": "config.training.epochs",
                    "errors": [{"field": "config.training.epochs", "message": "Input should be greater than or "
                                "equal to 1", "type": "greater_than_equal"}],
                }
            ]
        },
    )

    type: str = Field(description="URI naming the kind of problem, e.g. .../problems/not-found")
    title: str
    status: int = Field(description="the HTTP status, repeated")
    detail: str = Field(description="what went wrong, naming the field, row or column at fault")
    instance: str = Field(description="the request path")
    errors: list[ProblemFieldError] | None = Field(None, description="422: every field at fault")
    problem: str | None = Field(None, description="invalid dataset: short code (nan, ragged_row, bad_npz, ...)")
    row: int | None = Field(None, description="invalid dataset: 0-based data row at fault (header excluded)")
    column: str | int | None = Field(None, description="invalid dataset: column at fault (name, or index)")
    limit: str | None = Field(None, description="limit exceeded: the setting's name, e.g. max_epochs")
    limit_value: float | None = Field(None, description="limit exceeded: the setting's value")
    field: str | None = Field(None, description="the request field at fault (422: the first of `errors`; 404 on a "
                              "referenced id)")
    jobs: list[str] | None = Field(None, description="409 dataset-in-use: the active jobs using it")
    checks: dict[str, bool] | None = Field(None, description="503 not-ready: each dependency and whether it answered")
