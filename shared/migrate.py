"""Alembic, driven from code: every service keeps its scripts in `services/<svc>/migrations/`
and its `env.py` calls :func:`run_migrations` with the service's metadata."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, pool

from shared.db import make_engine


def alembic_config(script_location: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(script_location: Path, url: str, revision: str = "heads") -> None:
    # "heads": branches made by parallel work (each off the same parent) all apply.
    command.upgrade(alembic_config(script_location, url), revision)


def run_migrations(context, metadata: MetaData) -> None:
    """Body of every service's migrations/env.py (online mode only)."""
    url = context.config.get_main_option("sqlalchemy.url")
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def create_index_online(op, name: str, table: str, columns: list[str]) -> None:
    """`op.create_index` inside a migration; on PostgreSQL CONCURRENTLY (outside the migration's
    transaction), so a large table keeps taking writes while the index builds."""
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(name, table, columns, postgresql_concurrently=True)
    else:
        op.create_index(name, table, columns)
