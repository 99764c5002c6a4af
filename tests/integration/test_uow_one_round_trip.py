"""A transaction that is one statement is one round trip on PostgreSQL (UnitOfWork.autocommit):
no `BEGIN` before it and no `COMMIT`/`ROLLBACK` after it, counted by the server itself
(pg_stat_statements in a private database: psycopg2 sends those without any SQLAlchemy event),
for intake's submit, get_contacts and lone reads and routing's batched consumer (and intake's
routed statuses: two round trips, BEGIN and COMMIT inside them); a failure in the middle
of the statement leaves nothing behind; the connection goes back to the pool as it came; and
on SQLite the same code is an ordinary transaction."""

import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool
from support import databases
from support.events import received_event

from services.cli import SERVICES_DIR
from services.intake import db as intake_db
from services.intake import handlers as intake
from services.intake.domain.sealing import PersonalDataBox, new_key
from services.intake.domain.validation import validate_submission
from services.routing import db as routing_db
from services.routing import handlers as routing
from services.routing import registry_store
from services.routing.commands import seed_registry
from shared.contracts import build_event, load_event
from shared.db import UnitOfWork, autocommit, make_engine
from shared.migrate import upgrade

BOX = PersonalDataBox(new_key())


class ServerStatements:
    """The statements the server ran in one database since `reset`, from pg_stat_statements:
    {query: calls}. psycopg2's own BEGIN, COMMIT and ROLLBACK are counted like any other."""

    def __init__(self, url: str):
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with self.engine.connect() as conn:
            preload = conn.exec_driver_sql("SHOW shared_preload_libraries").scalar()
            assert "pg_stat_statements" in preload, (
                "these tests count statements with pg_stat_statements: add it to the server's "
                "shared_preload_libraries and restart it (`bash .ci/run` does)")
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def _run(self, sql: str):
        with self.engine.connect() as conn:
            return conn.execute(text(sql)).all()

    def reset(self) -> None:
        self._run("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
                  "WHERE datname = current_database()), 0)")

    def ran(self) -> dict[str, int]:
        return dict(self._run(
            "SELECT query, calls FROM pg_stat_statements WHERE dbid = (SELECT oid FROM "
            "pg_database WHERE datname = current_database()) AND query NOT LIKE "
            "'%pg_stat_statements%'"))

    def kinds(self) -> dict[str, int]:
        """{first word of the statement: calls}."""
        found: dict[str, int] = {}
        for query, calls in self.ran().items():
            word = query.split(None, 1)[0].upper()
            found[word] = found.get(word, 0) + calls
        return found


class Executes:
    """Round trips from the client's side: one per cursor execute (a query string of several
    statements is one)."""

    def __init__(self, engine):
        self.count = 0
        self.statements = []
        event.listen(engine, "before_cursor_execute", self._one)

    def _one(self, _conn, _cursor, statement, *_args):
        self.count += 1
        self.statements.append(statement[:60])


def private_database(pg_templates, service: str):
    return databases.clone_all({service: pg_templates[service]})[service]


def sqlite_database(tmp_path, service: str) -> str:
    url = f"sqlite:///{tmp_path / f'{service}.sqlite3'}"
    upgrade(SERVICES_DIR / service / "migrations", url)
    if service == "routing":
        seed_registry(url)
    return url


@contextmanager
def _store(request, tmp_path, service: str, db_module):
    """(engine, unit-of-work factory, relay wake-ups, server statements or None) of a fresh
    `service` database on the fixture's backend."""
    if request.param == "postgresql":
        url = private_database(request.getfixturevalue("pg_templates"), service)
    else:
        url = sqlite_database(tmp_path, service)
    # no idle ping: a SELECT 1 at checkout would be counted
    engine = make_engine(url, pool_pre_ping=False)
    wakes = []
    factory = sessionmaker(engine, expire_on_commit=False)

    def uow():
        return UnitOfWork(factory, db_module.outbox, db_module.processed_events,
                          lambda: wakes.append(1))

    server = ServerStatements(url) if request.param == "postgresql" else None
    try:
        yield engine, uow, wakes, server
    finally:
        engine.dispose()
        if server is not None:
            server.engine.dispose()
            databases.drop_all([url])


