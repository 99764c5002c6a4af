"""Every service's Alembic scripts produce exactly the tables its code declares."""

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from shared.config import SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_declared_schema_on_postgresql(service, pg_urls):
    metadata = importlib.import_module(f"services.{service}.db").metadata
    engine = create_engine(pg_urls[service], poolclass=pool.NullPool)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == [], f"{service}: schema and migrations differ; add a migration: {diff}"


def test_migrate_command_creates_sqlite_databases_from_nothing(tmp_path, monkeypatch):
    from services.cli import main

    monkeypatch.setenv("DUMAS_VAR_DIR", str(tmp_path))
    for service in SERVICES:
        monkeypatch.delenv(f"{service.upper()}_DATABASE_URL", raising=False)
    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0  # idempotent
    assert sorted(p.name for p in tmp_path.glob("*.sqlite3")) == sorted(
        f"{s}.sqlite3" for s in SERVICES
    )
