"""The schema comes from Alembic migrations and matches the ORM models on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from migrations.runner import downgrade, upgrade
from shared.models import Base


def test_models_and_migrations_agree(database_url: str) -> None:
    """After `upgrade head` autogenerate finds no difference from shared.models."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_removes_and_upgrade_restores(database_url: str) -> None:
    """Migrations run both ways: base drops every table, head brings them back."""
    downgrade(database_url, "base")
    engine = create_engine(database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(database_url)
    assert {"jobs", "epochs", "blobs", "blob_chunks", "api_keys", "datasets"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
