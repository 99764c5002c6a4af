"""Fresh PostgreSQL databases for tests, copied from per-session migrated templates."""

import os
import uuid
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from services.cli import SERVICES_DIR
from services.routing.commands import seed_registry
from shared.config import SERVICES
from shared.migrate import upgrade

SERVER = os.environ.get("TEST_PG_SERVER", "postgresql+psycopg2://postgres@127.0.0.1:5432")


def _admin():
    return create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT", pool_size=1)


def url(name: str) -> str:
    return f"{SERVER}/{name}"


def create_templates() -> dict[str, str]:
    """Migrate one template database per service (routing is seeded too)."""
    suffix = uuid.uuid4().hex[:8]
    names = {s: f"dumas_tpl_{s}_{suffix}" for s in SERVICES}
    engine = _admin()
    with engine.connect() as conn:
        for name in names.values():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    for service, name in names.items():
        upgrade(SERVICES_DIR / service / "migrations", url(name))
        if service == "routing":
            seed_registry(url(name))
    return names


def clone_all(templates: dict[str, str]) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    engine = _admin()
    urls = {}
    with engine.connect() as conn:
        for service, template in templates.items():
            name = f"dumas_t_{service}_{suffix}"
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
            urls[service] = url(name)
    engine.dispose()
    return urls


def drop_all(names_or_urls) -> None:
    engine = _admin()
    with engine.connect() as conn:
        for item in names_or_urls:
            name = item.rsplit("/", 1)[-1]
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def rows(url: str, statement) -> list:
    """The rows `statement` selects in the database at `url` (a short-lived engine)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(statement).all()
    engine.dispose()
    return found


def execute(url: str, *statements) -> None:
    """Run `statements` in one transaction in the database at `url` (a short-lived engine)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)
    engine.dispose()


@contextmanager
def rows_locked(url: str, *selects: str):
    """While the block runs, another connection holds the row locks of `selects` (each a
    `SELECT ... FOR UPDATE`); released when it ends."""
    holder = create_engine(url)
    try:
        with holder.connect() as conn:
            for select in selects:
                conn.execute(text(select))
            yield
            conn.rollback()
    finally:
        holder.dispose()
