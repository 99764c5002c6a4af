"""Planning leases the deliveries the worker has send slots for, in the plan's own transaction,
on PostgreSQL: no second transaction per delivery, slots never leak, and a worker that dies
before sending leaves deliveries the sweep sends once their lease expires."""

from datetime import timedelta

import pytest
from sqlalchemy import event as event_api
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker
from support.notification_world import Slots, new_complaint, notification_db, routed

from services.notification import handlers
from services.notification.db import deliveries
from services.notification.settings import Settings
from shared.contracts import load_event
from shared.db import UnitOfWork, utcnow


@pytest.fixture
def db(pg_urls):
    with notification_db(pg_urls["notification"]) as engine_and_uow:
        yield engine_and_uow


@pytest.fixture
def settings():
    return Settings.from_config({})


def routed_event(contact=None):
    complaint = new_complaint(contact or {"email": "siti.aminah@contoh.id"})
    return load_event(routed(complaint))


def rows(engine, complaint_id):
    with engine.connect() as conn:
        return {r.audience: r for r in conn.execute(
            select(deliveries).where(deliveries.c.complaint_id == complaint_id))}


def test_deliveries_with_a_free_slot_are_planned_already_leased(db, settings):
    engine, uow = db
    event = routed_event()
    slots = Slots(free=10)

    planned = handlers.plan(uow, event, settings, slots=slots)

    stored = rows(engine, event.data["complaint_id"])
    assert {r["audience"] for r in planned.leased} == {"unit", "complainant"}
    assert planned.pending == []
    assert slots.free == 8  # held by the two sends the worker now owns
    for row in stored.values():
        assert row.status == "pending"
        assert row.attempts == 1
        assert row.lease_until > utcnow() + settings.lease - timedelta(seconds=5)
    # Leased: nobody else may take them, neither another replica nor the sweep.
    with sessionmaker(engine)() as session:
        assert handlers.due_deliveries(session) == []
    assert handlers._lease(uow, planned.leased[0]["id"], settings.lease) is None


def test_without_free_slots_deliveries_stay_unleased_for_the_sweep(db, settings):
    engine, uow = db
    event = routed_event()
    slots = Slots(free=1)

    planned = handlers.plan(uow, event, settings, slots=slots)

    assert len(planned.leased) == 1 and len(planned.pending) == 1
    assert slots.free == 0
    row = rows(engine, event.data["complaint_id"])[planned.leased[0]["audience"]]
    other = [r for r in rows(engine, event.data["complaint_id"]).values() if r.id != row.id][0]
    assert other.attempts == 0 and other.lease_until is None
    with sessionmaker(engine)() as session:
        assert handlers.due_deliveries(session) == [other.id]


def test_a_redelivered_event_reserves_no_slot_and_plans_nothing(db, settings):
    _, uow = db
    event = routed_event()
    handlers.plan(uow, event, settings, slots=Slots(free=10))
    slots = Slots(free=10)

    again = handlers.plan(uow, event, settings, slots=slots)

    assert again.leased == [] and again.pending == []
    assert slots.free == 10


def test_slots_are_given_back_when_the_plan_cannot_commit(db, settings, monkeypatch):
    engine, uow = db
    event = routed_event()
    slots = Slots(free=10)

    def broken_commit(self):
        raise RuntimeError("database went away")

    def broken_commit_statement(_conn, _cursor, statement, *_):
        # On PostgreSQL the plan's own query string commits (see handlers._plan_pg).
        if statement == "COMMIT":
            raise RuntimeError("database went away")

    monkeypatch.setattr(UnitOfWork, "commit", broken_commit)
    event_api.listen(engine, "before_cursor_execute", broken_commit_statement)
    try:
        with pytest.raises(RuntimeError):
            handlers.plan(uow, event, settings, slots=slots)
    finally:
        event_api.remove(engine, "before_cursor_execute", broken_commit_statement)

    assert slots.free == 10
    assert rows(engine, event.data["complaint_id"]) == {}
    # Rolled back, the claim too: the event is planned when it comes again.
    monkeypatch.undo()
    assert len(handlers.plan(uow, event, settings, slots=slots).leased) == 2


def test_a_lease_taken_at_planning_by_a_worker_that_died_expires_and_the_sweep_sends_it(
        db, settings):
    engine, uow = db
    event = routed_event()
    planned = handlers.plan(uow, event, settings, slots=Slots(free=10))
    # The worker died before sending: time passes beyond the lease.
    with engine.begin() as conn:
        conn.execute(update(deliveries).values(lease_until=utcnow() - timedelta(seconds=1)))

    with sessionmaker(engine)() as session:
        due = handlers.due_deliveries(session)
    assert sorted(due) == sorted(r["id"] for r in planned.leased)
    again = handlers._lease(uow, due[0], settings.lease)
    assert again is not None and again["attempts"] == 2


def test_waiting_unit_deliveries_are_sent_before_waiting_complainant_deliveries(db, settings):
    engine, uow = db
    events = [routed_event({"email": f"warga{i}@contoh.id"}) for i in range(3)]
    for event in events:  # no free slot: everything waits, in planning order
        handlers.plan(uow, event, settings, slots=Slots(free=0))
    with engine.connect() as conn:
        audience = dict(conn.execute(select(deliveries.c.id, deliveries.c.audience)).all())
        created = dict(conn.execute(select(deliveries.c.id, deliveries.c.next_attempt_at)).all())

    with sessionmaker(engine)() as session:
        due = handlers.due_deliveries(session)

    assert [audience[d] for d in due] == ["unit"] * 3 + ["complainant"] * 3
    units, complainants = due[:3], due[3:]
    assert [created[d] for d in units] == sorted(created[d] for d in units)  # oldest first
    assert [created[d] for d in complainants] == sorted(created[d] for d in complainants)


def test_a_drainer_leases_as_many_due_deliveries_as_it_has_slots_units_first_in_one_statement(
        db, settings):
    engine, uow = db
    events = [routed_event({"email": f"warga{i}@contoh.id"}) for i in range(3)]
    for event in events:  # no free slot: everything waits
        handlers.plan(uow, event, settings, slots=Slots(free=0))
    statements = []
    listen = (engine, "before_cursor_execute",
              lambda *args: statements.append(args[2]))
    event_api.listen(*listen)
    try:
        leased = handlers.lease_due(uow, 4, settings.lease)
    finally:
        event_api.remove(*listen)

    # the due rows found, leased and read back at once
    assert len(statements) == 1 and "UPDATE deliveries" in statements[0]
    assert [r["audience"] for r in leased] == ["unit"] * 3 + ["complainant"]
    assert all(r["attempts"] == 1 for r in leased)
    with sessionmaker(engine)() as session:
        left = handlers.due_deliveries(session)
    assert len(left) == 2 and not {r["id"] for r in leased} & set(left)
    # what is leased is nobody else's to take; the rest is
    again = handlers.lease_due(uow, 10, settings.lease)
    assert sorted(r["id"] for r in again) == sorted(left)
    assert handlers.lease_due(uow, 10, settings.lease) == []
