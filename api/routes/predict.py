"""Bulk prediction jobs: submit on a named split or an upload, download the predictions."""

import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.access import get_job, get_model, require_succeeded
from api.deps import CallerDep, SessionDep, SettingsDep
from api.errors import ApiError
from api.presenters import job_out
from api.routes.train import ERRORS
from api.submission import body_hash, submit
from shared.db import session_scope
from shared.exceptions import PayloadTooLarge
from shared.keys import Caller
from shared.models import Blob, BlobKind, Job, JobType
from shared.schemas import JobOut, PredictRequest, check_callback_url
from shared.storage import BlobStore, iter_rows
from shared.uploads import UploadLimits, open_images, sha256_of

router = APIRouter(prefix="/v1/jobs", tags=["predict"])
PAGE_MAX = 1000

PREDICT_BODY = {
    "requestBody": {
        "content": {
            "application/json": {"schema": PredictRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["model", "file"],
                    "properties": {
                        "model": {"type": "string", "description": "a succeeded train job id"},
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": ".npy, .npz (x, optional y), IDX .gz or .zip of PNGs",
                        },
                        "labels": {
                            "type": "string",
                            "format": "binary",
                            "description": "optional IDX labels for an IDX image file",
                        },
                        "callback_url": {"type": "string", "description": "webhook URL"},
                    },
                }
            },
        }
    }
}


def _weights_sha(session: Session, model: Job) -> str:
    blob = BlobStore(session).find(model.id, BlobKind.weights)
    if blob is None:
        raise ApiError(409, "model_not_ready", f"Train job {model.id!r} has no stored weights.")
    return blob.sha256


