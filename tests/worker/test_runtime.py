"""Worker process rules: BLAS threads per process and the per-process caches."""

import os

import pytest

from worker.runtime import LruCache, blas_threads


@pytest.mark.parametrize(("configured", "concurrency"), [(0, 1), (0, 2), (0, 64), (3, 1), (3, 8)])
def test_blas_thread_rule(configured: int, concurrency: int) -> None:
    """An explicit setting wins; otherwise cores are split evenly, at least one each."""
    cores = os.cpu_count() or 1
    expected = configured or max(1, cores // concurrency)
    assert blas_threads(configured, concurrency) == expected
    assert blas_threads(configured, concurrency) >= 1


def test_lru_cache_loads_once_and_evicts_oldest() -> None:
    """A cached value is loaded once; past the size the least recently used goes first."""
    loads: list[str] = []
    cache: LruCache[str, str] = LruCache(size=2)

    def load(key: str) -> str:
        loads.append(key)
        return key.upper()

    assert cache.get("a", lambda: load("a")) == "A"
    assert cache.get("a", lambda: load("a")) == "A"
    cache.get("b", lambda: load("b"))
    cache.get("a", lambda: load("a"))  # a is now the most recent
    cache.get("c", lambda: load("c"))  # evicts b
    cache.get("b", lambda: load("b"))
    assert loads == ["a", "b", "c", "b"]
    assert (cache.hits, cache.misses) == (2, 4)
