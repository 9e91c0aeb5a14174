"""Settings from ``LIPSPLINE_*`` environment variables (docs/design.md#settings).

One object shared by the API, the worker and the CLI, so every process of a
deployment reads the same database, broker and data directory.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The broker URL meaning "no external server": a kombu filesystem transport under the data dir.
EMBEDDED_BROKER = "embedded://"


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
        """Create the data directories this configuration writes into."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if self.embedded_broker:
            for sub in ("queue", "processed", "control"):
                (self.broker_dir / sub).mkdir(parents=True, exist_ok=True)


def get_settings() -> Settings:
    """Read the environment now (tests and the CLI change it between calls)."""
    return Settings()
