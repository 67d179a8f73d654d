"""Rows to response bodies: the one place the job object's JSON shape is decided."""

from shared.models import Dataset, EpochMetric, Job, as_utc
from shared.schemas import DatasetOut, EpochOut, JobError, JobOut


def job_out(job: Job) -> JobOut:
    base = f"/v1/jobs/{job.id}"
    links = {"self": base, "cancel": f"{base}/cancel", "retry": f"{base}/retry"}
    if job.type == "train":
        links |= {"epochs": f"{base}/epochs", "weights": f"{base}/weights"}
    else:
        links |= {"predictions": f"{base}/predictions"}
    return JobOut(
        id=job.id,
        type=job.type,
        status=job.status,
        params=job.params,
        dataset=job.dataset,
        model=job.model_job_id,
        created_at=as_utc(job.created_at),
        started_at=as_utc(job.started_at),
        finished_at=as_utc(job.finished_at),
        queue_seconds=job.queue_seconds,
        run_seconds=job.run_seconds,
        attempt=job.attempt,
        retries=job.retries,
        worker=job.worker,
        cancel_requested=job.cancel_requested,
        progress=job.progress,
        callback_url=job.callback_url,
        webhook=job.webhook,
        result=job.result,
        error=JobError(code=job.error_code, message=job.error_message or "")
        if job.error_code
        else None,
        links=links,
    )


def epoch_out(row: EpochMetric) -> EpochOut:
    return EpochOut(
        epoch=row.epoch,
        loss=row.loss,
        train_accuracy=row.train_accuracy,
        val_accuracy=row.val_accuracy,
        seconds=row.seconds,
    )


def dataset_out(row: Dataset) -> DatasetOut:
    return DatasetOut(
        id=row.id,
        filename=row.filename,
        train_count=row.train_count,
        test_count=row.test_count,
        sha256=row.sha256,
        size=row.size,
        created_at=as_utc(row.created_at),
    )
