"""A real stack per database kind: uvicorn API + Celery worker processes + real Redis."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from shared.devstack import LocalStack
from tests.conftest import PG_ADMIN_URL, REDIS_TEST_URL

STACK_ENV = {
    "MNISTQ_HEARTBEAT_SECONDS": "0.2",
    "MNISTQ_LEASE_SECONDS": "4",
    "MNISTQ_REAP_INTERVAL_SECONDS": "1",
    "MNISTQ_REQUEUE_AFTER_SECONDS": "30",
    "MNISTQ_ENV": "test",
    "MNISTQ_WEBHOOK_SECRET": "e2e-webhook-secret",
}


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """One API and one worker on a fresh database of each kind, for all e2e tests."""
    tmp = tmp_path_factory.mktemp(f"stack-{request.param}")
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'e2e.db'}"
    else:
        pg_name = f"mnistq_e2e_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{pg_name}"
    broker = REDIS_TEST_URL.rsplit("/", 1)[0] + ("/14" if request.param == "sqlite" else "/13")
    redis.Redis.from_url(broker).flushdb()
    keras_home = tmp / "keras"  # empty: Keras cannot download here, mnist must fail cleanly
    keras_home.mkdir()
    env = STACK_ENV | {"KERAS_HOME": str(keras_home)}
    s = LocalStack(url, redis_url=broker, env=env, log_dir=tmp)
    with s:
        yield s
        if request.node.session.testsfailed:
            print(s.logs())
    if pg_name:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sample_npz() -> Path:
    from importlib.resources import files

    return Path(str(files("shared") / "data" / "mnist_sample.npz"))
