"""notification's CPU per complaint is mostly round trips to the database: planning a routed
complaint and sending each of its deliveries run a fixed, small number of statements (issue 8),
on PostgreSQL and SQLite alike, and the one-statement insert of all planned deliveries still
tells new rows from ones that existed already."""

import pytest
from sqlalchemy import delete, event, select
from support.notification_world import Slots, new_complaint, notification_db_of, routed, unit_action

from services.notification import handlers
from services.notification.db import complaint_views, deliveries, outbox, processed_events
from services.notification.domain.lifecycle import NotYetRouted
from services.notification.domain.render import TemplateCatalogue
from services.notification.providers import FileProvider
from services.notification.settings import Settings
from shared.contracts import load_event


class Counted:
    """Statements and commits an engine runs, by the first word of the statement."""

    def __init__(self, engine):
        self.statements: list[str] = []
        self.commits = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, _conn, _cursor, statement, *_):
        self.statements.append(statement.split(None, 1)[0].upper())

    def _commit(self, _conn):
        self.commits += 1

    def reset(self):
        self.statements, self.commits = [], 0


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request, tmp_path):
    with notification_db_of(request, tmp_path) as engine_and_uow:
        yield engine_and_uow


def routed_event():
    return load_event(routed(new_complaint({"email": "siti.aminah@contoh.id"})))


def test_planning_a_routed_complaint_is_one_transaction_of_four_statements(db):
    engine, uow = db
    counted = Counted(engine)

    planned = handlers.plan(uow, routed_event(), Settings.from_config({}), slots=Slots(10))

    assert len(planned.leased) == 2
    if engine.dialect.name == "postgresql":
        # Three round trips in autocommit mode: BEGIN with the claim and the locked views;
        # the view write with every delivery's INSERT; COMMIT.
        assert counted.statements == ["BEGIN;", "INSERT", "COMMIT"]
    else:
        # claim, the complaint's view (read, then stored), every delivery in one INSERT
        assert counted.statements == ["INSERT", "SELECT", "INSERT", "INSERT"]
        assert counted.commits == 1


def test_sending_a_leased_delivery_marks_it_sent_with_its_event_in_two_statements(db, tmp_path):
    engine, uow = db
    settings = Settings.from_config({})
    planned = handlers.plan(uow, routed_event(), settings, slots=Slots(10))
    provider = FileProvider(tmp_path / "outbox")
    counted = Counted(engine)

    outcomes = [
        handlers.send_leased(uow, row, resolve_address=lambda _d: "a@contoh.id",
                             catalogue=TemplateCatalogue(), provider_for=lambda _a, _c: provider,
                             settings=settings)
        for row in planned.leased
    ]

    assert [o.status for o in outcomes] == ["sent", "sent"]
    # mark sent, its notification_sent (PostgreSQL: both in one query string, one round trip)
    if engine.dialect.name == "postgresql":
        assert counted.statements == ["UPDATE"] * 2
    else:
        assert counted.statements == ["UPDATE", "INSERT"] * 2
    assert counted.commits == 2
    with engine.connect() as conn:
        assert {r.status for r in conn.execute(select(deliveries))} == {"sent"}
        assert len(conn.execute(select(outbox)).all()) == 2


def test_deliveries_that_exist_already_are_neither_leased_nor_inserted_again(db):
    engine, uow = db
    settings = Settings.from_config({})
    event_ = routed_event()
    first = handlers.plan(uow, event_, settings, slots=Slots(10))
    # The same event planned again from scratch, its deliveries still there (as if its claim
    # and the complaint's view had been lost).
    with engine.begin() as conn:
        conn.execute(delete(processed_events))
        conn.execute(delete(complaint_views))
    slots = Slots(10)

    again = handlers.plan(uow, event_, settings, slots=slots)

    assert again.leased == []
    assert sorted(again.pending) == sorted(r["id"] for r in first.leased)
    assert slots.free == 10  # nothing held for rows this worker did not lease
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries)).all()
    assert len(rows) == 2 and {r.attempts for r in rows} == {1}


