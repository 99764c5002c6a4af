"""UnitOfWork's `session` is a `shared.db.Transaction` on one Core connection (session 7):
the Session methods the services use, with the Session's meaning, on PostgreSQL and SQLite."""

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shared.db import Transaction, UnitOfWork, autocommit, make_engine

metadata = MetaData()
notes = Table(
    "s7_notes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("body", String(64), nullable=False),
)


@pytest.fixture
def db(intake_db_url):
    engine = make_engine(intake_db_url, pool_pre_ping=False)
    metadata.create_all(engine)
    factory = sessionmaker(engine, expire_on_commit=False)
    try:
        yield engine, factory
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def stored(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(notes).order_by(notes.c.id))]


def checked_out(engine) -> int:
    return engine.pool.checkedout()


def test_a_unit_of_work_runs_core_statements_on_a_connection_and_commits_them(db):
    engine, factory = db
    with UnitOfWork(factory, None, None) as uow:
        s = uow.session
        assert isinstance(s, Transaction)
        assert s.get_bind() is engine and s.bind is engine
        assert not s.in_transaction()
        assert checked_out(engine) == 0  # nothing checked out before the first statement
        assert s.execute(notes.insert(), [{"id": 1, "body": "satu"},
                                          {"id": 2, "body": "dua"}]).rowcount == 2
        assert s.in_transaction()
        s.execute(update(notes).where(notes.c.id == 2).values(body="dua!"))
        assert s.scalar(select(notes.c.body).where(notes.c.id == 2)) == "dua!"
        assert s.scalars(select(notes.c.id).order_by(notes.c.id)).all() == [1, 2]
        assert s.connection().execute(select(notes.c.id).where(notes.c.id == 1)).scalar() == 1
        uow.commit()
        assert checked_out(engine) == 0  # a commit returns the connection, as a Session's did
        assert not s.in_transaction()
    assert stored(engine) == [(1, "satu"), (2, "dua!")]


def test_what_a_unit_of_work_does_not_commit_is_rolled_back(db):
    engine, factory = db
    with pytest.raises(ZeroDivisionError), UnitOfWork(factory, None, None) as uow:
        uow.session.execute(notes.insert(), {"id": 1, "body": "satu"})
        1 / 0  # noqa: B018
    with UnitOfWork(factory, None, None) as uow:
        uow.session.execute(notes.insert(), {"id": 2, "body": "dua"})
    assert stored(engine) == []
    assert checked_out(engine) == 0


def test_a_unit_of_work_goes_on_after_a_commit_or_a_rollback_in_a_new_transaction(db):
    engine, factory = db
    with UnitOfWork(factory, None, None) as uow:
        uow.session.execute(notes.insert(), {"id": 1, "body": "satu"})
        uow.commit()
        uow.session.execute(notes.insert(), {"id": 3, "body": "tiga"})
        with pytest.raises(IntegrityError):
            uow.session.execute(notes.insert(), {"id": 1, "body": "lagi"})
        uow.session.rollback()
        uow.session.execute(notes.insert(), {"id": 2, "body": "dua"})
        uow.commit()
    assert stored(engine) == [(1, "satu"), (2, "dua")]
    assert checked_out(engine) == 0


def test_connection_begins_the_transaction_as_a_session_does_and_autocommit_takes_it(db):
    engine, factory = db
    with UnitOfWork(factory, None, None) as uow:
        conn = uow.session.connection()
        assert uow.session.in_transaction()
        assert uow.session.connection() is conn
        with uow.autocommit() as statement:
            statement.execute(notes.insert(), {"id": 1, "body": "satu"})
        uow.commit()
    with Session(engine) as session, autocommit(session) as conn:  # a plain Session still works
        assert conn.execute(select(notes.c.body)).scalar() == "satu"


def test_a_factory_bound_to_a_connection_keeps_an_orm_session(db):
    engine, _factory = db
    with engine.connect() as conn:
        with UnitOfWork(sessionmaker(bind=conn), None, None) as uow:
            assert isinstance(uow.session, Session)
            uow.session.execute(notes.insert(), {"id": 1, "body": "satu"})
            uow.commit()
        conn.commit()
    assert stored(engine) == [(1, "satu")]


def test_a_transaction_used_as_a_context_manager_closes_like_a_session(db):
    engine, _factory = db
    with Transaction(engine) as s:
        s.execute(notes.insert(), {"id": 1, "body": "satu"})
        assert checked_out(engine) == 1
    assert checked_out(engine) == 0
    assert stored(engine) == []  # not committed: rolled back on close
