"""User datasets: upload a labelled set once, train on it with ``"dataset": "upload:<id>"``."""

import io
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.access import get_dataset, visible
from api.deps import CallerDep, SessionDep, SettingsDep
from api.errors import ApiError
from api.presenters import dataset_out
from api.routes.train import ERRORS
from shared.exceptions import PayloadTooLarge
from shared.keys import Caller
from shared.models import BlobKind, Dataset
from shared.schemas import DatasetList, DatasetOut
from shared.storage import BlobStore
from shared.uploads import UploadLimits, read_dataset, sha256_of

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "Keras-layout .npz or a .zip of the four IDX .gz files",
                        }
                    },
                }
            }
        },
    }
}


def _store(session: Session, caller: Caller, limits: UploadLimits, upload: UploadFile) -> Dataset:
    sha, size = sha256_of(upload.file)
    if size > limits.max_bytes:
        raise PayloadTooLarge(f"the upload is {size:,} bytes; the limit is {limits.max_bytes:,}.")
    filename = upload.filename or "dataset"
    parsed = read_dataset(upload.file, filename, limits=limits)
    arrays: dict[str, Any] = {"x_train": parsed.x_train, "y_train": parsed.y_train}
    if parsed.x_test is not None and parsed.y_test is not None:
        arrays |= {"x_test": parsed.x_test, "y_test": parsed.y_test}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = BlobStore(session).put(
        buf.getvalue(), owner=caller.key_id, kind=BlobKind.dataset, meta={"format": parsed.format}
    )
    row = Dataset(
        owner=caller.key_id,
        filename=filename[:300],
        sha256=sha,
        size=size,
        train_count=parsed.train_count,
        test_count=parsed.test_count,
        blob_id=blob.id,
    )
    session.add(row)
    session.commit()
    return row


@router.post(
    "", status_code=201, response_model=DatasetOut, responses=ERRORS, openapi_extra=UPLOAD_BODY
)
async def upload_dataset(
    request: Request, session: SessionDep, caller: CallerDep, settings: SettingsDep
) -> DatasetOut:
    """Store a labelled set; the response's ``id`` trains with ``"dataset": "upload:<id>"``."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "Send multipart/form-data with a file field.")
    form = await request.form(max_files=1, max_fields=5)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(
                422, "validation_error", "file: a file field with the dataset is required."
            )
        limits = UploadLimits(
            max_bytes=settings.max_upload_bytes, max_dataset_rows=settings.max_dataset_rows
        )
        try:
            row = await run_in_threadpool(_store, session, caller, limits, upload)
        except BaseException:
            session.rollback()
            raise
    finally:
        await form.close()
    return dataset_out(row)


@router.get("", response_model=DatasetList, responses=ERRORS)
def list_datasets(session: SessionDep, caller: CallerDep) -> DatasetList:
    rows = session.scalars(
        visible(select(Dataset), Dataset, caller).order_by(Dataset.created_at.desc())
    ).all()
    return DatasetList(items=[dataset_out(r) for r in rows])


@router.get("/{dataset_id}", response_model=DatasetOut, responses=ERRORS)
def read_dataset_info(dataset_id: str, session: SessionDep, caller: CallerDep) -> DatasetOut:
    return dataset_out(get_dataset(session, caller, dataset_id))
