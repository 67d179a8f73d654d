"""Training jobs: submit one, download its weights."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Body, Header, Response

from api.access import get_dataset, get_job, require_succeeded
from api.deps import CallerDep, SessionDep
from api.errors import ApiError
from api.presenters import job_out
from api.submission import body_hash, submit
from shared.catalog import BUILTIN_DATASETS, UPLOAD_PREFIX
from shared.models import BlobKind, JobType
from shared.schemas import ErrorBody, JobOut, TrainRequest
from shared.storage import BlobStore

router = APIRouter(prefix="/v1/jobs", tags=["train"])
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 404, 409, 413, 422, 503)
}


@router.post("/train", status_code=202, response_model=JobOut, responses=ERRORS)
def submit_train(
    session: SessionDep,
    caller: CallerDep,
    response: Response,
    body: Annotated[TrainRequest | None, Body()] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JobOut:
    """Queue a training job; 200 instead of 202 when an Idempotency-Key replays."""
    request = body or TrainRequest()
    if request.dataset in BUILTIN_DATASETS:
        train_count = BUILTIN_DATASETS[request.dataset].train_count
    else:
        train_count = get_dataset(
            session, caller, request.dataset[len(UPLOAD_PREFIX) :]
        ).train_count
    if request.batch_size > train_count:
        raise ApiError(
            422,
            "validation_error",
            f"batch_size: must be at most the training set's size ({train_count:,}) "
            f"for dataset {request.dataset!r}, got {request.batch_size:,}.",
            [{"field": "batch_size", "message": f"must be <= {train_count}"}],
        )
    params = request.model_dump(exclude={"callback_url"})
    digest = body_hash(request.model_dump())
    if params["seed"] is None:
        params["seed"] = secrets.randbelow(2**31)  # recorded, so the run can be reproduced
    job, created = submit(
        session,
        caller,
        job_type=JobType.train,
        params=params,
        dataset=request.dataset,
        body_sha256=digest,
        idempotency_key=idempotency_key,
        callback_url=request.callback_url,
    )
    if not created:
        response.status_code = 200
    return job_out(job)


@router.get(
    "/{job_id}/weights",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **ERRORS},
)
def download_weights(
    job_id: str,
    session: SessionDep,
    caller: CallerDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The trained network as an .npz (``numpy.load(f, allow_pickle=False)``)."""
    job = get_job(session, caller, job_id)
    if job.type != JobType.train:
        raise ApiError(404, "not_found", f"Job {job_id!r} is a {job.type} job and has no weights.")
    require_succeeded(job, "Weights")
    store = BlobStore(session)
    blob = store.find(job.id, BlobKind.weights)
    if blob is None:
        raise ApiError(404, "not_found", f"Job {job_id!r} has no stored weights.")
    headers = {
        "ETag": f'"{blob.sha256}"',
        "X-Checksum-SHA256": blob.sha256,
        "Content-Disposition": f'attachment; filename="mnistq-{job.id}.npz"',
    }
    if if_none_match and blob.sha256 in if_none_match:
        return Response(status_code=304, headers=headers)
    return Response(store.read(blob.id), media_type="application/octet-stream", headers=headers)
