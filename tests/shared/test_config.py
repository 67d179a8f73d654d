"""Settings: contracted variable names, defaults, and the production guard."""

import pytest
from pydantic import ValidationError

from shared.config import Settings


def test_contracted_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """DATABASE_URL, REDIS_URL and MNISTQ_ADMIN_KEY are read under exactly those names."""
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://db/x")
    monkeypatch.setenv("REDIS_URL", "redis://r:1/2")
    monkeypatch.setenv("MNISTQ_ADMIN_KEY", "k" * 30)
    s = Settings()
    assert (s.database_url, s.redis_url) == ("postgresql+psycopg://db/x", "redis://r:1/2")
    assert s.admin_key is not None and s.admin_key.get_secret_value() == "k" * 30


def test_defaults_are_the_embedded_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, the database is an SQLite file and the broker is Redis on localhost."""
    for name in ("DATABASE_URL", "REDIS_URL", "MNISTQ_ADMIN_KEY", "MNISTQ_ENV"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.database_url.startswith("sqlite:///") and s.redis_url == "redis://localhost:6379/0"
    assert s.admin_key is None and s.env == "development"


@pytest.mark.parametrize("key", ["changeme", "admin", "short-key"])
def test_production_refuses_placeholder_admin_keys(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """MNISTQ_ENV=production with a weak MNISTQ_ADMIN_KEY does not start."""
    monkeypatch.setenv("MNISTQ_ENV", "production")
    monkeypatch.setenv("MNISTQ_ADMIN_KEY", key)
    with pytest.raises(ValidationError, match="at least 24"):
        Settings()
