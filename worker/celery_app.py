"""The worker's Celery app: shared broker settings, the tasks, per-child process set-up."""

import logging
import os
import threading

from celery.signals import worker_process_init, worker_ready

from shared.config import get_settings
from shared.db import dispose_engine
from shared.queue import get_celery
from worker import reaper, tasks
from worker.runtime import blas_threads, limit_blas

log = logging.getLogger(__name__)
app = get_celery()
assert tasks.app is app


@worker_process_init.connect
def _child_init(**_: object) -> None:
    # A forked child must not share the parent's pooled database connections.
    dispose_engine()
    concurrency = int(os.environ.get("MNISTQ_WORKER_CONCURRENCY", "1"))
    limit_blas(blas_threads(get_settings().blas_threads, concurrency))


@worker_ready.connect
def _start_reaper(**_: object) -> None:
    interval = get_settings().reap_interval_seconds
    if interval > 0:
        thread = threading.Thread(
            target=reaper.run_forever,
            args=(threading.Event(), interval),
            daemon=True,
            name="reaper",
        )
        thread.start()
