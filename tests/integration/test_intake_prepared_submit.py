"""intake's submit statement and routed-status batch PREPAREd on PostgreSQL (session 8, issue
8): the server parses them once per connection and plans them once, and they do what the
statements sent as text do: the rows, the duplicate check, the idempotency race, the claims,
and a server that lost the statements."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session, sessionmaker

from services.intake import db as intake_db
from services.intake import handlers as intake
from services.intake.channels import ChannelTools
from services.intake.domain.sealing import PersonalDataBox, new_key
from services.intake.domain.validation import validate_submission
from shared.contracts import build_event, load_event
from shared.db import UnitOfWork, make_engine

BOX = PersonalDataBox(new_key())
OTHER_TEXT = "Buku nikah kami belum juga dicetak setelah sebulan."


@pytest.fixture
def pg_intake(pg_urls):
    # one pooled connection: every submit runs on the connection that prepared the statement
    engine = make_engine(pg_urls["intake"], pool_size=1, max_overflow=0)
    factory = sessionmaker(engine, expire_on_commit=False)
    statements: list[str] = []
    # the first word of each statement of each query string
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, statement, *_: statements
                 .extend(part.split(None, 1)[0] for part in statement.split("; ")))
    yield engine, lambda: UnitOfWork(factory, intake_db.outbox, intake_db.processed_events), \
        statements
    engine.dispose()


def submission(**overrides):
    body = {
        "category": "nikah_rujuk", "kecamatan_code": "17.08.05",
        "description": "Pendaftaran nikah di KUA Merigi sudah dua minggu belum diproses.",
        "complainant": {"name": "Siti Aminah", "email": "siti.aminah@contoh.id"},
    }
    body.update(overrides)
    return validate_submission(body)


def record(key="kunci-1"):
    return intake.IdempotencyRecord("api:k1", key, "h" * 64,
                                    lambda accepted: (201, {"kode": accepted.tracking_code}))


def stored(engine, complaint_id) -> dict:
    """Every row stored for `complaint_id`, without the values that differ per complaint."""
    t = intake_db
    varying = {"id", "complaint_id", "tracking_code", "event_id", "correlation_id", "body",
               "contact_key"}
    with Session(engine) as s:
        rows = {
            table.name: [{k: v for k, v in r._mapping.items() if k not in varying}
                         for r in s.execute(select(table).where(column == complaint_id))]
            for table, column in ((t.complaints, t.complaints.c.id),
                                  (t.complainants, t.complainants.c.complaint_id),
                                  (t.status_history, t.status_history.c.complaint_id),
                                  (t.outbox, t.outbox.c.correlation_id))}
    for outboxed in rows["outbox"]:
        del outboxed["created_at"]  # the unit of work's clock
    return rows


def test_the_statement_is_prepared_once_per_connection_and_stores_what_text_stores(pg_intake):
    engine, uow, statements = pg_intake
    kw = {"box": BOX, "officer": "petugas", "qr_location": "ptsp",
          "now": datetime(2026, 11, 28, 10, 0, tzinfo=UTC)}
    as_text = intake.submit_complaint(uow, submission(confidentiality="confidential"), **kw)
    statements.clear()

    first = intake.submit_complaint(
        uow, submission(confidentiality="confidential",
                        complainant={"name": "Budi", "email": "budi@contoh.id"}),
        prepared=True, **kw)
    second = intake.submit_complaint(
        uow, submission(confidentiality="confidential",
                        complainant={"name": "Wati", "email": "wati@contoh.id"}),
        prepared=True, **kw)

    assert statements == ["PREPARE", "EXECUTE", "EXECUTE"]
    with Session(engine) as s:
        assert s.scalar(select(intake_db.complaints.c.contact_key).where(
            intake_db.complaints.c.id == first.complaint_id)) == BOX.fingerprint(
            {"email": "budi@contoh.id"})
    reference = stored(engine, as_text.complaint_id)
    for accepted in (first, second):
        rows = stored(engine, accepted.complaint_id)
        # the sealed personal data differs (another person, and a fresh nonce)
        assert [bool(p.pop("sealed")) for p in rows["complainants"]] == [True]
        assert rows == {**reference, "complainants": [
            {k: v for k, v in p.items() if k != "sealed"} for p in reference["complainants"]]}


def test_a_contact_with_an_open_complaint_is_linked_to_it(pg_intake):
    engine, uow, statements = pg_intake
    first = intake.submit_complaint(uow, submission(), box=BOX, prepared=True)

    again = intake.submit_complaint(uow, submission(), box=BOX, prepared=True,
                                    idempotent=record())

    assert (again.duplicate, again.complaint_id) == (True, first.complaint_id)
    with Session(engine) as s:
        assert intake.stored_answer(s, "api:k1", "kunci-1").complaint_id == first.complaint_id
        assert s.scalar(text("SELECT count(*) FROM complaints")) == 1


def test_an_idempotency_key_taken_meanwhile_keeps_nothing_of_the_attempt(pg_intake):
    engine, uow, _ = pg_intake
    first = intake.submit_complaint(uow, submission(), box=BOX, prepared=True,
                                    idempotent=record())

    with pytest.raises(intake.IdempotencyRace):
        intake.submit_complaint(
            uow, submission(description=OTHER_TEXT,
                            complainant={"name": "Budi", "email": "budi@contoh.id"}),
            box=BOX, prepared=True, idempotent=record())

    with Session(engine) as s:
        assert s.scalar(text("SELECT count(*) FROM complaints")) == 1
        assert s.scalar(text("SELECT count(*) FROM outbox")) == 1
        assert intake.stored_answer(s, "api:k1", "kunci-1").complaint_id == first.complaint_id


def test_a_statement_the_server_no_longer_has_is_prepared_again(pg_intake):
    engine, uow, statements = pg_intake
    intake.submit_complaint(uow, submission(), box=BOX, prepared=True)
    with engine.connect() as conn:  # the pool's one connection: as a pooler's reset does
        conn.exec_driver_sql("DEALLOCATE ALL")
        conn.commit()
    statements.clear()

    accepted = intake.submit_complaint(
        uow, submission(description=OTHER_TEXT,
                        complainant={"name": "Budi", "email": "budi@contoh.id"}),
        box=BOX, prepared=True)

    # the lost statement failed the first attempt (nothing written), the second prepared it
    assert statements == ["EXECUTE", "PREPARE", "EXECUTE"]
    assert not accepted.duplicate
    assert len(stored(engine, accepted.complaint_id)["outbox"]) == 1


def test_the_process_setting_turns_prepared_statements_off(monkeypatch, tmp_path):
    config = {"INTAKE_DATA_KEY": new_key().decode(), "DUMAS_VAR_DIR": str(tmp_path)}
    assert ChannelTools(config).prepared is True
    monkeypatch.setenv("DUMAS_PG_PREPARED_STATEMENTS", "0")  # behind a transaction-mode pooler
    assert ChannelTools(config).prepared is False


# -- the routed-status batch ------------------------------------------------------------------


def routed(accepted, seq=1, status="routed"):
    now = datetime.now(UTC)
    return load_event(build_event(f"complaint_{status}" if status != "routed"
                                  else "complaint_routed", {
        "complaint_id": accepted.complaint_id, "tracking_code": accepted.tracking_code,
        "unit_code": "kua-merigi", "unit_name": "KUA Kecamatan Merigi", "unit_type": "kua",
        "stage": "pilot", "rule": "kua_kecamatan", "reason": "wilayah",
        "category": "nikah_rujuk", "channel": "web", "confidentiality": "public",
        "contact_channels": ["email"], "routed_at": now, "due_at": now, "status": "routed",
        "seq": seq,
    }, correlation_id=accepted.complaint_id))


def complaints_of(engine, accepted) -> list:
    """The state and history of each complaint, as the tracking page reads them."""
    with Session(engine) as s:
        return [(intake.find_public(s, a.tracking_code)["status"],
                 s.scalar(select(intake_db.complaints.c.unit_code).where(
                     intake_db.complaints.c.id == a.complaint_id)),
                 [h["status"] for h in intake._history(s, a.complaint_id)])
                for a in accepted]


@pytest.mark.parametrize("size", [1, 3])
def test_routed_statuses_prepared_apply_as_the_text_does(pg_intake, size):
    engine, uow, statements = pg_intake
    people = iter(range(100))

    def complaints_now(n):
        return [intake.submit_complaint(uow, submission(
            description=f"{OTHER_TEXT} Berkas {i}.",
            complainant={"name": "Budi", "email": f"budi{i}@contoh.id"}), box=BOX)
            for i in (next(people) for _ in range(n))]

    by_text, by_prepared = complaints_now(size), complaints_now(size)
    events = [routed(a) for a in by_text]
    assert intake.apply_status_events(uow, [*events, events[0]]) == [True] * size + [False]
    statements.clear()

    events = [routed(a) for a in by_prepared]
    assert intake.apply_status_events(uow, [*events, events[0]], prepared=True) == (
        [True] * size + [False])
    assert intake.apply_status_events(uow, events, prepared=True) == [False] * size

    assert statements == ["PREPARE"] * 6 + ["BEGIN", "EXECUTE", "EXECUTE", "EXECUTE", "COMMIT",
                                            "BEGIN", "EXECUTE", "COMMIT"]  # the redelivery
    assert complaints_of(engine, by_prepared) == complaints_of(engine, by_text) == [
        ("routed", "kua-merigi", ["received", "routed"])] * size


def test_routed_statuses_a_server_that_lost_the_statements_prepares_them_again(pg_intake):
    engine, uow, statements = pg_intake
    first, second = (intake.submit_complaint(uow, submission(
        description=f"{OTHER_TEXT} Berkas {i}.",
        complainant={"name": "Budi", "email": f"budi{i}@contoh.id"}), box=BOX) for i in (1, 2))
    assert intake.apply_status_events(uow, [routed(first)], prepared=True) == [True]
    with engine.connect() as conn:
        conn.exec_driver_sql("DEALLOCATE ALL")
        conn.commit()
    statements.clear()

    assert intake.apply_status_events(uow, [routed(second)], prepared=True) == [True]

    # the first attempt failed at its claim (rolled back, nothing claimed), the second prepared
    assert statements == ["BEGIN", "EXECUTE", "ROLLBACK"] + ["PREPARE"] * 6 + [
        "BEGIN", "EXECUTE", "EXECUTE", "EXECUTE", "COMMIT"]
    assert complaints_of(engine, [second]) == [("routed", "kua-merigi",
                                                ["received", "routed"])]
