"""intake's and routing's CPU per complaint is mostly SQLAlchemy work and round trips (issue 8):
a submitted complaint is one transaction (its duplicate check included), routing a received
complaint is one transaction, and neither path builds SQL per call (statements are built once
and executed with parameters), on PostgreSQL and SQLite alike."""

import dataclasses
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import ValuesBase
from sqlalchemy.sql.selectable import Select
from support import databases
from support.events import received_event

from services.cli import SERVICES_DIR
from services.intake import db as intake_db
from services.intake import handlers as intake
from services.intake.domain.sealing import PersonalDataBox, new_key
from services.intake.domain.validation import validate_submission
from services.routing import attachments as routing_attachments
from services.routing import db as routing_db
from services.routing import handlers as routing
from services.routing import registry_store
from services.routing.commands import seed_registry
from shared.contracts import build_event, load_event
from shared.db import UnitOfWork, make_engine
from shared.migrate import upgrade

BOX = PersonalDataBox(new_key())


class Counted:
    """Statements (first word), executes (a multi-statement execute is one round trip),
    transactions begun and commits an engine runs."""

    def __init__(self, engine):
        self.statements: list[str] = []
        self.executes = self.begins = self.commits = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._commit)

    def _statement(self, _conn, _cursor, statement, *_):
        self.executes += 1
        self.statements.extend(part.split(None, 1)[0].upper() for part in statement.split("; "))

    def _begin(self, _conn):
        self.begins += 1

    def _commit(self, _conn):
        self.commits += 1

    def reset(self):
        self.statements, self.executes, self.begins, self.commits = [], 0, 0, 0


