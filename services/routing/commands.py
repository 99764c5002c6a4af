"""routing's command-line operations (called from `dumas`)."""

from sqlalchemy import pool
from sqlalchemy.orm import Session

from services.routing import registry_store
from shared.db import make_engine


def seed_registry(url: str) -> int:
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        with Session(engine) as session:
            added = registry_store.seed(session)
            session.commit()
        return added
    finally:
        engine.dispose()


def add_account(url: str, username, display_name, role, password, unit_code=None) -> None:
    from services.routing import accounts

    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        with Session(engine) as session:
            registry = registry_store.load(session)
            accounts.create(
                session, username, display_name, role, password, unit_code, registry=registry
            )
            session.commit()
    finally:
        engine.dispose()
