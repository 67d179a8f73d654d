"""Run one train job: claim it, train with the core, write epochs, checkpoints and weights."""

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from shared import jobs
from shared.config import Settings
from shared.db import session_scope
from shared.mlp import (
    Architecture,
    EpochStats,
    Network,
    TrainState,
    state_from_bytes,
    state_to_bytes,
    train,
    weights_to_bytes,
)
from shared.models import BlobKind, Job, JobStatus
from shared.storage import BlobStore
from worker.inputs import training_data
from worker.lease import JobLease
from worker.outcome import finish, run_claimed

log = logging.getLogger(__name__)


def _save_epoch(job: Job, settings: Settings, stats: EpochStats, state: TrainState) -> None:
    """One transaction per epoch: the metrics row and the checkpoint to resume from."""
    with session_scope() as session:
        owned = jobs.record_epoch(
            session,
            job.id,
            job.attempt,
            stats.to_dict(),
            epochs=job.params["epochs"],
            lease_seconds=settings.lease_seconds,
        )
        if not owned:
            session.rollback()
            return
        store = BlobStore(session)
        store.delete_for_job(job.id, BlobKind.checkpoint)
        store.put(
            state_to_bytes(state),
            owner=job.owner,
            kind=BlobKind.checkpoint,
            job_id=job.id,
            meta={"epoch": state.epoch},
        )
        session.commit()


def _progress_reporter(
    lease: JobLease, epochs: int, start_epoch: int, n: int, batch_size: int
) -> Callable[[], bool]:
    """The core calls ``should_stop`` once per batch: count batches into the lease's progress
    (completed epochs, batch within the current epoch, overall fraction, ETA)."""
    batches = math.ceil(n / min(batch_size, n))
    total = (epochs - start_epoch) * batches
    calls = 0
    started = time.monotonic()

    def should_stop() -> bool:
        nonlocal calls
        calls += 1
        done = calls - 1  # batches finished before this one
        elapsed = time.monotonic() - started
        lease.progress = {
            "epoch": start_epoch + done // batches,
            "epochs": epochs,
            "batch": done % batches + 1,
            "batches": batches,
            "fraction": round((start_epoch * batches + done) / (epochs * batches), 4),
            "eta_seconds": round(elapsed / done * (total - done), 1) if done else None,
        }
        return lease.should_stop()

    return should_stop


def _train(job: Job, settings: Settings, lease: JobLease) -> dict[str, Any]:
    p = job.params
    arch = Architecture.create(
        p["layers"], p["hidden_activation"], p["output_activation"], p["loss"]
    )
    with session_scope() as session:
        data = training_data(session, job.dataset)
        checkpoint = BlobStore(session).find(job.id, BlobKind.checkpoint)
        state = state_from_bytes(BlobStore(session).read(checkpoint.id)) if checkpoint else None
    if state is not None:
        network, rng, start_epoch = state.network, state.rng(), state.epoch
        log.info("job %s resumes from epoch %d", job.id, start_epoch)
    else:
        rng = np.random.default_rng(p["seed"])
        network, start_epoch = Network.initialize(arch, rng), 0
    x_val = data.x_test if len(data.x_test) else None
    y_val = data.y_test if len(data.y_test) else None
    started = time.perf_counter()
    history = train(
        network,
        data.x_train,
        data.y_train,
        epochs=p["epochs"],
        learning_rate=p["learning_rate"],
        batch_size=p["batch_size"],
        rng=rng,
        x_val=x_val,
        y_val=y_val,
        start_epoch=start_epoch,
        on_epoch=lambda stats, st: _save_epoch(job, settings, stats, st),
        should_stop=_progress_reporter(
            lease, p["epochs"], start_epoch, len(data.x_train), p["batch_size"]
        ),
    )
    train_seconds = time.perf_counter() - started
    weights = weights_to_bytes(network)
    last = history[-1] if history else None
    result: dict[str, Any] = {
        "test_accuracy": network.accuracy(x_val, y_val)
        if x_val is not None and y_val is not None
        else None,
        "train_accuracy": last.train_accuracy if last else None,
        "final_loss": last.loss if last else None,
        "train_seconds": round(train_seconds, 4),
        "seconds_per_epoch": round(train_seconds / len(history), 4) if history else None,
        "epochs_completed": p["epochs"],
        "resumed_from_epoch": start_epoch or None,
        "n_params": arch.n_params,
        "train_count": int(len(data.x_train)),
        "test_count": int(len(data.x_test)),
    }
    with session_scope() as session:
        store = BlobStore(session)
        blob = store.put(
            weights,
            owner=job.owner,
            kind=BlobKind.weights,
            job_id=job.id,
            meta={"architecture": arch.to_dict()},
        )
        store.delete_for_job(job.id, BlobKind.checkpoint)
        result |= {"weights_sha256": blob.sha256, "weights_bytes": blob.size}
        finish(session, job, JobStatus.succeeded, result=result)
    return result


def run_train_job(job_id: str, settings: Settings, worker: str) -> None:
    run_claimed(job_id, settings, worker, _train)
