"""Job state moves: conditional, fenced by attempt, never backwards."""

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from shared import jobs
from shared.models import EpochMetric, Job, JobStatus, JobType, utcnow


def _new(session: Session) -> Job:
    job = jobs.create(
        session, type=JobType.train, owner="k1", params={"epochs": 3}, dataset="mnist-sample"
    )
    session.commit()
    return job


def test_only_one_claim_wins(session: Session) -> None:
    """Two claims of one queued job: the first runs it, the second gets None."""
    job = _new(session)
    first = jobs.claim(session, job.id, worker="a", lease_seconds=30)
    second = jobs.claim(session, job.id, worker="b", lease_seconds=30)
    assert first is not None and first.status == "running" and first.attempt == 1
    assert first.worker == "a" and first.started_at is not None and first.queue_seconds is not None
    assert second is None


def test_stale_attempt_cannot_write(session: Session) -> None:
    """After a reap and re-claim, the old attempt's epochs and finish are rejected."""
    job = _new(session)
    jobs.claim(session, job.id, worker="a", lease_seconds=30)
    session.execute(
        update(Job).where(Job.id == job.id).values(lease_until=utcnow() - timedelta(seconds=1))
    )
    assert jobs.reap(session, max_attempts=3, stale_queued_seconds=600) == [job.id]
    assert session.get(Job, job.id, populate_existing=True).status == "queued"
    again = jobs.claim(session, job.id, worker="b", lease_seconds=30)
    assert again is not None and again.attempt == 2
    stats = {"epoch": 1, "loss": 1.0, "train_accuracy": 0.5, "val_accuracy": 0.5, "seconds": 0.1}
    assert not jobs.record_epoch(session, job.id, 1, stats, epochs=3, lease_seconds=30)
    assert not jobs.finish(session, job.id, 1, JobStatus.succeeded, result={})
    assert jobs.record_epoch(session, job.id, 2, stats, epochs=3, lease_seconds=30)
    assert jobs.finish(session, job.id, 2, JobStatus.succeeded, result={"ok": 1})
    session.commit()
    done = session.get(Job, job.id, populate_existing=True)
    assert done.status == "succeeded" and done.run_seconds is not None
    assert done.progress == {"epoch": 1, "epochs": 3}
    assert session.get(EpochMetric, (job.id, 1)) is not None


def test_finished_job_never_moves_again(session: Session) -> None:
    """A succeeded job cannot be claimed, finished again or cancelled back."""
    job = _new(session)
    jobs.claim(session, job.id, worker="a", lease_seconds=30)
    assert jobs.finish(session, job.id, 1, JobStatus.failed, error_code="x", error_message="y")
    assert jobs.claim(session, job.id, worker="b", lease_seconds=30) is None
    assert not jobs.finish(session, job.id, 1, JobStatus.succeeded)
    jobs.request_cancel(session, session.get(Job, job.id))
    assert session.get(Job, job.id, populate_existing=True).status == "failed"


def test_cancel_queued_is_immediate_and_running_is_requested(session: Session) -> None:
    """Queued jobs cancel at once and never start; running ones get cancel_requested."""
    queued, running = _new(session), _new(session)
    jobs.claim(session, running.id, worker="a", lease_seconds=30)
    assert jobs.request_cancel(session, queued).status == "cancelled"
    assert jobs.claim(session, queued.id, worker="a", lease_seconds=30) is None
    r = jobs.request_cancel(session, running)
    assert r.status == "running" and r.cancel_requested
    assert jobs.heartbeat(session, running.id, 1, lease_seconds=30).cancel_requested


def test_attempt_budget_ends_in_worker_lost(session: Session) -> None:
    """A job whose lease expires with no attempts left fails with worker_lost."""
    job = _new(session)
    jobs.claim(session, job.id, worker="a", lease_seconds=30)
    session.execute(
        update(Job).where(Job.id == job.id).values(lease_until=utcnow() - timedelta(seconds=1))
    )
    assert jobs.reap(session, max_attempts=1, stale_queued_seconds=600) == []
    done = session.get(Job, job.id, populate_existing=True)
    assert done.status == "failed" and done.error_code == "worker_lost"


def test_reap_resends_stale_queued_jobs_once_per_period(session: Session) -> None:
    """A queued job whose message may be lost is re-sent, then not again until stale."""
    job = _new(session)
    session.execute(
        update(Job).where(Job.id == job.id).values(queued_at=utcnow() - timedelta(hours=1))
    )
    assert jobs.reap(session, max_attempts=3, stale_queued_seconds=60) == [job.id]
    assert jobs.reap(session, max_attempts=3, stale_queued_seconds=60) == []


def test_retry_requeues_only_failed_or_cancelled_and_keeps_fencing(session: Session) -> None:
    """Retry moves failed/cancelled back to queued with a clean slate; the next claim gets a
    higher attempt, so the old attempt still cannot write."""
    job = _new(session)
    assert not jobs.retry(session, job)  # queued: nothing to retry
    jobs.claim(session, job.id, worker="a", lease_seconds=30)
    assert not jobs.retry(session, job)  # running
    jobs.finish(session, job.id, 1, JobStatus.failed, error_code="boom", error_message="x")
    assert jobs.retry(session, job)
    assert (job.status, job.retries, job.error_code, job.finished_at) == ("queued", 1, None, None)
    again = jobs.claim(session, job.id, worker="b", lease_seconds=30)
    assert again is not None and again.attempt == 2 and again.queue_seconds is not None
    assert not jobs.finish(session, job.id, 1, JobStatus.succeeded)
    assert jobs.finish(session, job.id, 2, JobStatus.succeeded)
    assert not jobs.retry(session, session.get(Job, job.id, populate_existing=True))


def test_lost_leases_have_their_own_budget(session: Session) -> None:
    """Each expired lease counts once; the job fails after max_attempts losses in one run."""
    job = _new(session)
    for expected in ([job.id], [job.id], []):
        claimed = jobs.claim(session, job.id, worker="a", lease_seconds=30)
        assert claimed is not None
        session.execute(
            update(Job).where(Job.id == job.id).values(lease_until=utcnow() - timedelta(seconds=1))
        )
        assert jobs.reap(session, max_attempts=3, stale_queued_seconds=600) == expected
    done = session.get(Job, job.id, populate_existing=True)
    assert (done.status, done.error_code, done.lost) == ("failed", "worker_lost", 2)
    assert "3 times" in (done.error_message or "")