@pytest.fixture(params=["postgresql", "sqlite"])
def intake_store(request, tmp_path):
    with _store(request, tmp_path, "intake", intake_db) as store:
        yield store


@pytest.fixture(params=["postgresql", "sqlite"])
def routing_store(request, tmp_path):
    with _store(request, tmp_path, "routing", routing_db) as (engine, uow, wakes, server):
        with Session(engine) as s:
            registry = registry_store.load(s)
        yield engine, uow, registry, wakes, server


def submission(**overrides):
    body = {
        "category": "nikah_rujuk", "kecamatan_code": "17.08.05",
        "description": "Pendaftaran nikah di KUA Merigi sudah dua minggu belum diproses.",
        "complainant": {"name": "Siti Aminah", "email": f"warga.{uuid.uuid4().hex[:8]}@contoh.id"},
    }
    body.update(overrides)
    return validate_submission(body)


def counts(engine, *tables) -> list[int]:
    with Session(engine) as s:
        return [s.scalar(select(func.count()).select_from(t)) for t in tables]


INTAKE_TABLES = (intake_db.complaints, intake_db.complainants, intake_db.status_history,
                 intake_db.outbox, intake_db.idempotency)
ROUTING_TABLES = (routing_db.processed_events, routing_db.decisions, routing_db.complaints,
                  routing_db.audit_log, routing_db.outbox, routing_db.attachments)
TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "START", "END", "ABORT"}


def idempotent(key="kunci-1"):
    return intake.IdempotencyRecord("api:k1", key, "h" * 64,
                                    lambda accepted: (201, {"kode": accepted.tracking_code}))


def fail_inserts_into(engine, table: str) -> None:
    """A trigger that fails every INSERT into `table`: a failure in the middle of a statement
    (or of a query string) that has inserted other rows already."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$")
        conn.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
                             "FOR EACH ROW EXECUTE FUNCTION refuse()")


def pooled_connection_is_clean(engine) -> bool:
    """The pool's connection is out of autocommit mode and in no transaction."""
    raw = engine.raw_connection()
    try:
        return (raw.dbapi_connection.autocommit is False
                and raw.dbapi_connection.info.transaction_status == 0)
    finally:
        raw.close()


# -- intake: submit -------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, record", [
    ({}, None),  # with a contact: the duplicate check rides in the one statement
    ({}, "kunci-1"),  # and the idempotency record
    ({"confidentiality": "anonymous", "complainant": None}, "kunci-2"),  # a query string
])
def test_a_submitted_complaint_is_one_round_trip_and_wakes_the_relay(intake_store, overrides,
                                                                     record):
    engine, uow, wakes, server = intake_store
    intake.submit_complaint(uow, submission(**overrides), box=BOX)  # compiles, connects
    wakes.clear()
    executes = Executes(engine)
    if server:
        server.reset()

    accepted = intake.submit_complaint(uow, submission(**overrides), box=BOX,
                                       idempotent=record and idempotent(record))

    assert not accepted.duplicate
    assert wakes == [1]  # the outbox relay is woken once the complaint is committed
    if server:
        assert executes.count == 1
        ran = server.kinds()
        assert not TRANSACTION_CONTROL & set(ran), ran
        assert set(ran) <= {"WITH", "INSERT"}, ran
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(intake_db.complaints).where(
            intake_db.complaints.c.id == accepted.complaint_id)) == 1
        assert s.scalar(select(func.count()).select_from(intake_db.outbox).where(
            intake_db.outbox.c.correlation_id == accepted.complaint_id)) == 1
        if record:
            assert intake.stored_answer(s, "api:k1", record).complaint_id == \
                accepted.complaint_id
    if server:
        assert pooled_connection_is_clean(engine)


