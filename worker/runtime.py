"""Per-process worker state: BLAS threads, the worker's name, and what it keeps loaded."""

import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")


def blas_threads(configured: int, concurrency: int) -> int:
    """The BLAS thread rule: an explicit setting wins, else cores // worker processes (>= 1).

    N processes on N cores each get one thread, so they never oversubscribe the machine.
    """
    if configured > 0:
        return configured
    return max(1, (os.cpu_count() or 1) // max(1, concurrency))


def limit_blas(threads: int) -> None:
    threadpool_limits(limits=threads, user_api="blas")
    log.info("BLAS limited to %d thread(s) in pid %d", threads, os.getpid())


def worker_name(celery_hostname: str | None = None) -> str:
    """``<celery node name>/<pid>``: which worker, and which of its processes, ran a job."""
    return f"{celery_hostname or 'celery@' + socket.gethostname()}/{os.getpid()}"


class LruCache(Generic[K, V]):
    """A tiny LRU: a worker keeps datasets and models for the next job."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: K, load: Callable[[], V]) -> V:
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        value = load()
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value
