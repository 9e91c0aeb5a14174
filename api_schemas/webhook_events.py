"""The webhook events: what each POST to a tenant's endpoints carries, one contract per event.

Every delivery is a JSON object signed like the others (``X-LipSpline-Signature``, HMAC-SHA256
over timestamp and body with the tenant's secret); its ``event`` member is also sent as the
``X-LipSpline-Event`` header, and ``X-LipSpline-Delivery`` names the delivery (a receiver may
see one twice: drop repeats by it). Each event is written to the outbox in the transaction of
the change it reports, so it is sent exactly when that change committed.

Who receives what: a job's final event goes to the job's ``notify_url`` and to every endpoint
registered with ``POST /v1/webhooks``; every other event (sweeps, registry) to the registered
endpoints only.

The server builds each payload through these models, so the documented fields are exactly
what is sent (``model_dump(mode="json")``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from api_schemas.http import Timestamp

#: every event name a delivery can carry (``X-LipSpline-Event``)
JOB_EVENTS = ("job.succeeded", "job.failed", "job.cancelled")
SWEEP_FINISHED, SWEEP_CANCELLED = "sweep.finished", "sweep.cancelled"
VERSION_CREATED, ALIAS_MOVED = "registry.version_created", "registry.alias_moved"


class JobFinishedEvent(BaseModel):
    """``job.succeeded`` / ``job.failed`` / ``job.cancelled``: a job ended (its SSE ``final`` event too)."""

    event: Literal["job.succeeded", "job.failed", "job.cancelled"] = Field(description="`job.` + the final status")
    job_id: str
    status: Literal["succeeded", "failed", "cancelled"]
    model_id: str | None = Field(description="the trained model (succeeded only), else null")
    error: str | None = Field(description="why it failed (failed only), else null")
    dataset_id: str | None = Field(description="the dataset it trained on (null once deleted)")
    train_seconds: float | None = Field(description="seconds of training, when it trained")
    finished_at: str = Field(description="when it ended (ISO 8601, UTC)")


class RegisteredVersionRef(BaseModel):
    name: str = Field(description="the registered model's name")
    version: int | None = Field(description="the version the model became; null if the name was deleted meanwhile")


class _SweepEnded(BaseModel):
    sweep_id: str
    dataset_id: str | None = Field(description="the dataset the trials trained on (null once deleted)")
    trials_planned: int = Field(description="trials in the plan when the sweep ended (dropped ones not counted)")
    trials_with_model: int = Field(
        description="trials that ended with a model: the fronts and the selection cover these"
    )
    selected_trial: int | None = Field(description="the trial the selection rule chose; null when none satisfies it")
    selected_model_id: str | None = Field(description="that trial's model; null when nothing was selected")
    note: str | None = Field(description="why nothing was selected, or how the sweep ended (as `GET /v1/sweeps/{id}`)")
    finished_at: Timestamp = Field(description="when the sweep closed")


class SweepFinishedEvent(_SweepEnded):
    """``sweep.finished``: every planned trial has ended and the sweep closed by itself."""

    event: Literal["sweep.finished"] = SWEEP_FINISHED
    status: Literal["succeeded", "failed"] = Field(
        description="succeeded when at least one trial produced a model, failed when none did"
    )
    registered_as: RegisteredVersionRef | None = Field(
        description="with the sweep's `register_as` and a selected model: where it was registered (a "
        "`registry.version_created` event is sent for that version too); else null"
    )


class SweepCancelledEvent(_SweepEnded):
    """``sweep.cancelled``: the sweep was cancelled on request (its active trials are being stopped)."""

    event: Literal["sweep.cancelled"] = SWEEP_CANCELLED
    status: Literal["cancelled"] = "cancelled"


class VersionCreatedEvent(BaseModel):
    """``registry.version_created``: a model became the next version of a registered name.

    Sent for every way a version is made: ``POST /v1/registered-models/{name}/versions``, a
    job's ``register_as`` and a sweep's ``register_as``.
    """

    event: Literal["registry.version_created"] = VERSION_CREATED
    name: str = Field(description="the registered model's name")
    version: int = Field(description="the new version number (1, 2, 3 ...)")
    model_id: str = Field(description="the model that version is")
    reference: str = Field(description="`NAME/versions/N`: the model reference for it")
    created_by: str = Field(description="`key:<API key prefix>` of the caller, or `job:<job id>` for a register_as")
    created_at: Timestamp


class AliasMovedEvent(BaseModel):
    """``registry.alias_moved``: an alias was set, moved or removed (the alias history's new entry).

    A move to the version the alias already names changes nothing and sends nothing.
    """

    event: Literal["registry.alias_moved"] = ALIAS_MOVED
    name: str = Field(description="the registered model's name")
    alias: str = Field(description="the alias, e.g. `production`")
    from_version: int | None = Field(description="the version it named before; null: it was set for the first time")
    to_version: int | None = Field(description="the version it names now; null: it was removed")
    model_id: str | None = Field(description="the model `to_version` is; null when the alias was removed")
    reference: str = Field(description="`NAME@ALIAS`: predict through it to get `to_version` from now on")
    actor: str = Field(description="`key:<API key prefix>` of the caller")
    at: Timestamp


#: any delivery's body, told apart by ``event``
WebhookEvent = Annotated[
    JobFinishedEvent | SweepFinishedEvent | SweepCancelledEvent | VersionCreatedEvent | AliasMovedEvent,
    Field(discriminator="event"),
]
