"""``/v1/sweeps``: a search over config paths run as ordinary jobs, its Pareto fronts and the selected model.

The engine (``lipspline.sweeps``) validates and plans; ``lipspline_platform.sweeps`` owns the
rows and advancing, ``lipspline_platform.sweep_views`` builds the answers (a whole page in a bounded
number of queries); this router only parses, checks ownership, limits and quotas, and calls.

What a creation costs is bounded before it is spent: the space's size (paths, values per
path, values in all) is measured against the deployment's limits first, in a few ``len()``
calls, before any value is validated, fingerprinted or expanded (the request schema has
already refused anything past its hard ceilings while parsing). The quotas come next, in
the creating transaction: a sweep's trials are jobs, so its budget must fit the tenant's
job quotas (``service/quotas.py``), and the tenant may run only so many sweeps at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from api_schemas.http import LabelsPatch
from api_schemas.sweeps import SweepAccepted, SweepCreate, SweepList, SweepOut, SweepStatus
from lipspline.sweeps.space import SpaceError
from lipspline_platform import registry, sweeps
from lipspline_platform.db.engine import Session, session_scope
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import SweepRow
from lipspline_platform.settings import Settings
from lipspline_platform.sweep_views import sweep_out, sweeps_out
from service import labels, quotas
from service.http.idempotency import IdempotencyKey, IdempotentRequest, fingerprint
from service.http.limits import check_network, limit_exceeded
from service.http.openapi_docs import created_headers, problems
from service.http.pagination import LINK_HEADER, Page, paged
from service.http.problems import ProblemError, invalid_field
from service.security.deps import AppSettings, DbSession, ReadTenant, TrainTenant
from service.security.ownership import found, is_id

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])
#: the route's name in the idempotency records
CREATE_ROUTE = "POST /v1/sweeps"


def _get(session: Session, sweep_id: str, tenant: str, *, lock: bool = False) -> SweepRow:
    return found(sweeps.find(session, tenant, sweep_id, lock=lock), "sweep", sweep_id)


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
        ),
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
                             "max_sweep_paths", settings.max_sweep_paths)
    total = 0
    for path, values in space.items():
        if not isinstance(values, list):
            continue  # a range: its count is bounded by the schema
        if len(values) > settings.max_sweep_values_per_path:
            limit = settings.max_sweep_values_per_path
            raise limit_exceeded(f"space.{path}", f"{len(values)} values exceed the limit of {limit} per path",
                                 "max_sweep_values_per_path", limit)
        total += len(values)
    if total > settings.max_sweep_space_values:
        limit = settings.max_sweep_space_values
        raise limit_exceeded("space", f"{total} values in all exceed the limit of {limit}", "max_sweep_space_values",
                             limit)


def _trial_field(params: dict) -> Callable[[str], str]:
    """The request field behind a trial's config path: the space path that set it (or a part of it), else the base."""

    def field_of(path: str) -> str:
        for given in params:
            if path == given or path.startswith(f"{given}.") or given.startswith(f"{path}."):
                return f"space.{given}"
        return f"base_config.{path}"

    return field_of


def _create(spec: SweepCreate, settings: Settings, tenant: str, idem: IdempotentRequest) -> Response:
    """The sweep itself: every check first, then the sweep row, its first trials and the key's record in one commit."""
    if spec.budget.max_trials > settings.max_sweep_trials:
        raise limit_exceeded("budget.max_trials", f"{spec.budget.max_trials} trials exceed the limit of "
                             f"{settings.max_sweep_trials}", "max_sweep_trials", settings.max_sweep_trials)
    # the labels are columns of their own (editable); the stored request is what the engine plans from
    request = spec.model_dump(mode="json", by_alias=True, exclude={"name", "tags", "description", "base_config"})
    request["space"] = spec.space_json()
    # the base as given: a trial's own values (a target radius) then resolve the defaults they imply
    request["base_config"] = spec.base_config.explicit_json()
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
                               kind="not-found", field="dataset_id", errors=errors)
        for config, params in zip(sweeps.trial_configs(engine_spec, planned), planned, strict=True):
            check_network(config, dataset, settings, field_of=_trial_field(params))
        if spec.register_as is not None and registry.find_name(session, tenant, spec.register_as) is None:
            detail = f"register_as: registered model {spec.register_as!r} does not exist"
            errors = [{"field": "register_as", "message": "no registered model of that name"}]
            raise ProblemError(404, "Not Found", detail, kind="not-found", field="register_as", errors=errors)
        at_once = min(spec.budget.max_concurrent, len(planned))
        quotas.check_new_sweep(session, tenant, settings, trials=len(planned), at_once=at_once)
        idem.finish(202, body, headers, session=session)
        to_send = sweeps.create(session, sweep_id=sweep_id, tenant_id=tenant, dataset_id=spec.dataset_id,
                                request=request, planned=planned, register_as=spec.register_as, name=spec.name,
                                tags=spec.tags, description=spec.description)
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
    listed = paged(page, lambda window: sweeps.list_sweeps(session, tenant, window, status=status,
                                                           dataset_id=dataset_id, name=name, tags=tag))
    # the whole page's answers in a bounded number of queries (lipspline_platform/sweep_views.py)
    return SweepList(items=sweeps_out(session, listed.rows), next_cursor=listed.next_cursor)


@router.get("/{sweep_id}", response_model=SweepOut, responses=problems(404))
def get_sweep(sweep_id: str, session: DbSession, tenant: ReadTenant) -> SweepOut:
    """Progress, every trial's config and results, the Pareto fronts and the selected model."""
    return sweep_out(session, _get(session, sweep_id, tenant))


@router.patch("/{sweep_id}", operation_id="update_sweep", response_model=SweepOut, responses=labels.PATCH_RESPONSES)
def update_sweep(sweep_id: str, body: LabelsPatch, session: DbSession, tenant: TrainTenant) -> SweepOut:
    """Rename, retag or redescribe a sweep (JSON merge semantics: a member left out is unchanged, ``null``
    clears it, ``tags`` replaces the list). Its trials' jobs keep their own labels."""
    row = _get(session, sweep_id, tenant, lock=True)
    labels.patch(session, "sweep", row, body)
    return sweep_out(session, row)


@router.post("/{sweep_id}/cancel", response_model=SweepOut, responses=problems(404, (409, "the sweep has finished")))
def cancel_sweep(sweep_id: str, session: DbSession, tenant: TrainTenant) -> SweepOut:
    """Stop launching trials and cancel the running ones (they stop within one epoch)."""
    row = _get(session, sweep_id, tenant, lock=True)
    if row.status != sweeps.RUNNING:
        if row.status == "cancelled":
            return sweep_out(session, row)
        raise ProblemError(409, "Conflict", f"sweep {sweep_id!r} already {row.status}", kind="sweep-finished")
    sweeps.cancel(session, row)
    return sweep_out(session, row)
