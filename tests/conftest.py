"""Shared fixtures: real databases (SQLite file, PostgreSQL), a real Redis, the real app.

PostgreSQL and Redis are the machine's own (127.0.0.1:5432 trust auth, 127.0.0.1:6379);
``TEST_PG_URL`` / ``TEST_REDIS_URL`` point elsewhere. Every test database is created fresh
and migrated with Alembic, like production.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get(
    "TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ADMIN_KEY = "test-admin-key-0123456789abcdef"
SHARED = Path(__file__).resolve().parents[2] / "shared"


def clear_caches() -> None:
    """Settings, engine and Celery app are process-wide singletons: rebuild them."""
    from shared import db, queue
    from shared.config import get_settings

    db.dispose_engine()
    for cached in (get_settings, db.get_engine, db._session_factory, queue.get_celery):
        cached.cache_clear()


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    clear_caches()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"mnistq_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_pg(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each kind."""
    from migrations.runner import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        url = request.getfixturevalue("pg_server_url")
        _reset_pg(url)
    upgrade(url)
    return url


@pytest.fixture
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_TEST_URL)
    client.flushdb()
    yield REDIS_TEST_URL
    client.flushdb()
    client.close()


@pytest.fixture
def queued_messages(redis_url: str) -> "callable":  # type: ignore[valid-type]
    client = redis.Redis.from_url(redis_url)

    def count() -> int:
        return sum(int(client.llen(q)) for q in ("train", "predict"))  # type: ignore[arg-type]

    return count


@pytest.fixture
def settings_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, redis_url: str
) -> Iterator[dict[str, str]]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MNISTQ_ADMIN_KEY": ADMIN_KEY,
        "MNISTQ_ENV": "test",
    }
    configure(monkeypatch, **env)
    yield env
    clear_caches()


@pytest.fixture
def session(settings_env: dict[str, str]) -> Iterator["object"]:
    from shared.db import session_scope

    with session_scope() as s:
        yield s