@pytest.mark.parametrize("overrides", [
    {},  # the complaint inserted by the statement's first part, then its history fails
    {"confidentiality": "anonymous", "complainant": None},  # a query string: the same
])
def test_a_submit_that_fails_mid_statement_leaves_no_row_and_a_clean_connection(
    pg_templates, overrides
):
    url = private_database(pg_templates, "intake")
    engine = make_engine(url, pool_size=1, max_overflow=0)
    wakes = []
    factory = sessionmaker(engine, expire_on_commit=False)

    def uow():
        return UnitOfWork(factory, intake_db.outbox, intake_db.processed_events,
                          lambda: wakes.append(1))

    try:
        intake.submit_complaint(uow, submission(**overrides), box=BOX)
        before = counts(engine, *INTAKE_TABLES)
        wakes.clear()
        fail_inserts_into(engine, "status_history")

        with pytest.raises(Exception, match="refused for the test"):
            intake.submit_complaint(uow, submission(**overrides), box=BOX,
                                    idempotent=idempotent())

        assert counts(engine, *INTAKE_TABLES) == before
        assert wakes == []
        assert pooled_connection_is_clean(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER refuse ON status_history")
        # the same connection serves the next complaint, which the failure did not take
        accepted = intake.submit_complaint(uow, submission(**overrides), box=BOX,
                                           idempotent=idempotent())
        assert counts(engine, intake_db.complaints, intake_db.idempotency) == [
            before[0] + 1, before[-1] + 1]
        assert accepted.tracking_code
    finally:
        engine.dispose()
        databases.drop_all([url])


def test_an_idempotency_key_taken_first_fails_the_one_statement_and_keeps_nothing(
    intake_store
):
    engine, uow, wakes, server = intake_store
    first = intake.submit_complaint(uow, submission(), box=BOX, idempotent=idempotent())
    before = counts(engine, *INTAKE_TABLES)
    wakes.clear()
    executes = Executes(engine)
    if server:
        server.reset()

    with pytest.raises(intake.IdempotencyRace):
        intake.submit_complaint(uow, submission(), box=BOX, idempotent=idempotent())

    if server:  # the statement failed on the idempotency record: nothing more was sent
        assert executes.count == 1
        assert not TRANSACTION_CONTROL & set(server.kinds())
    assert counts(engine, *INTAKE_TABLES) == before
    assert wakes == []
    with Session(engine) as s:
        assert intake.stored_answer(s, "api:k1", "kunci-1").complaint_id == first.complaint_id


def test_a_submit_with_attachments_stays_one_ordinary_transaction(intake_store):
    """Attachments are written after the inserts, so the inserts are not the whole
    transaction: BEGIN ... COMMIT as before."""
    engine, uow, _wakes, server = intake_store
    ref = {"sha256": "b" * 64, "size": 10, "media_type": "image/jpeg", "name": "foto.jpg"}
    intake.submit_complaint(uow, submission(), box=BOX)
    if server:
        server.reset()

    accepted = intake.submit_complaint(uow, submission(), box=BOX, attachments=[ref])

    if server:
        ran = server.kinds()
        assert (ran.get("BEGIN"), ran.get("COMMIT")) == (1, 1), ran
    with Session(engine) as s:
        assert [a["sha256"] for a in intake.attachments_of(s, accepted.complaint_id)] == [
            "b" * 64]


# -- intake: get_contacts -------------------------------------------------------------------


def test_get_contacts_is_one_select_without_begin_or_rollback(intake_store):
    engine, uow, _wakes, server = intake_store
    accepted = [intake.submit_complaint(uow, submission(), box=BOX) for _ in range(2)]
    ids = [a.complaint_id for a in accepted]
    with Session(engine) as session:
        intake.contacts_for(session, ids, BOX)  # compiles
    executes = Executes(engine)
    if server:
        server.reset()

    with Session(engine) as session:  # as the RPC does: a fresh session, closed after
        contacts = intake.contacts_for(session, [*ids, str(uuid.uuid4())], BOX)

    assert [c and c["name"] for c in contacts.values()] == ["Siti Aminah", "Siti Aminah", None]
    if server:
        assert executes.count == 1
        assert server.kinds() == {"SELECT": 1}
        assert pooled_connection_is_clean(engine)


@pytest.mark.parametrize("read", ["stored_answer", "contact_for"])
def test_a_lone_read_on_a_fresh_session_is_one_select_without_begin_or_rollback(intake_store,
                                                                                 read):
    engine, uow, _wakes, server = intake_store
    accepted = intake.submit_complaint(uow, submission(), box=BOX, idempotent=idempotent())

    def run(session):
        if read == "stored_answer":
            return intake.stored_answer(session, "api:k1", "kunci-1").complaint_id
        return intake.contact_for(session, accepted.complaint_id, BOX)["name"]

    with Session(engine) as session:
        run(session)  # compiles
    executes = Executes(engine)
    if server:
        server.reset()

    with Session(engine) as session:  # as the service does: a fresh session, closed after
        found = run(session)
    # a session that has run a statement already: the read joins its transaction
    with Session(engine) as session:
        session.execute(select(1))
        assert run(session) == found

    assert found == (accepted.complaint_id if read == "stored_answer" else "Siti Aminah")
    if server:
        assert executes.count == 3
        ran = server.kinds()
        assert (ran.get("SELECT"), ran.get("BEGIN"), ran.get("ROLLBACK")) == (3, 1, 1), ran
        assert pooled_connection_is_clean(engine)


# -- intake: routed statuses ----------------------------------------------------------------


def routed(accepted_or_id, seq=1):
    complaint_id = getattr(accepted_or_id, "complaint_id", accepted_or_id)
    now = datetime.now(UTC)
    return load_event(build_event("complaint_routed", {
        "complaint_id": complaint_id, "tracking_code": "DMS-AAAA-BBBB-CCCC",
        "unit_code": "kua-merigi", "unit_name": "KUA Kecamatan Merigi", "unit_type": "kua",
        "stage": "pilot", "rule": "kua_kecamatan", "reason": "wilayah",
        "category": "nikah_rujuk", "channel": "web", "confidentiality": "public",
        "contact_channels": ["email"], "routed_at": now, "due_at": now, "status": "routed",
        "seq": seq,
    }, correlation_id=complaint_id))


@pytest.mark.parametrize("size", [1, 3])
def test_a_batch_of_routed_statuses_is_two_round_trips(intake_store, size):
    """BEGIN with the claim and the lock, then the writes with COMMIT: the transaction's
    control statements travel in the query strings, not in round trips of their own."""
    engine, uow, wakes, server = intake_store
    intake.apply_status_events(uow, [routed(intake.submit_complaint(uow, submission(), box=BOX))
                                     for _ in range(size)])  # compiles
    events = [routed(intake.submit_complaint(uow, submission(), box=BOX)) for _ in range(size)]
    wakes.clear()
    executes = Executes(engine)
    if server:
        server.reset()

    assert intake.apply_status_events(uow, [*events, events[0]]) == [True] * size + [False]

    assert wakes == []
    if server:
        assert executes.count == 2
        ran = server.kinds()
        assert (ran.get("BEGIN"), ran.get("COMMIT"), ran.get("ROLLBACK")) == (1, 1, None), ran
        assert pooled_connection_is_clean(engine)
        # a redelivery of the whole batch: BEGIN with the claim, then COMMIT
        executes.count = 0
        server.reset()
        assert intake.apply_status_events(uow, events) == [False] * size
        assert executes.count == 2
        ran = server.kinds()
        assert (ran.get("BEGIN"), ran.get("COMMIT"), ran.get("ROLLBACK")) == (1, 1, None), ran
    with Session(engine) as s:
        statuses = s.execute(select(intake_db.complaints.c.status).where(
            intake_db.complaints.c.id.in_([e.data["complaint_id"] for e in events]))).scalars()
        assert list(statuses) == ["routed"] * size
        assert s.scalar(select(func.count()).select_from(intake_db.status_history).where(
            intake_db.status_history.c.status == "routed")) == 2 * size


@pytest.mark.parametrize("failure", ["unknown complaint", "history insert"])
def test_a_routed_batch_that_fails_leaves_nothing_and_a_clean_connection(pg_templates,
                                                                          failure):
    url = private_database(pg_templates, "intake")
    engine = make_engine(url, pool_size=1, max_overflow=0)
    factory = sessionmaker(engine, expire_on_commit=False)

    def uow():
        return UnitOfWork(factory, intake_db.outbox, intake_db.processed_events)

    try:
        known = [intake.submit_complaint(uow, submission(), box=BOX) for _ in range(2)]
        for batch in ([routed(known[0])], [routed(known[1])]):
            intake.apply_status_events(uow, batch)  # compiles both forms
        events = [routed(k, seq=2) for k in known]
        tables = (intake_db.processed_events, intake_db.status_history, intake_db.complaints)
        if failure == "unknown complaint":
            events.append(routed(str(uuid.uuid4())))
            error = intake.UnknownComplaint
        else:
            fail_inserts_into(engine, "status_history")
            error = Exception
        before = counts(engine, *tables)
        server = ServerStatements(url)
        try:
            for batch in (events, events[:1]) if failure != "unknown complaint" else (
                    events, events[2:]):
                server.reset()
                with pytest.raises(error):
                    intake.apply_status_events(uow, batch)
                assert server.kinds().get("ROLLBACK") == 1
                assert counts(engine, *tables) == before
                assert pooled_connection_is_clean(engine)
        finally:
            server.engine.dispose()
        if failure == "history insert":
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TRIGGER refuse ON status_history")
        # nothing was kept: the events apply when they come again
        assert intake.apply_status_events(uow, events[:2]) == [True, True]
        with Session(engine) as s:
            assert list(s.execute(select(intake_db.complaints.c.last_seq)).scalars()) == [2, 2]
    finally:
        engine.dispose()
        databases.drop_all([url])


# -- routing: the batched consumer ----------------------------------------------------------


def test_a_batch_of_received_complaints_is_one_round_trip(routing_store):
    engine, uow, registry, wakes, server = routing_store
    routing.route_complaints(uow, registry, [received_event()])  # prepares, compiles
    wakes.clear()
    batch = [received_event() for _ in range(3)]
    executes = Executes(engine)
    if server:
        server.reset()

    decided = routing.route_complaints(uow, registry, [*batch, batch[0]])

    assert [d and d.unit_code for d in decided] == ["kua-merigi"] * 3 + [None]
    assert wakes == [1]
    if server:
        assert executes.count == 1
        # pg_stat_statements counts an EXECUTE under the text of its PREPARE
        assert [(q.split(" AS ", 1)[0], calls) for q, calls in server.ran().items()] == [
            ("PREPARE routing_route_complaints (json, text, timestamptz)", 1)]
        assert pooled_connection_is_clean(engine)
    else:  # SQLite: a statement per row, one transaction
        assert executes.count == 3 * 6 + 2
    assert counts(engine, routing_db.complaints)[0] == 4


def test_a_routing_batch_that_fails_mid_statement_leaves_nothing(pg_templates):
    url = private_database(pg_templates, "routing")
    engine = make_engine(url, pool_size=1, max_overflow=0)
    factory = sessionmaker(engine, expire_on_commit=False)

    def uow():
        return UnitOfWork(factory, routing_db.outbox, routing_db.processed_events)

    try:
        with Session(engine) as s:
            registry = registry_store.load(s)
        routing.route_complaints(uow, registry, [received_event()])
        before = counts(engine, *ROUTING_TABLES)
        fail_inserts_into(engine, "attachments")  # the statement's last part
        batch = [received_event(), received_event()]

        with pytest.raises(Exception, match="refused for the test"):
            routing.route_complaints(uow, registry, batch)

        assert counts(engine, *ROUTING_TABLES) == before
        assert pooled_connection_is_clean(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER refuse ON attachments")
        # nothing was claimed: the same events are routed when they come again
        assert [d.unit_code for d in routing.route_complaints(uow, registry, batch)] == [
            "kua-merigi"] * 2
    finally:
        engine.dispose()
        databases.drop_all([url])


# -- the mechanism itself -------------------------------------------------------------------


@pytest.fixture
def scratch(pg_templates):
    """A private PostgreSQL database with a table `t (n int primary key)`, one pooled
    connection: (engine, unit-of-work factory, server statements)."""
    url = private_database(pg_templates, "intake")
    engine = make_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=False)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n int PRIMARY KEY)")
    factory = sessionmaker(engine)
    server = ServerStatements(url)
    try:
        yield engine, lambda: UnitOfWork(factory, None, None), server
    finally:
        engine.dispose()
        server.engine.dispose()
        databases.drop_all([url])


