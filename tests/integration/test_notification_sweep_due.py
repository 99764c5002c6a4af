"""The sweep asks the database when the next pending delivery is due, and looks again only
then (or after its idle interval): the answer must cover every way a delivery becomes due
(planned without a slot, a retry later, a lease that ends), on PostgreSQL and SQLite alike."""

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker
from support.notification_world import Slots, new_complaint, notification_db_of, routed

from services.notification import handlers
from services.notification.db import deliveries
from services.notification.settings import Settings
from shared.contracts import load_event
from shared.db import utcnow


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request, tmp_path):
    with notification_db_of(request, tmp_path) as engine_and_uow:
        yield engine_and_uow


def plan_one(uow, free_slots: int):
    event = load_event(routed(new_complaint({"email": "siti.aminah@contoh.id"})))
    return handlers.plan(uow, event, Settings.from_config({}), slots=Slots(free_slots))


def due_in(engine):
    with sessionmaker(engine)() as session:
        return handlers.next_due_in(session)


def test_nothing_pending_means_nothing_is_due(db):
    engine, _ = db
    assert due_in(engine) is None


def test_a_delivery_planned_without_a_free_slot_is_due_now(db):
    engine, uow = db
    plan_one(uow, free_slots=0)
    assert due_in(engine) <= 0


def test_a_leased_delivery_is_due_when_its_lease_ends(db):
    engine, uow = db
    plan_one(uow, free_slots=10)  # both deliveries leased for 60 s
    assert 50 < due_in(engine) <= 60


def test_a_retry_is_due_at_its_next_attempt_and_the_earliest_delivery_counts(db):
    engine, uow = db
    planned = plan_one(uow, free_slots=0)
    with engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.id == planned.pending[0])
                     .values(next_attempt_at=utcnow() + timedelta(seconds=30)))
        conn.execute(update(deliveries).where(deliveries.c.id == planned.pending[1])
                     .values(next_attempt_at=utcnow() + timedelta(seconds=20)))
    assert 15 < due_in(engine) <= 20


def test_sent_and_failed_deliveries_are_never_due(db):
    engine, uow = db
    planned = plan_one(uow, free_slots=0)
    with engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.id == planned.pending[0])
                     .values(status="sent"))
        conn.execute(update(deliveries).where(deliveries.c.id == planned.pending[1])
                     .values(status="failed"))
    assert due_in(engine) is None
