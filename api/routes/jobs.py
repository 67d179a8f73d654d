"""Job history and control: list with filters, read one, its epochs, cancel."""

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import and_, or_, select

from api.access import get_job, visible
from api.deps import CallerDep, SessionDep, SettingsDep
from api.errors import ApiError
from api.presenters import epoch_out, job_out
from api.routes.train import ERRORS
from shared import jobs
from shared.models import EpochMetric, Job, JobStatus, as_utc
from shared.queue import EnqueueError, broker_answers, enqueue
from shared.schemas import EpochList, JobList, JobOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
MAX_LIMIT = 500


def _encode_cursor(job: Job) -> str:
    created = as_utc(job.created_at)
    assert created is not None
    raw = json.dumps([created.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        return datetime.fromisoformat(created), str(job_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ApiError(422, "validation_error", "cursor: not a cursor this API returned.") from exc


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@router.get("", response_model=JobList, responses=ERRORS)
def list_jobs(
    session: SessionDep,
    caller: CallerDep,
    type: Literal["train", "predict"] | None = None,
    status: Annotated[list[JobStatus] | None, Query()] = None,
    dataset: str | None = None,
    model: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> JobList:
    """Newest first. ``status`` may repeat (``?status=queued&status=running``)."""
    stmt = visible(select(Job), Job, caller)
    if type:
        stmt = stmt.where(Job.type == type)
    if status:
        stmt = stmt.where(Job.status.in_([s.value for s in status]))
    if dataset:
        stmt = stmt.where(Job.dataset == dataset)
    if model:
        stmt = stmt.where(Job.model_job_id == model)
    if created_after:
        stmt = stmt.where(Job.created_at > _utc(created_after))
    if created_before:
        stmt = stmt.where(Job.created_at < _utc(created_before))
    if cursor:
        at, job_id = _decode_cursor(cursor)
        stmt = stmt.where(or_(Job.created_at < at, and_(Job.created_at == at, Job.id < job_id)))
    rows = session.scalars(
        stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    ).all()
    items = rows[:limit]
    next_cursor = _encode_cursor(items[-1]) if len(rows) > limit else None
    return JobList(items=[job_out(j) for j in items], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses=ERRORS)
def read_job(job_id: str, session: SessionDep, caller: CallerDep) -> JobOut:
    return job_out(get_job(session, caller, job_id))


@router.get("/{job_id}/epochs", response_model=EpochList, responses=ERRORS)
def read_epochs(job_id: str, session: SessionDep, caller: CallerDep) -> EpochList:
    """One row per finished epoch, visible while the job runs."""
    job = get_job(session, caller, job_id)
    rows = session.scalars(
        select(EpochMetric).where(EpochMetric.job_id == job.id).order_by(EpochMetric.epoch)
    ).all()
    return EpochList(items=[epoch_out(r) for r in rows])


@router.post("/{job_id}/retry", status_code=202, response_model=JobOut, responses=ERRORS)
def retry_job(job_id: str, session: SessionDep, caller: CallerDep, settings: SettingsDep) -> JobOut:
    """Queue a failed or cancelled job again; a train job resumes from its last checkpoint."""
    job = get_job(session, caller, job_id)
    if job.status not in (JobStatus.failed, JobStatus.cancelled):
        raise ApiError(
            409,
            "not_retryable",
            f"Only failed or cancelled jobs can be retried; it is {job.status}.",
        )
    if not broker_answers(settings.redis_url, settings.enqueue_timeout):
        raise ApiError(503, "queue_unavailable", "The queue is unreachable; retry later.")
    if not jobs.retry(session, job):
        raise ApiError(409, "not_retryable", "The job changed state meanwhile; read it again.")
    session.commit()
    try:
        enqueue(job.type, job.id)
    except EnqueueError as exc:
        raise ApiError(
            503,
            "queue_unavailable",
            f"The job is queued again, but {exc}; the reaper will send it once the queue is back.",
        ) from exc
    return job_out(job)


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut, responses=ERRORS)
def cancel_job(job_id: str, session: SessionDep, caller: CallerDep) -> JobOut:
    """A queued job never starts; a running one stops at its next batch boundary."""
    job = get_job(session, caller, job_id)
    if JobStatus(job.status).finished:
        raise ApiError(409, "job_finished", f"Job {job_id!r} already ended as {job.status}.")
    job = jobs.request_cancel(session, job)
    session.commit()
    return job_out(job)