# -- several events in one transaction (the batched complaint_routed consumer) ---------------


def planned_rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(deliveries)).all()


def test_a_batch_of_routed_complaints_is_planned_in_one_transaction(db):
    engine, uow = db
    counted = Counted(engine)
    events = [routed_event() for _ in range(5)]

    planned = handlers.plan_batch(uow, events, Settings.from_config({}), slots=Slots(20))

    assert len(planned.leased) == 10 and planned.pending == []
    if engine.dialect.name == "postgresql":
        assert counted.statements == ["BEGIN;", "INSERT", "COMMIT"]
    else:
        # the five claims in one statement, the views read in one and written in one, the
        # deliveries
        assert counted.statements == ["INSERT", "SELECT", "INSERT", "INSERT"]
        assert counted.commits == 1
    rows = planned_rows(engine)
    assert len(rows) == 10
    assert {r.complaint_id for r in rows} == {e.data["complaint_id"] for e in events}


def test_in_a_batch_the_units_get_the_free_send_slots_first(db):
    engine, uow = db
    slots = Slots(3)

    planned = handlers.plan_batch(uow, [routed_event() for _ in range(3)],
                                  Settings.from_config({}), slots=slots)

    assert [r["audience"] for r in planned.leased] == ["unit"] * 3
    assert len(planned.pending) == 3 and slots.free == 0
    leased_ids = {r["id"] for r in planned.leased}
    assert {r.audience for r in planned_rows(engine) if r.id not in leased_ids} == {"complainant"}


def test_events_of_one_complaint_in_one_batch_are_planned_in_their_order(db):
    engine, uow = db
    complaint = new_complaint({"email": "siti.aminah@contoh.id"})
    routed_ = load_event(routed(complaint))
    acknowledged = load_event(unit_action("complaint_acknowledged", complaint, seq=2))

    handlers.plan_batch(uow, [routed_, acknowledged], Settings.from_config({}), slots=Slots(10))

    rows = planned_rows(engine)
    assert sorted((r.audience, r.template) for r in rows) == [
        ("complainant", "complaint_acknowledged"), ("complainant", "complaint_routed"),
        ("unit", "complaint_routed")]
    with engine.connect() as conn:
        view = conn.execute(select(complaint_views)).one()
    assert (view.routed_seq, view.notified_seq) == (1, 2)


def test_a_redelivered_event_in_a_batch_plans_nothing_again_and_the_others_are_planned(db):
    engine, uow = db
    settings = Settings.from_config({})
    first, second = routed_event(), routed_event()
    handlers.plan_batch(uow, [first], settings, slots=Slots(10))

    again = handlers.plan_batch(uow, [first, second], settings, slots=Slots(10))

    assert {r["complaint_id"] for r in again.leased} == {second.data["complaint_id"]}
    assert len(planned_rows(engine)) == 4


def test_a_batch_that_fails_plans_nothing_and_gives_every_slot_back(db):
    engine, uow = db
    never_routed = load_event(unit_action(
        "complaint_acknowledged", new_complaint({"email": "x@contoh.id"}), seq=2))
    slots = Slots(10)

    with pytest.raises(NotYetRouted):
        handlers.plan_batch(uow, [routed_event(), never_routed], Settings.from_config({}),
                            slots=slots)

    assert slots.free == 10
    assert planned_rows(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(processed_events)).all() == []


def test_an_event_twice_in_one_batch_is_planned_once(db):
    engine, uow = db
    event_, other = routed_event(), routed_event()

    planned = handlers.plan_batch(uow, [event_, event_, other], Settings.from_config({}),
                                  slots=Slots(10))

    assert len(planned.leased) == 4 and planned.pending == []
    with engine.connect() as conn:
        claimed = conn.execute(select(processed_events.c.event_id)).scalars().all()
    assert sorted(claimed) == sorted([str(event_.event_id), str(other.event_id)])
    assert len(planned_rows(engine)) == 4
