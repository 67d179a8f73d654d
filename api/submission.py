"""Record a job, commit, then enqueue: the one path every submission takes.

The row is committed before the message is sent so a worker can always find it. If the
broker refuses the message the row (and anything attached to it) is deleted and the client
gets 503: nothing is left behind. Idempotency keys are handled here too.
"""

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.errors import ApiError
from shared import jobs
from shared.keys import Caller
from shared.models import Blob, Job, JobType, utcnow
from shared.queue import EnqueueError, enqueue


def body_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _replay(session: Session, caller: Caller, key: str, digest: str) -> Job | None:
    job = session.scalar(select(Job).where(Job.owner == caller.key_id, Job.idempotency_key == key))
    if job is None:
        return None
    if job.body_sha256 != digest:
        raise ApiError(
            409,
            "idempotency_conflict",
            "This Idempotency-Key was already used with a different request body.",
        )
    return job


def submit(
    session: Session,
    caller: Caller,
    *,
    job_type: JobType,
    params: dict[str, Any],
    dataset: str,
    body_sha256: str,
    idempotency_key: str | None = None,
    model_job_id: str | None = None,
    callback_url: str | None = None,
    attach: Callable[[Job], None] | None = None,
) -> tuple[Job, bool]:
    """Return ``(job, created)``; ``created`` is False for an idempotent replay."""
    if idempotency_key:
        if len(idempotency_key) > 200:
            raise ApiError(
                422, "validation_error", "Idempotency-Key may be at most 200 characters."
            )
        existing = _replay(session, caller, idempotency_key, body_sha256)
        if existing is not None:
            return existing, False
    job = jobs.create(
        session,
        type=job_type,
        owner=caller.key_id,
        params=params,
        dataset=dataset,
        model_job_id=model_job_id,
        idempotency_key=idempotency_key,
        body_sha256=body_sha256,
        callback_url=callback_url,
    )
    if attach is not None:
        attach(job)
        job.created_at = job.queued_at = utcnow()  # queue time starts at commit
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = (
            _replay(session, caller, idempotency_key, body_sha256) if idempotency_key else None
        )
        if existing is None:
            raise
        return existing, False
    try:
        enqueue(job_type, job.id)
    except EnqueueError as exc:
        session.execute(delete(Blob).where(Blob.job_id == job.id))
        session.execute(delete(Job).where(Job.id == job.id))
        session.commit()
        raise ApiError(
            503, "queue_unavailable", f"The job was not accepted because {exc}; retry later."
        ) from exc
    return job, True
