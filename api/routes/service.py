"""Liveness, readiness and Prometheus metrics (no API key needed)."""

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import func, select, text

from api.deps import SessionDep, SettingsDep
from api.metrics import REQUESTS
from shared.models import Job
from shared.queue import broker_answers, broker_queue_depths

router = APIRouter(tags=["service"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database or broker unreachable"}})
def readyz(session: SessionDep, settings: SettingsDep) -> Response:
    """The database and the broker both answer; 503 otherwise."""
    checks: dict[str, str] = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready"
        checks["database"] = f"unreachable: {type(exc).__name__}"
    checks["broker"] = "ok" if broker_answers(settings.redis_url) else "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(session: SessionDep, settings: SettingsDep) -> str:
    """Prometheus text: jobs by type and status, queue depth, HTTP requests."""
    lines = [
        "# HELP mnistq_jobs Jobs in the database by type and status.",
        "# TYPE mnistq_jobs gauge",
    ]
    for job_type, status, count in session.execute(
        select(Job.type, Job.status, func.count()).group_by(Job.type, Job.status)
    ):
        lines.append(f'mnistq_jobs{{type="{job_type}",status="{status}"}} {count}')
    lines += [
        "# HELP mnistq_queue_depth Messages waiting in each broker queue.",
        "# TYPE mnistq_queue_depth gauge",
    ]
    depths = broker_queue_depths(settings.redis_url) or {}
    for queue, depth in depths.items():
        lines.append(f'mnistq_queue_depth{{queue="{queue}"}} {depth}')
    lines += [
        "# HELP mnistq_http_requests_total HTTP requests by method, route and status.",
        "# TYPE mnistq_http_requests_total counter",
    ]
    for (method, route, code), count in sorted(REQUESTS.items()):
        lines.append(
            f'mnistq_http_requests_total{{method="{method}",route="{route}",status="{code}"}} '
            f"{count}"
        )
    return "\n".join(lines) + "\n"
