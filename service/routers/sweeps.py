"""``/v1/sweeps``: a search over config paths run as ordinary jobs, its Pareto fronts and the selected model.

The engine (``lipspline.sweeps``) validates and plans; ``lipspline_platform.sweeps`` owns the
rows and advancing; this router only checks ownership, limits and quotas and shapes the answers.

What a creation costs is bounded before it is spent: the space's size (paths, values per
path, values in all) is measured against the deployment's limits first, in a few ``len()``
calls, before any value is validated, fingerprinted or expanded (the request schema has
already refused anything past its hard ceilings while parsing). The quotas come next, in
the creating transaction: a sweep's trials are jobs, so its budget must fit the tenant's
job quotas (``service/quotas.py``), and the tenant may run only so many sweeps at once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api_schemas.http import LabelsPatch
from api_schemas.sweeps import (
    FrontPoint,
    Fronts,
    Selected,
    SweepAccepted,
    SweepCreate,
    SweepList,
    SweepOut,
    SweepProgress,
    SweepStatus,
    TrialOut,
)
from lipspline.sweeps.space import SpaceError
from lipspline_platform import registry, sweeps
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import SweepRow
from lipspline_platform.settings import Settings
from service import labels, quotas
from service.deps import AppSettings, DbSession, ReadTenant, TrainTenant
from service.idempotency import IdempotencyKey, IdempotentRequest, fingerprint
from service.limits import check_network, limit_exceeded
from service.openapi_docs import created_headers, problems
from service.ownership import is_id, owned
from service.pagination import LINK_HEADER, Page, newest_first
from service.problems import ProblemError, invalid_field

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])
#: the route's name in the idempotency records
CREATE_ROUTE = "POST /v1/sweeps"


@router.post(
    "",
    status_code=202,
    response_model=SweepAccepted,
    responses={
        202: created_headers("sweep"),
        **problems(
            (403, "the budget's trials would pass the tenant's max_models or max_stored_bytes quota "
             "(`quota-exceeded`)"),
            (404, "unknown dataset_id, or register_as names no registered model"),
            (409, "Idempotency-Key in use by a request still in flight"),
            (
                422,
                "a path that is not a config field, a value out of its field's range, an empty or unbounded "
                "space, a space over the size limits (max_sweep_paths, max_sweep_values_per_path, "
                "max_sweep_space_values), a budget over the tenant's quota (max_sweep_trials), a trial over a "
                "job limit, or an Idempotency-Key reused with another body",
            ),
            (429, "the tenant's max_running_sweeps quota is full, or budget.max_concurrent trials would pass its "
             "max_active_jobs quota (`quota-exceeded`, with Retry-After)"),
        ),  # fmt: skip
    },
)
def create_sweep(
    spec: SweepCreate, settings: AppSettings, tenant: TrainTenant, idempotency_key: IdempotencyKey = None
) -> Response:
    """Validate and plan every trial, record the sweep and launch its first trials; returns at once.

    With an ``Idempotency-Key`` a retried request replays the first answer instead of starting a
    second sweep (the key's record commits with the sweep row, as for ``POST /v1/jobs``).
    """
    check_space_size(spec, settings)  # first: everything after it costs in proportion to the space
    idem = IdempotentRequest(settings.resolved_database_url, tenant, CREATE_ROUTE, idempotency_key)
    request_fingerprint = fingerprint(spec.model_dump(mode="json", by_alias=True))
    return idem.respond(request_fingerprint, lambda: _create(spec, settings, tenant, idem))


def check_space_size(spec: SweepCreate, settings: Settings) -> None:
    """422 ``limit-exceeded`` naming the limit and the path when the space is larger than the deployment allows.

    Counts only (a ``len()`` per path), so a refused space costs nothing in proportion to its values.
    """
    space = spec.space
    if len(space) > settings.max_sweep_paths:
        raise limit_exceeded("space", f"{len(space)} paths exceed the limit of {settings.max_sweep_paths}",
                             "max_sweep_paths", settings.max_sweep_paths)  # fmt: skip
    total = 0
    for path, values in space.items():
        if not isinstance(values, list):
            continue  # a range: its count is bounded by the schema
        if len(values) > settings.max_sweep_values_per_path:
            limit = settings.max_sweep_values_per_path
            raise limit_exceeded(f"space.{path}", f"{len(values)} values exceed the limit of {limit} per path",
                                 "max_sweep_values_per_path", limit)  # fmt: skip
        total += len(values)
    if total > settings.max_sweep_space_values:
        limit = settings.max_sweep_space_values
        raise limit_exceeded("space", f"{total} values in all exceed the limit of {limit}", "max_sweep_space_values",
                             limit)  # fmt: skip


def _create(spec: SweepCreate, settings: Settings, tenant: str, idem: IdempotentRequest) -> Response:
    """The sweep itself: every check first, then the sweep row, its first trials and the key's record in one commit."""
    if spec.budget.max_trials > settings.max_sweep_trials:
        raise limit_exceeded("budget.max_trials", f"{spec.budget.max_trials} trials exceed the limit of "
                             f"{settings.max_sweep_trials}", "max_sweep_trials", settings.max_sweep_trials)  # fmt: skip
    # the labels are columns of their own (editable); the stored request is what the engine plans from
    request = spec.model_dump(mode="json", by_alias=True, exclude={"name", "tags", "description"})
    request["space"] = spec.space_json()
    try:
        engine_spec, planned = sweeps.plan(request)
    except SpaceError as error:
        raise invalid_field(error.field, error.message) from None
    sweep_id = new_id()
    body = SweepAccepted(id=sweep_id, status=sweeps.RUNNING, trials=len(planned)).model_dump(mode="json")
    headers = {"Location": f"/v1/sweeps/{sweep_id}"}
    with session_scope(settings.resolved_database_url) as session:
        dataset = sweeps.dataset_of(session, spec.dataset_id, tenant) if is_id(spec.dataset_id) else None
        if dataset is None:
            errors = [{"field": "dataset_id", "message": "no dataset of that id"}]
            raise ProblemError(404, "Not Found", f"dataset_id: dataset {spec.dataset_id!r} does not exist",
                               kind="not-found", field="dataset_id", errors=errors)  # fmt: skip
        for config in sweeps.trial_configs(engine_spec, planned):
            check_network(config, dataset, settings)
        if spec.register_as is not None and registry.find_name(session, tenant, spec.register_as) is None:
            detail = f"register_as: registered model {spec.register_as!r} does not exist"
            errors = [{"field": "register_as", "message": "no registered model of that name"}]
            raise ProblemError(404, "Not Found", detail, kind="not-found", field="register_as", errors=errors)
        at_once = min(spec.budget.max_concurrent, len(planned))
        quotas.check_new_sweep(session, tenant, settings, trials=len(planned), at_once=at_once)
        idem.finish(202, body, headers, session=session)
        to_send = sweeps.create(session, sweep_id=sweep_id, tenant_id=tenant, dataset_id=spec.dataset_id,
                                request=request, planned=planned, register_as=spec.register_as, name=spec.name,
                                tags=spec.tags, description=spec.description)  # fmt: skip
    sweeps.dispatch(settings, to_send)  # a lost message is re-sent by the reconciler: the jobs are queued rows
    return JSONResponse(body, status_code=202, headers=headers)


@router.get("", response_model=SweepList, responses={200: LINK_HEADER})
def list_sweeps(
    session: DbSession,
    tenant: ReadTenant,
    page: Page,
    status: Annotated[SweepStatus | None, Query(description="only sweeps in this state")] = None,
    dataset_id: Annotated[str | None, Query(max_length=64, description="only sweeps of this dataset")] = None,
    name: labels.NameFilter = None,
    tag: labels.TagFilter = None,
) -> SweepList:
    """The tenant's sweeps, newest first, a page at a time (``next_cursor``), filtered like the jobs list."""
    query = select(SweepRow).where(SweepRow.tenant_id == tenant)
    if status is not None:
        query = query.where(SweepRow.status == status)
    if dataset_id is not None:
        query = query.where(SweepRow.dataset_id == dataset_id)
    query = labels.filtered(query, "sweep", name, tag)
    found = newest_first(session, query, page, SweepRow)
    return SweepList(items=[sweep_out(session, row) for row in found.rows], next_cursor=found.next_cursor)


@router.get("/{sweep_id}", response_model=SweepOut, responses=problems(404))
def get_sweep(sweep_id: str, session: DbSession, tenant: ReadTenant) -> SweepOut:
    """Progress, every trial's config and results, the Pareto fronts and the selected model."""
    return sweep_out(session, owned(session, SweepRow, sweep_id, tenant, "sweep"))


@router.patch("/{sweep_id}", operation_id="update_sweep", response_model=SweepOut, responses=labels.PATCH_RESPONSES)
def update_sweep(sweep_id: str, body: LabelsPatch, session: DbSession, tenant: TrainTenant) -> SweepOut:
    """Rename, retag or redescribe a sweep (JSON merge semantics: a member left out is unchanged, ``null``
    clears it, ``tags`` replaces the list). Its trials' jobs keep their own labels."""
    row = owned(session, SweepRow, sweep_id, tenant, "sweep", lock=True)
    labels.patch(session, "sweep", row, body)
    return sweep_out(session, row)


@router.post("/{sweep_id}/cancel", response_model=SweepOut, responses=problems(404, (409, "the sweep has finished")))
def cancel_sweep(sweep_id: str, session: DbSession, tenant: TrainTenant) -> SweepOut:
    """Stop launching trials and cancel the running ones (they stop within one epoch)."""
    row = owned(session, SweepRow, sweep_id, tenant, "sweep", lock=True)
    if row.status != sweeps.RUNNING:
        if row.status == "cancelled":
            return sweep_out(session, row)
        raise ProblemError(409, "Conflict", f"sweep {sweep_id!r} already {row.status}", kind="sweep-finished")
    sweeps.cancel(session, row)
    return sweep_out(session, row)


# ---- the answer --------------------------------------------------------------------------------
def _trial_status(stopped_at: int | None, job_status: str) -> str:
    return "stopped" if stopped_at is not None and job_status == "cancelled" else job_status


def sweep_out(session: Session, row: SweepRow) -> SweepOut:
    pairs = sweeps.trials_and_jobs(session, row.id)
    found = sweeps.results(session, pairs)
    epochs = sweeps.epochs_run(session, [job.id for _, job in pairs])
    request = row.request
    summary = row.summary
    if summary is None and found:
        # running: the fronts of the trials finished so far (the selection waits for the end)
        summary = {**sweeps.summary_of(sweeps.spec_from_request(request), found).to_json(), "selected": None}
    radius = (summary or {}).get("radius")
    trials = []
    for trial, job in pairs:
        result = found.get(trial.trial)
        trials.append(
            TrialOut(
                trial=trial.trial,
                job_id=job.id,
                params=trial.params,
                status=_trial_status(trial.stopped_at_epoch, job.status),
                job_status=job.status,
                worker_host=job.worker_host,
                attempts=job.attempts,
                epochs=epochs.get(job.id, 0),
                stopped_at_epoch=trial.stopped_at_epoch,
                rung_scores=trial.rung_scores or {},
                model_id=result.model_id if result else None,
                score=result.score if result else None,
                certified_lipschitz=result.lipschitz if result else None,
                certified_accuracy=result.certified_accuracy if result else None,
            )
        )
    statuses = [t.status for t in trials]
    progress = SweepProgress(
        planned=len(row.plan),
        launched=row.launched,
        active=sum(s in ("queued", "running") for s in statuses),
        succeeded=statuses.count("succeeded"),
        stopped=statuses.count("stopped"),
        failed=statuses.count("failed"),
        cancelled=statuses.count("cancelled"),
        epochs=sum(t.epochs for t in trials),
    )
    front = selected = None
    if summary is not None:
        by_trial = {t.trial: t for t in trials}

        def point(index: int) -> FrontPoint:
            t = by_trial[index]
            at = found[index].outcome(index).certified_at(radius) if radius is not None else None
            return FrontPoint(trial=index, model_id=t.model_id, score=t.score,
                              certified_lipschitz=t.certified_lipschitz, certified_accuracy=at)  # fmt: skip

        front = Fronts(
            lipschitz=[point(i) for i in summary["lipschitz_front"]],
            certified_accuracy=[point(i) for i in summary["robust_front"]],
            radius=radius,
            note=summary.get("robust_front_note"),
        )
        chosen = summary.get("selected")
        if chosen is not None:
            selected = Selected(trial=chosen, model_id=row.selected_model_id, rule=request.get("select") or {},
                                registered_as=summary.get("registered_as"))  # fmt: skip
    return SweepOut(
        id=row.id,
        status=row.status,
        dataset_id=row.dataset_id,
        strategy=request["strategy"],
        budget=request["budget"],
        space=request["space"],
        select=request.get("select") or {},
        progress=progress,
        trials=trials,
        front=front,
        selected=selected,
        note=row.note,
        register_as=row.register_as,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        name=row.name,
        tags=row.tags or [],
        description=row.description,
    )
