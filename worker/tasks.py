"""Celery tasks: thin wrappers that take a job id and hand it to the job runners."""

import logging

from celery import Task

from shared.config import get_settings
from shared.models import JobType
from shared.queue import TASK_NAMES, get_celery
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
