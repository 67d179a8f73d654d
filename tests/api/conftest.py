from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import ADMIN_KEY


@pytest.fixture
def client(settings_env: dict[str, str]) -> Iterator[TestClient]:
    """The real app in-process, authenticated as the admin key."""
    from api.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield c


@pytest.fixture
def make_key(settings_env: dict[str, str]) -> Callable[..., dict[str, str]]:
    """Create a stored API key; returns request headers that use it."""
    from shared.db import session_scope
    from shared.keys import create_key

    def make(name: str = "user", admin: bool = False) -> dict[str, str]:
        with session_scope() as s:
            _, plain = create_key(s, name, is_admin=admin)
            s.commit()
        return {"Authorization": f"Bearer {plain}"}

    return make


@pytest.fixture
def job_count(settings_env: dict[str, str]) -> Callable[[], int]:
    from shared.db import session_scope
    from shared.models import Job

    def count() -> int:
        with session_scope() as s:
            return int(s.scalar(select(func.count()).select_from(Job)) or 0)

    return count
