"""Job state moves, all in one place.

Every move is a conditional UPDATE (``WHERE status = ... AND attempt = ...``), so two
workers can never both claim a job and a stale attempt's writes are rejected (fencing)::

    queued --claim--> running --finish--> succeeded | failed | cancelled
       |                 `--lease expired (reap)--> queued (attempt budget) | failed/worker_lost
       `--cancel--> cancelled                        failed | cancelled --retry--> queued

Functions flush but never commit: the caller owns the transaction.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from shared.models import EpochMetric, Job, JobStatus, JobType, as_utc, utcnow


@dataclass(frozen=True)
class Heartbeat:
    owned: bool  # False: the lease was lost (reaped or finished elsewhere); stop writing
    cancel_requested: bool


def create(
    session: Session,
    *,
    type: JobType,
    owner: str,
    params: dict[str, Any],
    dataset: str,
    model_job_id: str | None = None,
    idempotency_key: str | None = None,
    body_sha256: str | None = None,
    callback_url: str | None = None,
) -> Job:
    now = utcnow()
    job = Job(
        type=type.value,
        status=JobStatus.queued.value,
        owner=owner,
        params=params,
        dataset=dataset,
        model_job_id=model_job_id,
        idempotency_key=idempotency_key,
        body_sha256=body_sha256,
        created_at=now,
        queued_at=now,
        callback_url=callback_url,
    )
    session.add(job)
    session.flush()
    return job


def _seconds_between(start: datetime | None, end: datetime) -> float | None:
    start = as_utc(start)
    return None if start is None else max(0.0, (end - start).total_seconds())


def claim(session: Session, job_id: str, *, worker: str, lease_seconds: float) -> Job | None:
    """Move a queued job to running for this worker; None if someone else has it or it ended."""
    now = utcnow()
    res = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.queued.value,
            Job.cancel_requested.is_(False),
        )
        .values(
            status=JobStatus.running.value,
            attempt=Job.attempt + 1,
            worker=worker,
            lease_until=now + timedelta(seconds=lease_seconds),
            heartbeat_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return None
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    if job.started_at is None:
        job.started_at = now
        job.queue_seconds = _seconds_between(job.queued_at or job.created_at, now)
    session.flush()
    return job


def _fenced(job_id: str, attempt: int) -> Any:
    return and_(Job.id == job_id, Job.attempt == attempt, Job.status == JobStatus.running.value)


def heartbeat(
    session: Session,
    job_id: str,
    attempt: int,
    *,
    lease_seconds: float,
    progress: dict[str, Any] | None = None,
) -> Heartbeat:
    """Extend the lease of ``attempt``; tells whether it is still ours and if cancel was asked."""
    now = utcnow()
    values: dict[str, Any] = {
        "lease_until": now + timedelta(seconds=lease_seconds),
        "heartbeat_at": now,
    }
    if progress is not None:
        values["progress"] = progress
    res = session.execute(
        update(Job)
        .where(_fenced(job_id, attempt))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return Heartbeat(owned=False, cancel_requested=False)
    cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    return Heartbeat(owned=True, cancel_requested=bool(cancel))


def record_epoch(
    session: Session,
    job_id: str,
    attempt: int,
    stats: dict[str, Any],
    *,
    epochs: int,
    lease_seconds: float,
) -> bool:
    """Store one finished epoch's metrics if ``attempt`` still owns the job."""
    beat = heartbeat(
        session,
        job_id,
        attempt,
        lease_seconds=lease_seconds,
        progress={"epoch": stats["epoch"], "epochs": epochs},
    )
    if not beat.owned:
        return False
    session.merge(
        EpochMetric(
            job_id=job_id,
            epoch=stats["epoch"],
            loss=stats["loss"],
            train_accuracy=stats["train_accuracy"],
            val_accuracy=stats.get("val_accuracy"),
            seconds=stats["seconds"],
        )
    )
    session.flush()
    return True


