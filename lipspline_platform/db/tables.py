"""The tables. The ``jobs`` row is the truth about a job; the broker only carries its id.

Artifacts (dataset arrays, model weights) live in the database as blobs by
default: they are small, and every API replica and worker host can then read
them with no shared filesystem (docs/design.md#artifacts).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from api_schemas.timestamps import utcnow


class Base(DeclarativeBase):
    pass


#: the tenant that owns rows created before tenants existed, and the embedded default's tenant
DEFAULT_TENANT = "default"


def _tags_column() -> Mapped[list]:
    """A resource's tags, in their order (``lipspline_platform/labels.py`` writes them with their index rows)."""
    return mapped_column(JSON, default=list, server_default=text("'[]'"))


class TenantRow(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: a revoked tenant's keys all stop working; its data is kept
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # quotas: None means the deployment's default (LIPSPLINE_QUOTA_*), itself unlimited unless set
    quota_max_active_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quota_max_stored_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quota_max_models: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ApiKeyRow(Base):
    """An API key, stored only as its SHA-256: keys are 190-bit random strings, so a fast
    hash cannot be brute-forced, and a leaked table reveals no usable key."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: space-separated scopes (service/security/scopes.py): read, predict, train, admin; the default is
    #: what every key could do before scopes existed (migration 0003)
    scopes: Mapped[str] = mapped_column(String(64), default="read predict train")
    name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(20))
    n_samples: Mapped[int] = mapped_column(Integer)
    n_features: Mapped[int] = mapped_column(Integer)
    classes: Mapped[list | None] = mapped_column(JSON, nullable=True)
    feature_names: Mapped[list] = mapped_column(JSON)
    target_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source_format: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    #: the npz of an uploaded dataset; None for one registered by reference (``uri``)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True, nullable=True)
    # a dataset registered by reference (migration 0010): where its Parquet objects lie, each
    # object's size, row groups and footer hash as registered, and the one-pass statistics
    uri: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # an upload's npz in the artifact store (migration 0011): ``content`` is then None
    content_uri: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    content_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    objects: Mapped[list | None] = mapped_column(JSON, nullable=True)
    statistics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # names, tags and descriptions (migration 0008); a dataset's name is the column above
    tags: Mapped[list] = _tags_column()
    description: Mapped[str | None] = mapped_column(Text, nullable=True)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id"), index=True)
    # SET NULL: a finished job keeps its history after its dataset is deleted; active jobs
    # protect their dataset in the API (409), so it never vanishes under a running job.
    dataset_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True, index=True
    )
    config: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)
    queue: Mapped[str] = mapped_column(String(20))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    device: Mapped[str | None] = mapped_column(String(40), nullable=True)
    worker_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    model_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    train_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    # lease: a running job's worker refreshes heartbeat_at; a stale one means the worker is gone
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # when the job's message was last handed to the broker (the reconciler re-sends lost ones)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # a registered model's name: the model becomes its next version when the job succeeds
    register_as: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # where to POST the job's final event (webhooks), besides the tenant's registered endpoints
    notify_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    #: the X-Request-ID of the request that submitted the job: the worker's log lines carry it
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # names, tags and descriptions (migration 0008): its model gets a copy when it is stored
    name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    tags: Mapped[list] = _tags_column()
    description: Mapped[str | None] = mapped_column(Text, nullable=True)


class JobCheckpointRow(Base):
    """The latest training checkpoint of a job, in the database so any worker host can resume it."""

    __tablename__ = "job_checkpoints"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)
    #: the checkpoint's bytes, or None when they are in the artifact store at ``blob_uri``
    blob: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True, nullable=True)
    blob_uri: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobEpochRow(Base):
    """One row per finished epoch: appending is cheap and never rewrites a growing JSON blob."""

    __tablename__ = "job_epochs"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    report: Mapped[dict] = mapped_column(JSON)


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id"), index=True)
    # unique: a redelivered job can never create a second model
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    dataset_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    task: Mapped[str] = mapped_column(String(20))
    document: Mapped[dict] = mapped_column(JSON)
    # the safetensors bytes: in the artifact store (``weights_uri``, lipspline_platform/storage/artifacts.py)
    # when one is configured, else here (migration 0011)
    weights: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True, nullable=True)
    weights_uri: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    weights_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict] = mapped_column(JSON)
    certificate: Mapped[dict] = mapped_column(JSON)
    sparsity: Mapped[dict] = mapped_column(JSON)
    parameter_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # names, tags and descriptions (migration 0008): the job's, copied when the model is stored
    name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    tags: Mapped[list] = _tags_column()
    description: Mapped[str | None] = mapped_column(Text, nullable=True)


class RegisteredModelRow(Base):
    """A name a tenant gives to a line of models; its versions and aliases hang off it.

    ``last_version`` is the version counter: a new version is numbered by one
    ``UPDATE ... SET last_version = last_version + 1 RETURNING`` on this row, which
    serialises version numbering per name on SQLite and PostgreSQL alike
    (``lipspline_platform/registry.py``).
    """

    __tablename__ = "registered_models"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_registered_models_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the last change under the name: a version added or an alias moved
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersionRow(Base):
    """Version ``version`` of a registered model: one trained model, immutable once written."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("registered_model_id", "version", name="uq_model_versions_number"),
        UniqueConstraint("registered_model_id", "model_id", name="uq_model_versions_model"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    registered_model_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("registered_models.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[str] = mapped_column(String(32), ForeignKey("models.id", ondelete="CASCADE"), index=True)
    # lineage kept on the version: the dataset's content hash outlives the dataset row
    dataset_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # who registered it: ``key:<api key id>`` or ``job:<job id>`` (register_as)
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelAliasRow(Base):
    """A movable name for one version (``production``, ``staging``...): model references resolve through it."""

    __tablename__ = "model_aliases"

    registered_model_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str] = mapped_column(String(32), ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AliasEventRow(Base):
    """One move of an alias (who, when, from -> to); ``None`` on a side means unset."""

    __tablename__ = "alias_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    registered_model_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("registered_models.id", ondelete="CASCADE"), index=True
    )
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IdempotencyRow(Base):
    """A POST made with an Idempotency-Key: its request fingerprint and, once done, its response."""

    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    route: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    # in_flight until the first request finishes; then the stored response is replayed
    state: Mapped[str] = mapped_column(String(20))
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_headers: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobEventRow(Base):
    """One entry of a job's event stream (``GET /v1/jobs/{id}/events``), appended in the same
    transaction as the change it reports, so the stream is read from the database by any API
    replica and ``seq`` (1, 2, 3 … per job) lets a client resume after the last one it saw."""

    __tablename__ = "job_events"

    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(20))
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookSecretRow(Base):
    """A tenant's webhook signing secret (HMAC-SHA256 key); shown to the tenant once, when made.

    ``secret`` holds it sealed (AES-256-GCM, ``lipspline_platform/webhooks/secret_store.py``),
    never in the clear."""

    __tablename__ = "webhook_secrets"

    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StorageCredentialsRow(Base):
    """A tenant's own object-store credentials for its dataset URIs, sealed (``storage/credentials.py``).

    ``sealed`` is the JSON of the keys, sealed like a webhook secret (purpose ``storage``);
    ``access_key_hint`` (the key id's last four characters) is all any response shows."""

    __tablename__ = "storage_credentials"

    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    sealed: Mapped[str] = mapped_column(String(8000))
    access_key_hint: Mapped[str] = mapped_column(String(8))
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    has_session_token: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookEndpointRow(Base):
    """A URL a tenant registered: it receives the final event of every job of the tenant."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDeliveryRow(Base):
    """The outbox: one event to deliver to one URL, written with the change it reports (a job's final status...).

    ``state`` is ``pending`` until a 2xx (``delivered``) or until the retry window closes
    (``failed``); ``next_attempt_at`` is when a dispatcher may next take it (a dispatcher that
    takes it moves it forward by a lease first, so a crash mid-send only delays the retry).
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    #: the job whose final event this is; null for the events that are not a job's (sweeps, registry; 0009)
    job_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), index=True,
                                               nullable=True)
    url: Mapped[str] = mapped_column(String(2000))
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookAttemptRow(Base):
    """One try at a delivery: when, how long, and what the receiver (or the network) answered."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    succeeded: Mapped[bool] = mapped_column(Boolean)


class SweepRow(Base):
    """A sweep: the truth about which trials exist and what was decided (``lipspline_platform/sweeps.py``).

    ``plan`` holds every trial's parameters, fixed at creation; ``launched`` is the number
    of trials launched so far (trials are launched in index order), so advancing is
    "launch the next indices", done under a lock on this row.
    """

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), ForeignKey("tenants.id"), index=True)
    dataset_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True, index=True
    )
    request: Mapped[dict] = mapped_column(JSON)
    plan: Mapped[list] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)
    launched: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    selected_model_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    register_as: Mapped[str | None] = mapped_column(String(100), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # names, tags and descriptions (migration 0008)
    name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    tags: Mapped[list] = _tags_column()
    description: Mapped[str | None] = mapped_column(Text, nullable=True)

    def close(self, status: str, note: str | None, at: datetime) -> None:
        """The sweep's one transition: from ``running`` to succeeded, failed or cancelled (it never reopens)."""
        self.status = status
        if note is not None:
            self.note = note
        self.finished_at = self.updated_at = at


class SweepTrialRow(Base):
    """One trial of a sweep: an ordinary job, plus what the sweep recorded about it.

    (sweep_id, trial) is the primary key and ``job_id`` unique: a trial is launched once.
    ``rung_scores`` maps a halving rung (epoch, as a string) to the score recorded there.
    """

    __tablename__ = "sweep_trials"

    sweep_id: Mapped[str] = mapped_column(String(32), ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    trial: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    params: Mapped[dict] = mapped_column(JSON)
    rung_scores: Mapped[dict] = mapped_column(JSON, default=dict)
    stopped_at_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ResourceTagRow(Base):
    """One tag of one dataset, job, model or sweep: what the lists' ``?tag=`` filter reads.

    The resource's own ``tags`` column is the truth (and keeps the order); these rows are its
    index, written with it by ``lipspline_platform/labels.py``, so "has tag T" is a plain
    ``id IN (SELECT resource_id ... WHERE kind = ? AND tag = ?)`` on SQLite and PostgreSQL alike.
    """

    __tablename__ = "resource_tags"
    __table_args__ = (Index("ix_resource_tags_resource", "kind", "resource_id"),)

    #: dataset, job, model or sweep
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    tag: Mapped[str] = mapped_column(String(50), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(32), primary_key=True)