def _validation_error(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "body"
    message = str(first["msg"]).removeprefix("Value error, ")
    return ApiError(
        422, "validation_error", f"{field}: {message}.", [{"field": field, "message": message}]
    )


def _submit_named(
    session: Session, caller: Caller, request: PredictRequest, idempotency_key: str | None
) -> tuple[Job, bool]:
    model = get_model(session, caller, request.model)
    params = {
        "model": model.id,
        "input": {"kind": "named", "dataset": request.dataset},
        "weights_sha256": _weights_sha(session, model),
    }
    return submit(
        session,
        caller,
        job_type=JobType.predict,
        params=params,
        dataset=request.dataset,
        model_job_id=model.id,
        body_sha256=body_hash(request.model_dump()),
        idempotency_key=idempotency_key,
        callback_url=request.callback_url,
    )


def _submit_upload(
    session: Session,
    caller: Caller,
    limits: UploadLimits,
    model_id: str,
    upload: UploadFile,
    labels: UploadFile | None,
    idempotency_key: str | None,
    callback_url: str | None,
) -> tuple[Job, bool]:
    model = get_model(session, caller, model_id)
    sha, size = sha256_of(upload.file)
    if size > limits.max_bytes:
        raise PayloadTooLarge(f"the upload is {size:,} bytes; the limit is {limits.max_bytes:,}.")
    labels_sha = sha256_of(labels.file)[0] if labels else None
    filename = upload.filename or "upload"
    source = open_images(
        upload.file,
        filename,
        labels_file=labels.file if labels else None,
        labels_filename=labels.filename if labels else None,
        limits=limits,
    )
    params: dict[str, Any] = {
        "model": model.id,
        "input": {
            "kind": "upload",
            "filename": filename,
            "format": source.format,
            "sha256": sha,
            "labels_sha256": labels_sha,
            "size": size,
            "count": source.count,
            "dtype": source.dtype,
            "has_labels": source.has_labels,
        },
        "weights_sha256": _weights_sha(session, model),
    }

    def attach(job: Job) -> None:
        store = BlobStore(session)
        images = store.writer(
            owner=caller.key_id,
            kind=BlobKind.input_images,
            job_id=job.id,
            meta={"dtype": source.dtype, "count": source.count, "width": 784},
        )
        ys = (
            store.writer(owner=caller.key_id, kind=BlobKind.input_labels, job_id=job.id)
            if source.has_labels
            else None
        )
        with source:
            for x, y in source.iter_chunks():
                images.write(np.ascontiguousarray(x).data)
                if ys is not None and y is not None:
                    ys.write(np.ascontiguousarray(y, dtype=np.uint8).data)
        images.finish()
        if ys is not None:
            ys.finish()

    try:
        return submit(
            session,
            caller,
            job_type=JobType.predict,
            params=params,
            dataset=f"upload:{sha}",
            model_job_id=model.id,
            body_sha256=body_hash(
                {"model": model.id, "sha256": sha, "labels": labels_sha, "callback": callback_url}
            ),
            idempotency_key=idempotency_key,
            callback_url=callback_url,
            attach=attach,
        )
    except BaseException:
        session.rollback()
        raise


@router.post(
    "/predict",
    status_code=202,
    response_model=JobOut,
    responses=ERRORS,
    openapi_extra=PREDICT_BODY,
)
async def submit_predict(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JobOut:
    """Queue a prediction: JSON ``{model, dataset}`` or multipart ``model`` + ``file``."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=2, max_fields=10)
        model_id, upload, labels = form.get("model"), form.get("file"), form.get("labels")
        if not isinstance(model_id, str) or not model_id:
            raise ApiError(
                422, "validation_error", "model: a form field with a train job id is required."
            )
        if not isinstance(upload, UploadFile):
            raise ApiError(
                422, "validation_error", "file: a file field with the images is required."
            )
        if labels is not None and not isinstance(labels, UploadFile):
            raise ApiError(422, "validation_error", "labels: must be a file field.")
        unknown = set(form.keys()) - {"model", "file", "labels", "callback_url"}
        if unknown:
            raise ApiError(422, "validation_error", f"{sorted(unknown)[0]}: unknown form field.")
        raw_callback = form.get("callback_url")
        if raw_callback is not None and not isinstance(raw_callback, str):
            raise ApiError(422, "validation_error", "callback_url: must be a text field.")
        try:
            callback_url = check_callback_url(raw_callback or None)
        except ValueError as exc:
            raise ApiError(422, "validation_error", f"callback_url: {exc}.") from exc
        limits = UploadLimits(
            max_bytes=settings.max_upload_bytes, max_rows=settings.max_predict_rows
        )
        try:
            job, created = await run_in_threadpool(
                _submit_upload,
                session,
                caller,
                limits,
                model_id,
                upload,
                labels,
                idempotency_key,
                callback_url,
            )
        finally:
            await form.close()
    elif content_type.startswith("application/json") or not content_type:
        try:
            payload = json.loads(await request.body() or b"null")
            body = PredictRequest.model_validate(payload)
        except json.JSONDecodeError as exc:
            raise ApiError(422, "validation_error", "The body is not valid JSON.") from exc
        except ValidationError as exc:
            raise _validation_error(exc) from exc
        job, created = await run_in_threadpool(
            _submit_named, session, caller, body, idempotency_key
        )
    else:
        raise ApiError(
            415, "unsupported_media_type", "Send application/json or multipart/form-data."
        )
    if not created:
        response.status_code = 200
    return job_out(job)


def _outputs(session: Session, job: Job) -> tuple[Blob, Blob]:
    store = BlobStore(session)
    labels = store.find(job.id, BlobKind.predicted_labels)
    probs = store.find(job.id, BlobKind.probabilities)
    if labels is None or probs is None:
        raise ApiError(404, "not_found", f"Job {job.id!r} has no stored predictions.")
    return labels, probs


def _stream_npy(blob_id: str, dtype: str, shape: tuple[int, ...]) -> Iterator[bytes]:
    header = np.lib.format.header_data_from_array_1_0(np.empty((0,) + shape[1:], dtype=dtype))
    header["shape"] = shape
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    yield buf.getvalue()
    with session_scope() as s:
        yield from BlobStore(s).iter_chunks(blob_id)


def _stream_csv(labels_id: str) -> Iterator[bytes]:
    yield b"index,label\n"
    index = 0
    with session_scope() as s:
        for rows in iter_rows(BlobStore(s).iter_chunks(labels_id), np.uint8, 1, 65536):
            lines = [f"{index + i},{int(v)}\n" for i, v in enumerate(rows[:, 0])]
            index += len(lines)
            yield "".join(lines).encode()


@router.get(
    "/{job_id}/predictions",
    responses={
        200: {"content": {"application/json": {}, "text/csv": {}, "application/octet-stream": {}}},
        **ERRORS,
    },
)
def download_predictions(
    job_id: str,
    session: SessionDep,
    caller: CallerDep,
    format: Literal["json", "csv", "npy"] = "json",
    field: Annotated[Literal["probabilities", "labels"], Query()] = "probabilities",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
) -> Response:
    """``json``: a page of ``{index, label, probabilities}`` with ``next_offset``; ``csv``: all
    labels; ``npy``: probabilities ``(N, 10) float32`` (or ``field=labels``: ``(N,) uint8``)."""
    job = get_job(session, caller, job_id)
    if job.type != JobType.predict:
        raise ApiError(
            404, "not_found", f"Job {job_id!r} is a {job.type} job and has no predictions."
        )
    require_succeeded(job, "Predictions")
    labels, probs = _outputs(session, job)
    count = int(labels.size)
    name = f"mnistq-{job.id}-{field if format == 'npy' else 'labels'}.{format}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "npy":
        blob, dtype, shape = (
            (probs, "<f4", (count, 10)) if field == "probabilities" else (labels, "|u1", (count,))
        )
        return StreamingResponse(
            _stream_npy(blob.id, dtype, shape),
            media_type="application/octet-stream",
            headers=disposition | {"X-Checksum-SHA256": blob.sha256},
        )
    if format == "csv":
        return StreamingResponse(_stream_csv(labels.id), media_type="text/csv", headers=disposition)
    store = BlobStore(session)
    stop = min(count, offset + limit)
    page_labels = np.frombuffer(store.read_range(labels.id, offset, stop - offset), np.uint8)
    page_probs = np.frombuffer(
        store.read_range(probs.id, offset * 40, (stop - offset) * 40), np.float32
    ).reshape(-1, 10)
    items = [
        {"index": offset + i, "label": int(lab), "probabilities": [round(float(p), 6) for p in row]}
        for i, (lab, row) in enumerate(zip(page_labels, page_probs, strict=True))
    ]
    body = {"items": items, "count": count, "next_offset": stop if stop < count else None}
    return Response(json.dumps(body), media_type="application/json")
