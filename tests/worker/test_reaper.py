"""The reaper pass against the real database and Redis."""

from datetime import timedelta

import redis
from sqlalchemy import update
from sqlalchemy.orm import Session

from shared import jobs
from shared.models import Job, JobType, utcnow
from worker.reaper import reap_once


def test_reap_once_requeues_an_expired_job_and_sends_its_message(
    session: Session, settings_env: dict[str, str]
) -> None:
    """A running predict job whose lease expired is queued again and re-sent on its queue."""
    job = jobs.create(session, type=JobType.predict, owner="k", params={}, dataset="d")
    session.commit()
    jobs.claim(session, job.id, worker="gone", lease_seconds=30)
    session.execute(
        update(Job).where(Job.id == job.id).values(lease_until=utcnow() - timedelta(seconds=1))
    )
    session.commit()
    assert reap_once() == [job.id]
    assert session.get(Job, job.id, populate_existing=True).status == "queued"
    client = redis.Redis.from_url(settings_env["REDIS_URL"])
    assert (client.llen("predict"), client.llen("train")) == (1, 0)
    assert reap_once() == []  # nothing more to do until it goes stale again