def stored(engine) -> list[int]:
    with engine.connect() as conn:
        return [n for (n,) in conn.exec_driver_sql("SELECT n FROM t ORDER BY n")]


def test_explicit_begin_and_commit_strings_make_a_transaction_of_several_round_trips(scratch):
    engine, uow_factory, server = scratch
    server.reset()
    with uow_factory() as uow:
        with uow.autocommit() as conn:
            conn.exec_driver_sql("BEGIN; INSERT INTO t VALUES (1)")
            conn.exec_driver_sql("INSERT INTO t VALUES (2); COMMIT")
        uow.commit()

    assert server.kinds() == {"BEGIN": 1, "INSERT": 2, "COMMIT": 1}  # the strings' own
    assert stored(engine) == [1, 2]
    assert pooled_connection_is_clean(engine)


def test_an_error_after_an_explicit_begin_is_rolled_back_before_the_connection_is_reused(
    scratch
):
    engine, uow_factory, _server = scratch
    with pytest.raises(ZeroDivisionError), uow_factory() as uow, uow.autocommit() as conn:
        conn.exec_driver_sql("BEGIN; INSERT INTO t VALUES (1)")
        1 / 0  # noqa: B018 - the domain failing between two round trips

    assert stored(engine) == []
    assert pooled_connection_is_clean(engine)