def finish(
    session: Session,
    job_id: str,
    attempt: int,
    status: JobStatus,
    *,
    result: dict[str, Any] | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
) -> bool:
    """End ``attempt`` as succeeded, failed or cancelled; False if the attempt was stale."""
    if not status.finished:
        raise ValueError(f"{status} is not a final status")
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        return False
    now = utcnow()
    res = session.execute(
        update(Job)
        .where(_fenced(job_id, attempt))
        .values(
            status=status.value,
            finished_at=now,
            run_seconds=_seconds_between(job.started_at, now),
            result=result,
            error_code=error_code,
            error_message=error_message,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    session.expire(job)
    return res.rowcount == 1  # type: ignore[attr-defined]


def request_cancel(session: Session, job: Job) -> Job:
    """Cancel a queued job now, or ask a running one to stop at its next batch boundary."""
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.queued.value)
        .values(status=JobStatus.cancelled.value, finished_at=now, cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.running.value)
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    session.refresh(job)
    return job


def retry(session: Session, job: Job) -> bool:
    """Put a failed or cancelled job back in the queue (the documented retry).

    ``attempt`` keeps counting, so writes of any earlier attempt stay fenced off; a train job
    resumes from its last checkpoint. Timings, result and error describe the new run.
    """
    res = session.execute(
        update(Job)
        .where(
            Job.id == job.id,
            Job.status.in_([JobStatus.failed.value, JobStatus.cancelled.value]),
        )
        .values(
            status=JobStatus.queued.value,
            queued_at=utcnow(),
            started_at=None,
            finished_at=None,
            queue_seconds=None,
            run_seconds=None,
            result=None,
            error_code=None,
            error_message=None,
            cancel_requested=False,
            lease_until=None,
            heartbeat_at=None,
            worker=None,
            progress=None,
            webhook=None,
            lost=0,
            retries=Job.retries + 1,
        )
        .execution_options(synchronize_session=False)
    )
    session.flush()
    session.refresh(job)
    return res.rowcount == 1  # type: ignore[attr-defined]


def reap(session: Session, *, max_attempts: int, stale_queued_seconds: float) -> list[str]:
    """Recover from lost workers and lost queue messages; returns job ids to (re-)enqueue.

    A running job whose lease expired goes back to ``queued`` (it resumes from its last
    checkpoint) while it has attempts left, else ends ``failed`` with ``worker_lost``. Jobs
    queued for longer than ``stale_queued_seconds`` are returned too: re-sending a message is
    harmless because only one claim can win.
    """
    now = utcnow()
    expired = session.scalars(
        select(Job).where(Job.status == JobStatus.running.value, Job.lease_until < now)
    ).all()
    for job in expired:
        if job.lost + 1 >= max_attempts:
            finish(
                session,
                job.id,
                job.attempt,
                JobStatus.failed,
                error_code="worker_lost",
                error_message=(
                    f"The worker running this job stopped responding {job.lost + 1} times; "
                    "giving up (retry it with POST /v1/jobs/{id}/retry)."
                ),
            )
        else:
            session.execute(
                update(Job)
                .where(_fenced(job.id, job.attempt), Job.lease_until < now)
                .values(
                    status=JobStatus.queued.value,
                    lease_until=None,
                    worker=None,
                    lost=Job.lost + 1,
                    queued_at=now,
                )
                .execution_options(synchronize_session=False)
            )
    session.flush()
    cutoff = now - timedelta(seconds=stale_queued_seconds)
    requeue = session.scalars(
        select(Job.id).where(
            Job.status == JobStatus.queued.value,
            (Job.heartbeat_at.is_(None) & (Job.queued_at < cutoff)) | (Job.heartbeat_at < cutoff),
        )
    ).all()
    stale = [j.id for j in expired if j.lost + 1 < max_attempts]
    ids = sorted(set(requeue) | set(stale))
    if ids:
        # Remember when each was re-sent so a long backlog is not re-sent on every pass.
        session.execute(
            update(Job)
            .where(Job.id.in_(ids))
            .values(heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids
