"""``GET /metrics``: this API process's Prometheus metrics (``service/http/metrics.py`` defines and
records them) and the jobs-by-status gauge read from the database."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.security.deps import require_admin_key


async def metrics_access(request: Request) -> None:
    """Open by default; with ``metrics_public`` off, only an ``admin`` key may scrape."""
    if not request.app.state.settings.metrics_public:
        await require_admin_key(request)


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    operation_id="get_prometheus_metrics",
    response_class=Response,
    dependencies=[Depends(metrics_access)],
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                     "description": "Prometheus text format (README: Metrics)"}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics of this API process, and jobs by status read from the database."""
    process, jobs = request.app.state.metrics_registries
    return Response(generate_latest(process) + generate_latest(jobs), media_type=CONTENT_TYPE_LATEST)
