"""Run one predict job: stream the input in chunks through a cached model, store the outputs."""

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from shared import datasets
from shared.arrays import to_float32
from shared.catalog import NUM_CLASSES, NUM_PIXELS
from shared.config import Settings
from shared.db import session_scope
from shared.exceptions import TrainingCancelled
from shared.models import BlobKind, Job, JobStatus
from shared.storage import BlobStore, iter_rows
from worker.inputs import model_for
from worker.lease import JobLease
from worker.outcome import finish, run_claimed

Chunk = tuple[np.ndarray, np.ndarray | None]


def _named_chunks(name: str, rows: int) -> tuple[int, Iterator[Chunk]]:
    dataset, _, split = name.rpartition(":")
    x, y = datasets.load_split(dataset, split)
    return len(x), ((x[i : i + rows], y[i : i + rows]) for i in range(0, len(x), rows))


def _upload_chunks(job: Job, rows: int) -> tuple[int, Iterator[Chunk]]:
    """Images and labels stream from storage in their own session, chunk by chunk."""
    meta = job.params["input"]

    def gen() -> Iterator[Chunk]:
        with session_scope() as session:
            store = BlobStore(session)
            images = store.find(job.id, BlobKind.input_images)
            labels = store.find(job.id, BlobKind.input_labels)
            assert images is not None
            xs = iter_rows(store.iter_chunks(images.id), images.meta["dtype"], NUM_PIXELS, rows)
            ys = iter_rows(store.iter_chunks(labels.id), np.uint8, 1, rows) if labels else None
            for x in xs:
                yield x, (next(ys)[:, 0] if ys is not None else None)

    return int(meta["count"]), gen()


def _predict(job: Job, settings: Settings, lease: JobLease) -> dict[str, Any]:
    rows = settings.predict_chunk_rows
    with session_scope() as session:
        network, weights_sha, cached = model_for(session, job.model_job_id or "")
    named = job.params["input"]["kind"] == "named"
    count, chunks = _named_chunks(job.dataset, rows) if named else _upload_chunks(job, rows)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    labelled = 0
    # Uploads were hashed by the API as received; named splits are hashed here as read.
    input_hash = hashlib.sha256() if named else None
    started = time.perf_counter()
    with session_scope() as out:
        store = BlobStore(out)
        store.delete_for_job(job.id, BlobKind.predicted_labels)  # a retried attempt starts over
        store.delete_for_job(job.id, BlobKind.probabilities)
        out.commit()
        labels_out = store.writer(owner=job.owner, kind=BlobKind.predicted_labels, job_id=job.id)
        probs_out = store.writer(owner=job.owner, kind=BlobKind.probabilities, job_id=job.id)
        done = 0
        try:
            for x, y in chunks:
                lease.progress = {"rows": done, "count": count, "fraction": round(done / count, 4)}
                if lease.should_stop():
                    raise TrainingCancelled("cancelled between chunks")
                if input_hash is not None:
                    input_hash.update(np.ascontiguousarray(x).data)
                proba = network.predict_proba(to_float32(x))
                predicted = proba.argmax(axis=1).astype(np.uint8)
                labels_out.write(predicted.data)
                probs_out.write(np.ascontiguousarray(proba, dtype="<f4").data)
                if y is not None:
                    confusion += np.bincount(
                        y.astype(np.int64) * NUM_CLASSES + predicted, minlength=NUM_CLASSES**2
                    ).reshape(NUM_CLASSES, NUM_CLASSES)
                    labelled += len(y)
                done += len(x)
                out.commit()  # short transactions: heartbeats and other workers keep writing
            labels_out.finish()
            probs_out.finish()
        except BaseException:
            # Partial outputs of a cancelled or failed attempt are never served: drop them.
            out.rollback()
            store.delete(labels_out.blob.id)
            store.delete(probs_out.blob.id)
            out.commit()
            raise
        seconds = time.perf_counter() - started
        result: dict[str, Any] = {
            "count": done,
            "accuracy": float(np.trace(confusion) / labelled) if labelled else None,
            "confusion_matrix": confusion.tolist() if labelled else None,
            "predict_seconds": round(seconds, 4),
            "images_per_second": round(done / seconds, 1) if seconds > 0 else None,
            "model": job.model_job_id,
            "weights_sha256": weights_sha,
            "model_cached": cached,  # this worker process already had the model loaded
            "input_sha256": input_hash.hexdigest() if input_hash else job.params["input"]["sha256"],
        }
        if done != count:
            raise RuntimeError(f"read {done} images where {count} were recorded")
        finish(out, job, JobStatus.succeeded, result=result)
    return result


def run_predict_job(job_id: str, settings: Settings, worker: str) -> None:
    run_claimed(job_id, settings, worker, _predict)