@contextmanager
def no_sql_built():
    """Inside: any `.values(...)` or `.where(...)` call (SQL construction per call) fails."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("SQL built per call")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ValuesBase, "values", refuse)
        patch.setattr(Select, "where", refuse)
        yield


def _database(request, tmp_path, service):
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_urls")[service]
    else:
        url = f"sqlite:///{tmp_path / f'{service}.sqlite3'}"
        upgrade(SERVICES_DIR / service / "migrations", url)
        if service == "routing":
            seed_registry(url)
    return make_engine(url)


@pytest.fixture(params=["postgresql", "sqlite"])
def intake_uow(request, tmp_path):
    engine = _database(request, tmp_path, "intake")
    factory = sessionmaker(engine, expire_on_commit=False)
    yield engine, lambda: UnitOfWork(factory, intake_db.outbox, intake_db.processed_events)
    engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def routing_uow(request, tmp_path):
    engine = _database(request, tmp_path, "routing")
    factory = sessionmaker(engine, expire_on_commit=False)
    yield engine, lambda: UnitOfWork(factory, routing_db.outbox, routing_db.processed_events)
    engine.dispose()


def submission(**overrides):
    body = {
        "category": "nikah_rujuk", "kecamatan_code": "17.08.05",
        "description": "Pendaftaran nikah di KUA Merigi sudah dua minggu belum diproses.",
        "complainant": {"name": "Siti Aminah", "email": "siti.aminah@contoh.id"},
    }
    body.update(overrides)
    return validate_submission(body)


def test_a_new_complaint_is_one_transaction_with_its_duplicate_check(intake_uow):
    engine, uow = intake_uow
    intake.submit_complaint(uow, submission(), box=BOX)  # compiles and caches the statements
    counted = Counted(engine)

    with no_sql_built():
        accepted = intake.submit_complaint(
            uow, submission(description="Buku nikah kami belum juga dicetak setelah sebulan."),
            box=BOX)

    assert not accepted.duplicate
    # duplicate check, complaint, complainant, status history, outbox row: one transaction.
    # On PostgreSQL the inserts carry the check and are one statement (WITH ...); this contact
    # has an open complaint, so it writes nothing, its candidates are compared, then the
    # inserts go as one multi-statement execute.
    if on_postgresql(engine):
        assert counted.statements == ["WITH", "SELECT"] + ["INSERT"] * 4
        assert counted.executes == 3
    else:
        assert counted.statements == ["SELECT", "INSERT", "INSERT", "INSERT", "INSERT"]
        assert counted.executes == 5
    assert (counted.begins, counted.commits) == (1, 1)
    with Session(engine) as s:
        stored = s.execute(select(intake_db.complaints.c.tracking_code, intake_db.complaints.c
                                  .contact_key).where(
            intake_db.complaints.c.id == accepted.complaint_id)).one()
        assert stored.tracking_code == accepted.tracking_code
        assert stored.contact_key == BOX.fingerprint({"email": "siti.aminah@contoh.id"})
        person = s.execute(select(intake_db.complainants).where(
            intake_db.complainants.c.complaint_id == accepted.complaint_id)).one()
        assert (person.name, person.email) == ("Siti Aminah", "siti.aminah@contoh.id")


def test_a_complaint_from_a_contact_without_an_open_complaint_is_one_round_trip(intake_uow):
    engine, uow = intake_uow
    intake.submit_complaint(uow, submission(), box=BOX)  # compiles and caches the statements
    counted = Counted(engine)

    with no_sql_built():
        accepted = intake.submit_complaint(
            uow, submission(complainant={"name": "Budi", "email": "budi@contoh.id"}), box=BOX)

    assert not accepted.duplicate
    if on_postgresql(engine):  # the duplicate check inside the inserts' one round trip
        assert (counted.statements, counted.executes) == (["WITH"], 1)
    else:
        assert (counted.statements, counted.executes) == (["SELECT"] + ["INSERT"] * 4, 5)
    assert (counted.begins, counted.commits) == (1, 1)
    assert stored_rows(engine, accepted.complaint_id) == (1, 1, 1, 1)


def test_both_dialects_store_the_same_complaint_row(intake_uow):
    """The PostgreSQL path derives its SQL from the tables; SQLite uses SQLAlchemy's insert.
    Every column of every row they write comes out the same."""
    engine, uow = intake_uow
    accepted = intake.submit_complaint(
        uow, submission(confidentiality="confidential"), box=BOX, officer="petugas",
        qr_location="ptsp", now=datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    with Session(engine) as s:
        stored = {
            table.name: [dict(r._mapping) for r in s.execute(select(table).where(column ==
                                                                         accepted.complaint_id))]
            for table, column in (
                (intake_db.complaints, intake_db.complaints.c.id),
                (intake_db.complainants, intake_db.complainants.c.complaint_id),
                (intake_db.status_history, intake_db.status_history.c.complaint_id),
            )}
    row = stored["complaints"][0]
    assert row == {**row, "status": "received", "last_seq": 0, "routed_seq": 0,
                   "unit_hint_trusted": False, "officer_username": "petugas",
                   "qr_location": "ptsp", "confidentiality": "confidential",
                   "created_at": datetime(2026, 11, 28, 10, 0, tzinfo=UTC)}
    assert {k for k, v in row.items() if v is None} == {
        "desa_code", "unit_hint", "unit_code", "unit_name", "due_at", "rating",
        "reopen_requested_seq"}
    person = stored["complainants"][0]
    assert (person["name"], person["email"], bool(person["sealed"])) == (None, None, True)
    assert [(h["status"], h["seq"], h["note"]) for h in stored["status_history"]] == [
        ("received", 0, None)]


def test_the_postgresql_insert_takes_a_new_column_and_its_default_from_the_table():
    """A column added to a table reaches the one-round-trip SQL without a list to update:
    given, or by its Python-side default; a value for no column fails loudly."""
    table = Table("complaints", MetaData(), *(c._copy() for c in intake_db.complaints.c),
                  Column("source_ip", String(45)), Column("priority", Integer, default=3))
    keys = frozenset(["id", "tracking_code", "source_ip"])
    columns, defaults = intake._pg_columns(table, keys)
    assert {"id", "tracking_code", "source_ip", "priority"} <= set(columns)
    assert defaults == {"unit_hint_trusted": False, "last_seq": 0, "routed_seq": 0,
                        "priority": 3}
    with pytest.raises(ValueError):
        intake._pg_columns(table, keys | {"no_such_column"})


def on_postgresql(engine) -> bool:
    return engine.dialect.name == "postgresql"


def stored_rows(engine, complaint_id):
    """(complaints, complainants, history entries, outbox rows) stored for `complaint_id`."""
    t = intake_db
    with Session(engine) as s:
        return tuple(
            s.scalar(select(func.count()).select_from(table).where(column == complaint_id))
            for table, column in (
                (t.complaints, t.complaints.c.id),
                (t.complainants, t.complainants.c.complaint_id),
                (t.status_history, t.status_history.c.complaint_id),
                (t.outbox, t.outbox.c.correlation_id),
            ))


def answer_record(scope="api:k1", key="kunci-1", req_hash="h" * 64):
    return intake.IdempotencyRecord(
        scope, key, req_hash,
        lambda accepted: (201, {"tracking_code": accepted.tracking_code}))


def test_an_idempotent_submission_sends_its_inserts_and_its_answer_in_one_round_trip(
    intake_uow
):
    engine, uow = intake_uow
    intake.submit_complaint(uow, submission(), box=BOX, idempotent=answer_record(key="warm"))
    counted = Counted(engine)

    with no_sql_built():
        accepted = intake.submit_complaint(
            uow, submission(description="Buku nikah kami belum juga dicetak setelah sebulan.",
                            complainant={"name": "Budi", "email": "budi@contoh.id"}),
            box=BOX, idempotent=answer_record())

    # on PostgreSQL the duplicate check rides with the inserts: one round trip in all
    if on_postgresql(engine):
        assert (counted.statements, counted.executes) == (["WITH"], 1)
    else:
        assert (counted.statements, counted.executes) == (["SELECT"] + ["INSERT"] * 5, 6)
    assert (counted.begins, counted.commits) == (1, 1)
    assert stored_rows(engine, accepted.complaint_id) == (1, 1, 1, 1)
    with Session(engine) as s:
        answer = intake.stored_answer(s, "api:k1", "kunci-1")
    assert (answer.status_code, answer.body, answer.complaint_id, answer.request_hash) == (
        201, {"tracking_code": accepted.tracking_code}, accepted.complaint_id, "h" * 64)


@pytest.mark.parametrize("contact", [
    {"name": "Siti Aminah", "email": "siti.aminah@contoh.id"},  # has an open complaint
    {"name": "Budi", "email": "budi@contoh.id"},  # has none
])
def test_an_idempotency_key_taken_meanwhile_keeps_nothing_of_the_attempt(intake_uow, contact):
    engine, uow = intake_uow
    first = intake.submit_complaint(uow, submission(), box=BOX, idempotent=answer_record())
    attempt = []

    def render(accepted):
        attempt.append(accepted.complaint_id)
        return 201, {}

    # the same key, as a request that lost the race (its replay check found nothing yet)
    with pytest.raises(intake.IdempotencyRace):
        intake.submit_complaint(
            uow, submission(description="Buku nikah kami belum juga dicetak setelah sebulan.",
                            complainant=contact),
            box=BOX, idempotent=intake.IdempotencyRecord("api:k1", "kunci-1", "h" * 64, render))

    assert stored_rows(engine, attempt[-1]) == (0, 0, 0, 0)
    with Session(engine) as s:
        assert intake.stored_answer(s, "api:k1", "kunci-1").complaint_id == first.complaint_id


def test_a_tracking_code_collision_is_retried_with_a_fresh_code(intake_uow, monkeypatch):
    engine, uow = intake_uow
    taken = intake.submit_complaint(uow, submission(), box=BOX)
    codes = iter([taken.tracking_code, "DMS-2345-6789-ABCD"])
    monkeypatch.setattr(intake, "new_tracking_code", lambda: next(codes))
    wakes = []
    sessions = sessionmaker(engine, expire_on_commit=False)

    def uow_waking():
        return UnitOfWork(sessions, intake_db.outbox, intake_db.processed_events,
                          lambda: wakes.append(1))

    counted = Counted(engine)
    accepted = intake.submit_complaint(
        uow_waking, submission(description="Buku nikah kami belum juga dicetak setelah sebulan.",
                               confidentiality="anonymous", complainant=None),
        box=BOX, idempotent=answer_record())

    assert accepted.tracking_code == "DMS-2345-6789-ABCD"
    # an anonymous complaint has no duplicate check: two attempts of one round trip each on
    # PostgreSQL (complaint, history, outbox row, answer), the first rolled back; on SQLite
    # the first attempt stops at the complaint
    assert counted.executes == (2 if on_postgresql(engine) else 1 + 4)
    assert (counted.begins, counted.commits) == (2, 1)
    assert wakes == [1]  # the relay is woken once, by the commit of the second attempt
    assert stored_rows(engine, accepted.complaint_id) == (1, 0, 1, 1)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(intake_db.outbox)) == 2
        assert intake.stored_answer(s, "api:k1", "kunci-1").body == {
            "tracking_code": "DMS-2345-6789-ABCD"}


def test_a_resubmission_is_linked_in_the_transaction_of_its_duplicate_check(
    intake_uow
):
    engine, uow = intake_uow
    first = intake.submit_complaint(uow, submission(), box=BOX)
    counted = Counted(engine)

    with no_sql_built():
        again = intake.submit_complaint(uow, submission(), box=BOX)

    assert again.duplicate
    assert (again.complaint_id, again.tracking_code) == (first.complaint_id,
                                                         first.tracking_code)
    assert (again.status, again.received_at) == ("received", first.received_at)
    # duplicate check (which also reads the earlier complaint), the "merged" message; on
    # PostgreSQL the inserts carrying the check (one WITH statement) come first, write nothing
    assert counted.statements == (["WITH"] if on_postgresql(engine) else []) + [
        "SELECT", "INSERT"]
    assert (counted.begins, counted.commits) == (1, 1)
    with Session(engine) as s:
        assert [s.scalar(select(func.count()).select_from(table)) for table in (
            intake_db.complaints, intake_db.complainants, intake_db.status_history,
            intake_db.outbox)] == [1, 1, 1, 1]
    with Session(engine) as s:
        kinds = s.execute(select(intake_db.complaint_messages.c.kind).where(
            intake_db.complaint_messages.c.complaint_id == first.complaint_id)).scalars().all()
    assert kinds == ["duplicate"]


def test_a_confidential_complaint_is_sealed_by_the_prebuilt_insert(intake_uow):
    engine, uow = intake_uow
    accepted = intake.submit_complaint(uow, submission(confidentiality="confidential"), box=BOX)
    with Session(engine) as s:
        person = s.execute(select(intake_db.complainants).where(
            intake_db.complainants.c.complaint_id == accepted.complaint_id)).one()
        assert (person.name, person.email) == (None, None)
        assert BOX.open(person.sealed)["email"] == "siti.aminah@contoh.id"
        assert intake.contact_for(s, accepted.complaint_id, BOX)["email"] == \
            "siti.aminah@contoh.id"


def routed_event(accepted, seq=1):
    now = datetime.now(UTC)
    return load_event(build_event("complaint_routed", {
        "complaint_id": accepted.complaint_id, "tracking_code": accepted.tracking_code,
        "unit_code": "kua-merigi", "unit_name": "KUA Kecamatan Merigi", "unit_type": "kua",
        "stage": "pilot", "rule": "kua_kecamatan", "reason": "wilayah",
        "category": "nikah_rujuk", "channel": "web", "confidentiality": "public",
        "contact_channels": ["email"], "routed_at": now, "due_at": now, "status": "routed",
        "seq": seq,
    }, correlation_id=accepted.complaint_id))


def test_a_routed_status_and_the_contact_lookup_build_no_sql(intake_uow):
    engine, uow = intake_uow
    warm = intake.submit_complaint(uow, submission(), box=BOX)
    intake.apply_status_event(uow, routed_event(warm))
    accepted = intake.submit_complaint(
        uow, submission(description="Buku nikah kami belum juga dicetak setelah sebulan.",
                        complainant={"email": "budi@contoh.id"}), box=BOX)
    routed = routed_event(accepted)
    counted = Counted(engine)

    with no_sql_built():
        assert intake.apply_status_event(uow, routed)
        # claim, lock the complaint, update it, its history entry; on PostgreSQL the whole
        # transaction is two round trips: BEGIN with the claim-and-lock statement, then the
        # update and the history entry with COMMIT
        if on_postgresql(engine):
            assert counted.statements == ["BEGIN", "WITH", "UPDATE", "INSERT", "COMMIT"]
            assert counted.executes == 2
        else:
            assert counted.statements == ["INSERT", "SELECT", "UPDATE", "INSERT"]
            assert counted.executes == 4
        # a redelivery: claimed before, so nothing is locked or written
        counted.reset()
        assert not intake.apply_status_event(uow, routed)
        if on_postgresql(engine):
            assert counted.statements == ["BEGIN", "WITH", "COMMIT"]
            assert counted.executes == 2
        else:
            assert counted.executes == 1
        with Session(engine) as s:
            contact = intake.contact_for(s, accepted.complaint_id, BOX)
    assert contact == {"name": None, "phone": None, "email": "budi@contoh.id",
                       "channel": "web"}
    with Session(engine) as s:
        row = s.execute(select(intake_db.complaints).where(
            intake_db.complaints.c.id == accepted.complaint_id)).one()
    assert (row.status, row.last_seq, row.unit_code, row.unit_name) == (
        "routed", 1, "kua-merigi", "KUA Kecamatan Merigi")
    assert row.due_at is not None


def republished(event_, **changes):
    """The same complaint_received again under a new event id (a producer that re-published)."""
    return load_event(build_event("complaint_received", {**event_.data, **changes},
                                  correlation_id=event_.correlation_id))


def copy_of(event_, **changes):
    """The same event (same event id), e.g. redelivered, with `changes` to its data."""
    return dataclasses.replace(event_, data={**event_.data, **changes})


def test_routing_a_received_complaint_is_one_transaction_and_builds_no_sql(
    routing_uow
):
    engine, uow = routing_uow
    with Session(engine) as s:
        registry = registry_store.load(s)
    routing.route_complaint(uow, registry, received_event())  # compiles and caches
    routing_attachments.on_received(uow, received_event())
    event_ = received_event()
    counted = Counted(engine)

    with no_sql_built():
        decision = routing.route_complaint(uow, registry, event_)

    assert decision.unit_code == "kua-merigi"
    # claim, decision, complaint, audit entry, outbox row
    assert counted.statements == ["INSERT"] * 5
    assert (counted.begins, counted.commits) == (1, 1)
    with no_sql_built():
        assert routing.route_complaint(uow, registry, event_) is None  # a redelivery
        assert routing_attachments.on_received(uow, event_) == 1
        assert routing_attachments.on_received(uow, event_) == 0
    with Session(engine) as s:
        row = s.execute(select(routing_db.complaints).where(
            routing_db.complaints.c.complaint_id == event_.data["complaint_id"])).one()
        audit = s.execute(select(routing_db.audit_log).where(
            routing_db.audit_log.c.complaint_id == event_.data["complaint_id"])).one()
    assert (row.unit_code, row.status, row.seq, row.contact_channels) == (
        "kua-merigi", "routed", 1, ["email"])
    assert (audit.action, audit.before, audit.after["unit_code"]) == (
        "routed", None, "kua-merigi")


def test_a_batch_of_received_complaints_is_routed_in_one_transaction(routing_uow):
    engine, uow = routing_uow
    with Session(engine) as s:
        registry = registry_store.load(s)
    routing.route_complaints(uow, registry, [received_event()])  # compiles and caches
    batch = [received_event() for _ in range(3)]
    again = load_event(build_event("complaint_received", {  # the first one, re-published
        **batch[0].data, "received_at": batch[0].data["received_at"]},
        correlation_id=batch[0].correlation_id))
    counted = Counted(engine)

    with no_sql_built():
        decisions = routing.route_complaints(uow, registry, [*batch, batch[0], again])

    assert [d and d.unit_code for d in decisions] == ["kua-merigi"] * 3 + [None, None]
    assert (counted.begins, counted.commits) == (1, 1)
    if on_postgresql(engine):
        # claims, decisions, complaints, audit entries, outbox rows and attachment references
        # of the whole batch: one statement (prepared by the first batch on this connection),
        # one round trip, without a BEGIN and a COMMIT of its own (UnitOfWork.autocommit;
        # test_uow_one_round_trip.py counts those on the server)
        assert (counted.statements, counted.executes) == (["EXECUTE"], 1)
    else:
        # per new complaint: claim, decision, complaint, audit entry, outbox row, attachment;
        # the redelivered copy: claim, attachment; the re-published one: claim, decision,
        # attachment
        assert counted.statements == ["INSERT"] * (3 * 6 + 2 + 3)
        assert counted.executes == len(counted.statements)
    with Session(engine) as s:
        ids = [e.data["complaint_id"] for e in batch]
        routed = s.execute(select(routing_db.complaints.c.complaint_id).where(
            routing_db.complaints.c.complaint_id.in_(ids))).scalars().all()
        files = s.execute(select(routing_db.attachments.c.complaint_id).where(
            routing_db.attachments.c.complaint_id.in_(ids))).scalars().all()
        staged = s.execute(select(routing_db.outbox.c.correlation_id).where(
            routing_db.outbox.c.correlation_id.in_(ids))).scalars().all()
    assert sorted(routed) == sorted(ids)
    assert sorted(files) == sorted(ids)  # each complaint's attachment, once
    assert sorted(staged) == sorted(ids)  # one complaint_routed each, none for the copies


ROUTING_TABLES = {  # what route_complaints writes, without serial ids and clock readings
    "processed_events": "consumer, event_id",
    "decisions": "*",
    "complaints": "*, contact_channels::text AS contact_channels_json",
    "audit_log": "complaint_id, unit_code, actor, actor_role, action, before::text AS b, "
                 "after::text AS a, text, at",
    "outbox": "exchange, routing_key, correlation_id, "
              "(body::jsonb - 'event_id')::text AS body_without_id",
    "attachments": "complaint_id, sha256, size, media_type, name, added_at",
}


def routing_rows(engine) -> dict:
    with engine.connect() as conn:
        return {table: sorted((tuple(r) for r in conn.execute(text(  # noqa: S608 - fixed
            f"SELECT {columns} FROM {table}"))), key=repr)
            for table, columns in ROUTING_TABLES.items()}


def test_on_postgresql_the_one_statement_stores_what_a_statement_per_row_stores(pg_templates):
    one, two = received_event(), received_event(attachments=[
        {"sha256": c * 64, "size": 10, "media_type": "image/jpeg", "name": f"{c}.jpg"}
        for c in "abc"])
    three = received_event(confidentiality="confidential", attachments=[],
                           contact_channels=[], kecamatan_code=None)
    four = received_event(unit_hint="kua-kabawetan", unit_hint_trusted=True)
    batches = [
        [one],
        # a new complaint with three files, a redelivered event, a re-published one, the same
        # event twice in the batch, a complaint re-published within the batch
        [two, copy_of(one), republished(one), three, three, four, republished(four)],
        [copy_of(two), republished(three), received_event()],
    ]
    now = datetime.now(UTC)
    outcomes, stored = [], []
    for one_statement in (True, False):
        url = databases.clone_all({"routing": pg_templates["routing"]})["routing"]
        engine = make_engine(url)
        try:
            with Session(engine) as s:
                registry = registry_store.load(s)
            factory = sessionmaker(engine, expire_on_commit=False)
            counted = Counted(engine)
            # prepared=False: as behind a transaction-mode pooler
            outcomes.append([[d and d.unit_code for d in routing.route_complaints(
                lambda: UnitOfWork(factory, routing_db.outbox, routing_db.processed_events),
                registry, batch, now=now, prepared=one_statement)] for batch in batches])
            if one_statement:  # prepared once on the connection, executed per batch
                assert counted.statements == ["PREPARE"] + ["EXECUTE"] * 3
            else:  # switched off: nothing prepared, a plain statement per row
                assert "PREPARE" not in counted.statements
                assert "EXECUTE" not in counted.statements
                assert len(counted.statements) > 3 * 6
            stored.append(routing_rows(engine))
        finally:
            engine.dispose()
            databases.drop_all([url])

    assert outcomes[0] == outcomes[1]
    assert [[unit is not None for unit in batch] for batch in outcomes[0]] == [
        [True], [True, False, False, True, False, True, False], [False, False, True]]
    assert stored[0] == stored[1]
    # claims: 1 + 5 + 2; five complaints; files: one 1, two 3, four 1, the last 1
    assert [len(stored[0][t]) for t in ROUTING_TABLES] == [8, 5, 5, 5, 5, 6]


@pytest.mark.parametrize("routing_uow", ["postgresql"], indirect=True)  # SQLite prepares nothing
def test_a_prepared_statement_the_server_dropped_is_prepared_again(routing_uow):
    engine, uow = routing_uow
    assert on_postgresql(engine)
    with Session(engine) as s:
        registry = registry_store.load(s)
    assert routing.route_complaints(uow, registry, [received_event()])[0] is not None
    with engine.connect() as conn:  # the pool's one connection, as a pooler's reset would
        conn.exec_driver_sql("DEALLOCATE ALL")
        conn.commit()
    lost = received_event()

    with pytest.raises(Exception, match="does not exist"):  # this batch fails, as any would
        routing.route_complaints(uow, registry, [lost])
    counted = Counted(engine)
    assert routing.route_complaints(uow, registry, [lost])[0] is not None  # handled again

    assert counted.statements == ["PREPARE", "EXECUTE"]


def test_a_value_the_database_refuses_fails_the_batch_only_where_the_row_is_inserted(
    routing_uow
):
    engine, uow = routing_uow
    with Session(engine) as s:
        registry = registry_store.load(s)
    routed = received_event()
    assert routing.route_complaints(uow, registry, [routed])[0] is not None
    # a tracking code too long for complaint_routed, a village code too long for its column
    bad = [{"tracking_code": "T" * 40}]
    if on_postgresql(engine):  # SQLite does not check lengths
        bad.append({"desa_code": "9" * 40})

    for changes in bad:
        # a redelivery of an event already handled is answered, whatever it carries
        assert routing.route_complaints(uow, registry, [copy_of(routed, **changes)]) == [None]
        # a new one fails its whole batch: nothing of the batch is kept
        fine = received_event()
        with pytest.raises(Exception, match="too long|Length"):
            routing.route_complaints(uow, registry,
                                     [fine, copy_of(received_event(), **changes)])
        assert routing.route_complaints(uow, registry, [fine])[0] is not None


def test_a_batch_of_routed_events_is_applied_in_one_transaction(intake_uow):
    engine, uow = intake_uow
    accepted = [intake.submit_complaint(
        uow, submission(complainant={"email": f"warga{i}@contoh.id"}), box=BOX)
        for i in range(3)]
    events = [routed_event(a) for a in accepted]
    counted = Counted(engine)

    with no_sql_built():
        applied = intake.apply_status_events(uow, [*events, events[0]])

    assert applied == [True, True, True, False]  # the redelivered copy changes nothing
    assert (counted.begins, counted.commits) == (1, 1)
    # claim every event, lock every complaint, update them, their history entries: the same
    # statements as for one event; on PostgreSQL two round trips (BEGIN with the claim and the
    # lock as one statement, then the updates and the history entries with COMMIT)
    if on_postgresql(engine):
        assert counted.statements == ["BEGIN", "WITH", "UPDATE", "INSERT", "COMMIT"]
        assert counted.executes == 2
    else:
        assert counted.statements == ["INSERT", "SELECT", "UPDATE", "INSERT"]
        assert counted.executes == 4
    with Session(engine) as s:
        rows = s.execute(select(intake_db.complaints.c.status, intake_db.complaints.c.unit_code)
                         .where(intake_db.complaints.c.id.in_(
                             [a.complaint_id for a in accepted]))).all()
        history = s.execute(select(intake_db.status_history.c.status).where(
            intake_db.status_history.c.complaint_id == accepted[0].complaint_id)).scalars().all()
    assert sorted(tuple(r) for r in rows) == [("routed", "kua-merigi")] * 3
    assert sorted(history) == ["received", "routed"]


def test_two_events_of_one_complaint_in_a_batch_end_as_if_applied_one_after_the_other(
    intake_uow
):
    engine, uow = intake_uow
    accepted = intake.submit_complaint(uow, submission(), box=BOX)
    routed = routed_event(accepted, seq=1)
    asked = load_event(build_event("complaint_info_requested", {
        "complaint_id": accepted.complaint_id, "tracking_code": accepted.tracking_code,
        "unit_code": "kua-merigi", "actor_role": "unit_operator", "status": "info_requested",
        "seq": 2, "at": datetime.now(UTC), "question": "Mohon kirim nomor pendaftaran nikah.",
    }, correlation_id=accepted.complaint_id))

    # the later transition first in the batch: it sets the status, the routing the unit
    assert intake.apply_status_events(uow, [asked, routed]) == [True, True]

    with Session(engine) as s:
        row = s.execute(select(intake_db.complaints).where(
            intake_db.complaints.c.id == accepted.complaint_id)).one()
        history = s.execute(select(intake_db.status_history.c.status, intake_db.status_history
                                   .c.seq).where(intake_db.status_history.c.complaint_id
                                                 == accepted.complaint_id)).all()
        messages = s.execute(select(intake_db.complaint_messages.c.kind,
                                    intake_db.complaint_messages.c.body).where(
            intake_db.complaint_messages.c.complaint_id == accepted.complaint_id)).all()
    assert (row.status, row.last_seq, row.routed_seq, row.unit_code) == (
        "info_requested", 2, 1, "kua-merigi")
    assert row.due_at == routed.data["due_at"]
    assert sorted(history) == [("info_requested", 2), ("received", 0), ("routed", 1)]
    assert messages == [("question", "Mohon kirim nomor pendaftaran nikah.")]


def test_an_unknown_complaint_rolls_the_whole_batch_back(intake_uow):
    _engine, uow = intake_uow
    known = intake.submit_complaint(uow, submission(), box=BOX)
    stranger = intake.Accepted(str(uuid.uuid4()), "DMS-AAAA-BBBB-CCCC", "received",
                               datetime.now(UTC), [])
    batch = [routed_event(known), routed_event(stranger)]

    with pytest.raises(intake.UnknownComplaint):
        intake.apply_status_events(uow, batch)
    # alone too (on PostgreSQL the claim-and-lock statement of a batch of one), and its claim
    # is rolled back with it: it is refused again, not taken for a redelivery
    for _ in range(2):
        with pytest.raises(intake.UnknownComplaint):
            intake.apply_status_events(uow, batch[1:])

    # nothing was kept: handled again alone (the batch consumer's fallback), it applies
    assert intake.apply_status_events(uow, batch[:1]) == [True]


def test_the_unit_follows_the_latest_routing_whatever_order_the_events_arrive_in(intake_uow):
    _engine, uow = intake_uow
    accepted = intake.submit_complaint(uow, submission(), box=BOX)
    responded = load_event(build_event("complaint_responded", {
        "complaint_id": accepted.complaint_id, "tracking_code": accepted.tracking_code,
        "unit_code": "kua-merigi", "actor_role": "unit_operator", "status": "responded", "seq": 3,
        "at": datetime.now(UTC), "response": "Berkas Anda sudah kami proses.",
    }, correlation_id=accepted.complaint_id))
    first = routed_event(accepted, seq=1)
    rerouted = routed_event(accepted, seq=4)
    rerouted.data.update(unit_code="kua-kabawetan", unit_name="KUA Kecamatan Kabawetan")

    def current():
        with uow() as u:
            return u.session.execute(select(
                intake_db.complaints.c.status, intake_db.complaints.c.unit_code,
                intake_db.complaints.c.due_at).where(
                intake_db.complaints.c.id == accepted.complaint_id)).one()

    # a later transition first: the status stays, the routing still sets unit and deadline
    assert intake.apply_status_events(uow, [responded, first]) == [True, True]
    row = current()
    assert (row.status, row.unit_code) == ("responded", "kua-merigi")
    assert row.due_at is not None
    # re-routed (seq 4), then the first routing again late: the unit stays the latest one
    intake.apply_status_event(uow, rerouted)
    late = routed_event(accepted, seq=2)
    intake.apply_status_event(uow, late)
    assert tuple(current())[:2] == ("routed", "kua-kabawetan")
