"""Tenancy: a key sees only what it submitted, an admin key sees everything."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import ApiError, not_found
from shared.keys import Caller
from shared.models import Dataset, Job, JobStatus


def visible(stmt: Any, model: Any, caller: Caller) -> Any:
    return stmt if caller.is_admin else stmt.where(model.owner == caller.key_id)


def get_job(session: Session, caller: Caller, job_id: str) -> Job:
    job = session.scalar(visible(select(Job).where(Job.id == job_id), Job, caller))
    if job is None:
        raise not_found("job", job_id)
    return job


def get_dataset(session: Session, caller: Caller, dataset_id: str) -> Dataset:
    row = session.scalar(visible(select(Dataset).where(Dataset.id == dataset_id), Dataset, caller))
    if row is None:
        raise not_found("dataset", dataset_id)
    return row


def require_succeeded(job: Job, what: str) -> None:
    if job.status != JobStatus.succeeded:
        raise ApiError(
            409,
            "job_not_succeeded",
            f"{what} exist only once the job has succeeded; it is {job.status}.",
        )


def get_model(session: Session, caller: Caller, model_id: str) -> Job:
    """A succeeded train job the caller may use as a model."""
    job = get_job(session, caller, model_id)
    if job.type != "train":
        raise ApiError(
            422, "not_a_model", f"Job {model_id!r} is a {job.type} job, not a train job."
        )
    if job.status != JobStatus.succeeded:
        raise ApiError(
            409,
            "model_not_ready",
            f"Train job {model_id!r} is {job.status}; only a succeeded train job can predict.",
        )
    return job