def test_a_block_that_leaves_a_transaction_open_is_rolled_back_and_refused(scratch):
    engine, uow_factory, _server = scratch
    with pytest.raises(RuntimeError, match="left a transaction open"), uow_factory() as uow:
        with uow.autocommit() as conn:
            conn.exec_driver_sql("BEGIN; INSERT INTO t VALUES (1)")
        uow.commit()

    assert stored(engine) == []
    assert pooled_connection_is_clean(engine)


def test_a_connection_whose_rollback_fails_is_invalidated_not_pooled(scratch):
    engine, uow_factory, _server = scratch
    used = []

    def refuse_rollback(conn, _cursor, statement, *_):
        if statement == "ROLLBACK":
            used.append(conn.connection.dbapi_connection)
            raise RuntimeError("connection lost while rolling back")

    event.listen(engine, "before_cursor_execute", refuse_rollback)
    try:
        with pytest.raises(ZeroDivisionError), uow_factory() as uow, \
                uow.autocommit() as conn:
            conn.exec_driver_sql("BEGIN; INSERT INTO t VALUES (1)")
            1 / 0  # noqa: B018
    finally:
        event.remove(engine, "before_cursor_execute", refuse_rollback)

    assert used and used[0].closed  # closed, so its open transaction ended on the server
    assert stored(engine) == []
    with engine.connect() as conn:  # the pool hands out a fresh connection
        assert conn.connection.dbapi_connection is not used[0]


def test_autocommit_is_refused_once_the_transaction_has_run_a_statement(scratch):
    engine, uow_factory, _server = scratch
    with uow_factory() as uow:
        uow.session.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(RuntimeError, match="run statements already"), uow.autocommit():
            pass
        # the transaction is untouched: still open, still the caller's to commit or not
    assert stored(engine) == []
    assert pooled_connection_is_clean(engine)


def test_on_sqlite_the_block_is_the_ordinary_transaction(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'scratch.sqlite3'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n int PRIMARY KEY)")
    factory = sessionmaker(engine)
    try:
        with pytest.raises(ZeroDivisionError), UnitOfWork(factory, None, None) as uow, \
                uow.autocommit() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            1 / 0  # noqa: B018
        assert stored(engine) == []  # rolled back with the unit of work
        with UnitOfWork(factory, None, None) as uow:
            with uow.autocommit() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")  # the same transaction
            uow.commit()
        assert stored(engine) == [1, 2]
        with Session(engine) as session, autocommit(session) as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    finally:
        engine.dispose()
