"""Settings from ``LIPSPLINE_*`` environment variables (docs/design.md#settings).

One object shared by the API, the worker and the CLI, so every process of a
deployment reads the same database, broker and data directory.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The broker URL meaning "no external server": a kombu filesystem transport under the data dir.
EMBEDDED_BROKER = "embedded://"
#: Least time a webhook delivery's lease outlasts its attempt's deadline: recording the attempt
#: happens after the deadline, and until it is recorded no other dispatcher may send it again.
WEBHOOK_LEASE_MARGIN_S = 5.0


class Settings(BaseSettings):
    """Everything a process needs to find the database, the broker and the artifacts."""

    model_config = SettingsConfigDict(env_prefix="LIPSPLINE_", frozen=True)

    data_dir: Path = Field(Path("./lipspline-data"), description="SQLite file, embedded broker, checkpoints")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file in data_dir")
    broker_url: str = Field(EMBEDDED_BROKER, description="Celery broker; default: embedded, no server")

    max_upload_bytes: int = Field(64 * 1024 * 1024, ge=1, description="largest dataset upload")
    max_predict_rows: int = Field(10_000, ge=1, description="largest predict/certify batch")
    max_certify_rows: int = Field(256, ge=1, description="largest batch for local certificates")
    max_rows: int = Field(1_000_000, ge=1, description="rows per dataset")
    max_features: int = Field(10_000, ge=1, description="features per dataset")
    max_classes: int = Field(1_000, ge=2, description="classes per classification dataset")
    max_width: int = Field(4096, ge=1, description="widest hidden layer a job may ask for")
    max_depth: int = Field(16, ge=1, description="most hidden layers a job may ask for")
    max_knots: int = Field(257, ge=3, description="most spline knots per activation")
    max_parameters: int = Field(20_000_000, ge=1, description="largest network (weights + spline values)")
    max_epochs: int = Field(10_000, ge=1, description="most epochs per job")
    max_sweep_trials: int = Field(64, ge=1, description="most trials a tenant's sweep may run (budget.max_trials)")
    # a sweep's space is measured before anything in it is validated or expanded (422 limit-exceeded naming the path)
    max_sweep_values_per_path: int = Field(1000, ge=1, description="most values one path of a sweep's space may list")
    max_sweep_paths: int = Field(32, ge=1, description="most config paths one sweep's space may search")
    max_sweep_space_values: int = Field(4096, ge=1, description="most values a sweep's space may list, all paths")
    # datasets by reference (docs: "Datasets by reference"): Parquet objects read where they lie
    gcs_endpoint_url: str | None = Field(
        None, description="GCS endpoint for gs:// dataset URIs (an emulator: http://127.0.0.1:9023); unset: Google's"
    )
    gcs_anonymous: bool = Field(
        False, description="read gs:// URIs without credentials (public buckets, an emulator); else Google's default "
        "credentials (GOOGLE_APPLICATION_CREDENTIALS, the metadata server)",
    )
    azure_blob_endpoint_url: str | None = Field(
        None, description="Azure Blob endpoint for az:// dataset URIs (the Azurite emulator: http://127.0.0.1:10000); "
        "unset: https://<account>.blob.core.windows.net; account and key from AZURE_STORAGE_ACCOUNT_NAME / _KEY",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint for s3:// dataset URIs (MinIO, a test server); unset: AWS"
    )
    dataset_file_roots: list[str] = Field(
        default_factory=list,
        description="directories file:// dataset URIs may name (a shared filesystem); empty: file:// refused",
    )
    stream_buffer_rows: int = Field(
        262_144, ge=1024, description="rows a streamed job shuffles at once: its memory, whatever the dataset's size"
    )
    stream_sample_rows: int = Field(
        65_536, ge=256, description="rows a streamed job reads at start for its validation set and training sample"
    )
    artifact_store_url: str | None = Field(
        None,
        description="where model weights, checkpoints and uploaded datasets are kept: s3://bucket/prefix or "
        "file:///shared/dir; unset: artifacts/ beside the embedded SQLite file, or the database itself otherwise",
    )
    upload_stream_over_bytes: int = Field(
        16 * 1024 * 1024, ge=1,
        description="a Parquet, CSV or .npz upload larger than this is copied to the artifact store as it arrives "
        "(CSV and .npz converted to Parquet on the way) and trained by streaming, never held whole (needs an "
        "artifact store; raise max_upload_bytes for large files)",
    )
    max_reference_objects: int = Field(10_000, ge=1, description="most Parquet objects one dataset URI may match")
    rate_limit_per_s: float = Field(100.0, gt=0, description="sustained requests per second per API key")
    rate_limit_burst: int = Field(200, ge=1, description="requests a key may make at once before throttling")
    auth_cache_ttl_s: float = Field(
        1.0, ge=0, le=60, description="how long a verified API key is trusted without asking the database again"
    )
    model_cache_size: int = Field(16, ge=1, description="models kept loaded per API process")
    task_time_limit_s: int = Field(6 * 3600, ge=60, description="hard limit on one training job")
    cancel_poll_s: float = Field(0.5, gt=0, description="how often a worker re-reads a job's cancel flag")
    # faults (README "Faults"): a running job's worker renews its lease by heartbeat; the reconciler
    # re-queues jobs whose lease expired and re-sends queued jobs the broker may have lost
    lease_timeout_s: float = Field(60.0, gt=0, description="a running job with no heartbeat for this long is re-queued")
    heartbeat_s: float = Field(10.0, gt=0, description="how often a training worker renews its job's lease")
    reconcile_every_s: float = Field(10.0, ge=0, description="reconciler period in every API and worker (0: off)")
    redispatch_after_s: float = Field(300.0, gt=0, description="a job queued this long since its last send is re-sent")
    max_attempts: int = Field(3, ge=1, description="runs of a job (first + retries after lost workers) before failed")
    checkpoint_db_every_s: float = Field(
        30.0, ge=0, description="least seconds between copies of a job's checkpoint into the database (0: each epoch)"
    )
    # webhooks (README "Webhooks"): the final event of a job, POSTed and signed, retried with backoff
    webhook_allow_private: bool = Field(
        False, description="allow webhook URLs on private, loopback and link-local addresses (tests, closed networks)"
    )
    webhook_poll_s: float = Field(
        1.0, ge=0, description="how often each API and worker process sends due webhooks (0: off)"
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="deadline of one webhook attempt, all of it: name lookup, connect, send, answer"
    )
    webhook_lease_s: float | None = Field(
        None,
        gt=0,
        description="how long a dispatcher holds a delivery it took before another may retry it; default: "
        f"webhook_timeout_s + 30, and never under webhook_timeout_s + {WEBHOOK_LEASE_MARGIN_S:g}",
    )
    webhook_concurrency: int = Field(
        8, ge=1, description="deliveries each API and worker process sends at once (a slow receiver holds one)"
    )
    webhook_concurrency_per_tenant: int = Field(
        2, ge=1, description="of those, at most this many for one tenant: one tenant's slow receivers never hold "
        "every sender, so another tenant's deliveries still go out at once"
    )
    secrets_key: SecretStr | None = Field(
        None,
        description="base64url of 32 bytes sealing webhook secrets at rest (AES-256-GCM), the same in every API and "
        "worker process; unset: generated once into data_dir/secrets.key (0600), shared by processes on that directory",
    )
    webhook_backoff_s: float = Field(2.0, gt=0, description="wait before the 2nd attempt; doubled after each failure")
    webhook_backoff_max_s: float = Field(600.0, gt=0, description="longest wait between two attempts")
    webhook_retry_for_s: float = Field(
        24 * 3600.0, gt=0, description="a delivery not accepted this long after its event is given up (failed)"
    )
    sse_poll_s: float = Field(0.3, gt=0, le=10, description="how often an event stream looks for new job events")
    sse_heartbeat_s: float = Field(15.0, gt=0, description="a comment line after this long without an event")
    sse_max_streams_per_key: int = Field(8, ge=1, description="open event streams one API key may hold (429 beyond)")
    sse_max_streams_per_tenant: int = Field(32, ge=1, description="open event streams per tenant, all keys (429)")
    sse_idle_timeout_s: float = Field(
        900.0, gt=0, description="an event stream without a new event for this long ends (clients resume by seq)"
    )
    sse_key_check_s: float = Field(
        1.0, gt=0, le=60, description="how often an open stream re-checks its key (revoked or expired: it ends)"
    )

    # operations (README "Operations"): logs, metrics, tracing, shared rate limits, tenant quotas
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="log lines: json (one object per line), text, or auto (text for `serve` on a terminal)"
    )
    log_level: str = Field("INFO", description="level of the service's own loggers")
    request_telemetry: bool = Field(
        True, description="per-request metrics, request id and access log line (off only to measure their cost)"
    )
    metrics_public: bool = Field(
        True, description="GET /metrics without a key (scrapers usually have none); false: an admin key is needed"
    )
    worker_metrics_port: int = Field(
        0, ge=0, le=65535, description="port of a worker node's /metrics (all its pool processes); 0: not served"
    )
    rate_limit_backend: Literal["auto", "memory", "redis"] = Field(
        "auto", description="where token buckets live: auto (Redis when the broker is Redis), memory, redis"
    )
    rate_limit_redis_url: str | None = Field(None, description="Redis of the shared buckets; default: the broker")
    quota_max_active_jobs: int | None = Field(
        None, ge=1, description="default per-tenant limit on queued + running jobs (none: unlimited)"
    )
    quota_max_stored_bytes: int | None = Field(
        None, ge=1, description="default per-tenant limit on stored dataset + model bytes (none: unlimited)"
    )
    quota_max_models: int | None = Field(None, ge=1, description="default per-tenant limit on models (none: unlimited)")
    quota_max_running_sweeps: int | None = Field(
        4, ge=1, description="per-tenant limit on running sweeps (none: unlimited); beyond it a new sweep is a 429"
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP endpoint: traces are exported when set (or when OTEL_EXPORTER_OTLP_ENDPOINT is)"
    )

    @field_validator("secrets_key", mode="before")
    @classmethod
    def _empty_secrets_key_is_unset(cls, value: object) -> object:
        """``LIPSPLINE_SECRETS_KEY=`` (compose's default when .env sets none) means the key file."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _webhook_lease_outlasts_an_attempt(self) -> Settings:
        # one delivery must never be in flight twice: a lease that ended while its attempt could still
        # be sending would let a second dispatcher take the delivery and send it again meanwhile
        if self.webhook_lease_s is not None and self.webhook_lease_s < self.webhook_timeout_s + WEBHOOK_LEASE_MARGIN_S:
            raise ValueError(
                f"webhook_lease_s ({self.webhook_lease_s:g}) must be at least webhook_timeout_s "
                f"({self.webhook_timeout_s:g}) + {WEBHOOK_LEASE_MARGIN_S:g} s"
            )
        return self

    @property
    def webhook_lease(self) -> float:
        """Seconds a taken delivery stays with its dispatcher: always past the attempt's deadline."""
        if self.webhook_lease_s is not None:
            return self.webhook_lease_s
        return self.webhook_timeout_s + 30.0

    @property
    def redis_rate_limit_url(self) -> str | None:
        """The Redis holding the shared token buckets, or None for the in-process ones."""
        if self.rate_limit_backend == "memory":
            return None
        url = self.rate_limit_redis_url or (None if self.embedded_broker else self.broker_url)
        if url is None or not url.startswith(("redis://", "rediss://", "unix://")):
            if self.rate_limit_backend == "redis":
                raise ValueError("LIPSPLINE_RATE_LIMIT_BACKEND=redis needs a Redis broker or RATE_LIMIT_REDIS_URL")
            return None
        return url

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'lipspline.sqlite3').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url == EMBEDDED_BROKER

    @property
    def broker_dir(self) -> Path:
        return (self.data_dir / "broker").resolve()

    @property
    def checkpoint_dir(self) -> Path:
        return (self.data_dir / "checkpoints").resolve()

    def ensure_dirs(self) -> None:
        """Create the data directories this configuration writes into, readable by their owner only.

        The data directory holds the embedded database (API key hashes, webhook secrets), the API
        key file and every dataset: 0700, so no other local user can read them.
        """
        created = not self.data_dir.exists()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if created or self.data_dir.stat().st_uid == os.getuid():
            self.data_dir.chmod(0o700)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if self.embedded_broker:
            for sub in ("queue", "processed", "control"):
                (self.broker_dir / sub).mkdir(parents=True, exist_ok=True)


def get_settings() -> Settings:
    """Read the environment now (tests and the CLI change it between calls)."""
    return Settings()
