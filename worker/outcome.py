"""Claim a job, run its body under a lease, and turn every outcome into a final state.

Any exception becomes a failed job with a readable code and message, and the worker keeps
going; a lost lease writes nothing (another attempt owns the job).
"""

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from shared import jobs
from shared.config import Settings
from shared.db import session_scope
from shared.exceptions import MnistqError, TrainingCancelled
from shared.models import Job, JobStatus
from worker import webhooks
from worker.lease import JobLease, LeaseLost

log = logging.getLogger(__name__)

Body = Callable[[Job, Settings, JobLease], dict[str, Any]]


def finish(
    session: Session,
    job: Job,
    status: JobStatus,
    *,
    result: dict[str, Any] | None = None,
    code: str | None = None,
    message: str | None = None,
) -> None:
    """End this attempt and commit what the session holds, or roll it all back if the
    attempt was stale (another attempt owns the job now)."""
    if jobs.finish(
        session, job.id, job.attempt, status, result=result, error_code=code, error_message=message
    ):
        session.commit()
    else:
        session.rollback()
        log.warning("job %s attempt %d was stale; its outcome was dropped", job.id, job.attempt)


def _end(job: Job, status: JobStatus, code: str, message: str) -> None:
    with session_scope() as session:
        finish(session, job, status, code=code, message=message)


def run_claimed(job_id: str, settings: Settings, worker: str, body: Body) -> None:
    with session_scope() as session:
        job = jobs.claim(session, job_id, worker=worker, lease_seconds=settings.lease_seconds)
        session.commit()
    if job is None:
        log.info("job %s is not claimable (taken, cancelled or gone); message dropped", job_id)
        return
    log.info("job %s attempt %d started", job.id, job.attempt)
    lease = JobLease(job.id, job.attempt, settings)
    try:
        _run(job, settings, lease, body)
    except LeaseLost:
        log.warning(
            "job %s attempt %d lost its lease; stopping without writes", job.id, job.attempt
        )
        return
    webhooks.deliver(job.id, settings)


def _run(job: Job, settings: Settings, lease: JobLease, body: Body) -> None:
    """Run the body; every outcome but a lost lease ends in a final state."""
    try:
        body(job, settings, lease)
        log.info("job %s succeeded", job.id)
    except TrainingCancelled:
        _end(job, JobStatus.cancelled, "cancelled", "Cancelled at the caller's request.")
        log.info("job %s cancelled", job.id)
    except MnistqError as exc:
        _end(job, JobStatus.failed, exc.code, str(exc))
        log.info("job %s failed: %s", job.id, exc)
    except MemoryError:
        _end(job, JobStatus.failed, "out_of_memory", "The worker ran out of memory on this job.")
    except Exception as exc:
        log.exception("job %s crashed", job.id)
        _end(job, JobStatus.failed, "internal_error", f"{type(exc).__name__}: {exc}")
