"""The tenant's own object-store credentials for its dataset URIs: set, shown (never the keys), removed.

Registration (``POST /v1/datasets`` with an ``s3://`` URI) and the jobs that stream the rows
then read with them instead of the service's own credentials; the platform side, sealing
included, is ``lipspline_platform/storage/credentials.py``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from api_schemas.dataset_refs import StorageCredentialsIn, StorageCredentialsOut
from lipspline_platform.storage import credentials
from service.http.openapi_docs import problems
from service.http.problems import ProblemError
from service.security.deps import AppSettings, DbSession, ReadTenant, TrainTenant

router = APIRouter()
TAGS: list[str | object] = ["datasets"]
ROUTE = "/v1/storage/credentials"


def _none_stored() -> ProblemError:
    return ProblemError(404, "Not Found", "this tenant has stored no storage credentials", kind="not-found")


@router.put(ROUTE, response_model=StorageCredentialsOut, tags=TAGS)
def put_storage_credentials(spec: StorageCredentialsIn, session: DbSession, settings: AppSettings,
                            tenant: TrainTenant) -> StorageCredentialsOut:
    """Store (or replace) the keys the service reads this tenant's `s3://` dataset URIs with.

    Sealed at rest with the service's secrets key; no response ever shows them again (only the
    access key id's last four characters). Without them, the service's own credentials are used.
    """
    return credentials.put(session, settings, tenant, spec)


@router.get(ROUTE, response_model=StorageCredentialsOut, responses=problems(404), tags=TAGS)
def get_storage_credentials(session: DbSession, tenant: ReadTenant) -> StorageCredentialsOut:
    """Whether the tenant stored keys, and which (the access key id's last four characters), never the keys."""
    described = credentials.describe(session, tenant)
    if described is None:
        raise _none_stored()
    return described


@router.delete(ROUTE, status_code=204, responses=problems(404), tags=TAGS)
def delete_storage_credentials(session: DbSession, tenant: TrainTenant) -> Response:
    """Forget the tenant's keys: its URIs are read with the service's credentials again."""
    if not credentials.delete(session, tenant):
        raise _none_stored()
    return Response(status_code=204)
