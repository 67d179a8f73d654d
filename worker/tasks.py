"""Celery tasks: thin wrappers that take a job id and hand it to the job runners."""

import logging

from celery import Task

from shared import jobs
from shared.config import get_settings
from shared.db import session_scope
from shared.models import Job, JobType
from shared.queue import REAP_TASK, TASK_NAMES, enqueue, get_celery
from worker.prediction import run_predict_job
from worker.runtime import worker_name
from worker.training import run_train_job

log = logging.getLogger(__name__)
app = get_celery()


@app.task(name=TASK_NAMES[JobType.train], ignore_result=True, bind=True)
def train_task(self: Task, job_id: str) -> None:
    run_train_job(job_id, get_settings(), worker_name(self.request.hostname))


@app.task(name=TASK_NAMES[JobType.predict], ignore_result=True, bind=True)
def predict_task(self: Task, job_id: str) -> None:
    run_predict_job(job_id, get_settings(), worker_name(self.request.hostname))


def reap_once() -> list[str]:
    """Requeue jobs whose worker vanished and re-send messages that were lost."""
    settings = get_settings()
    with session_scope() as session:
        ids = jobs.reap(
            session,
            max_attempts=settings.max_attempts,
            stale_queued_seconds=settings.requeue_after_seconds,
        )
        session.commit()
        types = {j.id: j.type for j in session.query(Job).filter(Job.id.in_(ids))}
    for job_id in ids:
        enqueue(types[job_id], job_id)
    if ids:
        log.info("reaper re-enqueued %d job(s)", len(ids))
    return ids


@app.task(name=REAP_TASK, ignore_result=True)
def reap_task() -> None:
    reap_once()
