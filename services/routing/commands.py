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


def disable_account(url: str, username: str) -> bool:
    from sqlalchemy import update

    from services.routing.db import accounts

    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        with Session(engine) as session:
            done = session.execute(
                update(accounts).where(accounts.c.username == username).values(active=False)
            ).rowcount
            session.commit()
        return bool(done)
    finally:
        engine.dispose()


def _uow_factory(engine):
    from sqlalchemy.orm import sessionmaker

    from services.routing.db import outbox, processed_events
    from shared.db import UnitOfWork

    make = sessionmaker(engine, expire_on_commit=False)
    return lambda: UnitOfWork(make, outbox, processed_events)


def change_stage(url: str, unit_code: str, stage: str, changed_by: str, reason: str = "") -> dict:
    """Audited stage change; its unit_stage_changed event leaves with routing's outbox relay."""
    from services.routing import rollout

    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        return rollout.change_stage(_uow_factory(engine), unit_code, stage, changed_by,
                                    "desk_admin", reason)
    finally:
        engine.dispose()


def simulate(url: str, proposal: dict[str, str], since, until) -> str:
    from services.routing import rollout

    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        with Session(engine) as session:
            registry = registry_store.load(session)
            rows, total = rollout.simulate(session, registry, proposal, since, until)
        return rollout.format_table(rows, total, since, until)
    finally:
        engine.dispose()
