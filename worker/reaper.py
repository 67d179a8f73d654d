"""The reaper: requeue jobs whose worker vanished and re-send messages that were lost.

Every worker runs it in a thread (``MNISTQ_REAP_INTERVAL_SECONDS``); ``mnistq reap`` runs one
pass by hand. Several reapers at once are harmless: the moves are conditional UPDATEs and a
duplicate message finds nothing to claim.
"""

import logging
import threading

from sqlalchemy import select

from shared import jobs
from shared.config import get_settings
from shared.db import session_scope
from shared.models import Job
from shared.queue import enqueue

log = logging.getLogger(__name__)


def reap_once() -> list[str]:
    """One pass; returns the ids it (re-)enqueued."""
    settings = get_settings()
    with session_scope() as session:
        ids = jobs.reap(
            session,
            max_attempts=settings.max_attempts,
            stale_queued_seconds=settings.requeue_after_seconds,
        )
        session.commit()
        rows = session.execute(select(Job.id, Job.type).where(Job.id.in_(ids)))
        types = {job_id: job_type for job_id, job_type in rows}
    for job_id in ids:
        enqueue(types[job_id], job_id)
    if ids:
        log.info("reaper re-enqueued %d job(s)", len(ids))
    return ids


def run_forever(stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            reap_once()
        except Exception:  # the reaper must outlive a broker or database hiccup
            log.exception("reaper pass failed")
