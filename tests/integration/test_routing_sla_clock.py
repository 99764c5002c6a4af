"""The SLA clock on PostgreSQL: a controllable clock across a weekend and a national holiday,
and escalations exactly once across replicas and a routing restart."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker
from support import amqp
from support.routing_inbox import complaint_row, received, route
from support.wait import wait_for

from services.routing import handlers, sla_clock
from services.routing.db import outbox, processed_events
from services.routing.domain.registry import load_seed
from services.routing.service import RoutingService
from shared.contracts import load_event
from shared.db import UnitOfWork
from shared.workdays import WIB


@pytest.fixture
def uow_factory(pg_urls):
    engine = create_engine(pg_urls["routing"])
    make = sessionmaker(engine, expire_on_commit=False)
    yield lambda: UnitOfWork(make, outbox, processed_events)
    engine.dispose()


def wib(*args):
    return datetime(*args, tzinfo=WIB)


def published(uow_factory, event_type):
    with uow_factory() as uow:
        return [r.body for r in uow.session.execute(
            select(outbox.c.body).where(outbox.c.routing_key == event_type)).all()]


def test_warning_and_breach_fire_once_across_a_weekend_and_a_national_holiday(
    uow_factory, pg_urls
):
    # Thursday 13 Aug 2026 10:00 WIB; Sat 15, Sun 16 and Mon 17 Aug (Independence Day) are off.
    event = load_event(received(category="pelayanan_ptsp", kecamatan_code=None,
                                description="Antrian PTSP lama",
                                received_at=wib(2026, 8, 13, 10)))
    handlers.route_complaint(uow_factory, load_seed(), event, now=wib(2026, 8, 13, 10, 1))
    cid = str(event.data["complaint_id"])
    row = complaint_row(pg_urls["routing"], cid)
    assert row["response_warn_at"] == wib(2026, 8, 18, 16)
    assert row["response_due_at"] == wib(2026, 8, 19, 16)

    def tick(*moment):
        return {k: v for k, v in sla_clock.tick(uow_factory, now=wib(*moment)).items() if v}

    assert tick(2026, 8, 14, 17) == {}
    assert tick(2026, 8, 17, 23) == {}  # Monday, but a holiday: nothing has passed
    assert tick(2026, 8, 18, 15, 59) == {}
    assert tick(2026, 8, 18, 16) == {"response_warning": 1}
    assert tick(2026, 8, 18, 17) == {}  # warned once
    assert tick(2026, 8, 19, 15, 59) == {}
    # Resolution (5 working days for PTSP): two thirds is also Wed 19 Aug 16:00.
    assert tick(2026, 8, 19, 16) == {"response_breach": 1, "resolution_warning": 1}
    assert tick(2026, 8, 19, 16, 1) == {}
    assert tick(2026, 8, 21, 15, 59) == {}
    assert tick(2026, 8, 21, 16) == {"resolution_breach": 1}
    assert tick(2026, 8, 24, 9) == {}
    assert len(published(uow_factory, "complaint_sla_warning")) == 2
    assert len(published(uow_factory, "complaint_sla_breached")) == 2
    assert complaint_row(pg_urls["routing"], cid)["response_breached_at"] == wib(2026, 8, 19, 16)


def test_an_acknowledged_complaint_does_not_breach_its_response_clock(uow_factory):
    from services.routing.casework import Actor, act

    event = load_event(received(received_at=wib(2026, 8, 13, 10)))
    handlers.route_complaint(uow_factory, load_seed(), event, now=wib(2026, 8, 13, 10))
    act(uow_factory, load_seed(), Actor("op", "unit_operator", "kua-merigi"),
        event.data["complaint_id"], "acknowledge", now=wib(2026, 8, 13, 11))
    fired = sla_clock.tick(uow_factory, now=wib(2026, 8, 24, 9))
    assert fired["response_breach"] == 0 and fired["response_warning"] == 0
    assert fired["resolution_breach"] == 1  # 5 working days for nikah_rujuk passed


def test_a_resolved_complaint_without_an_answer_closes_after_10_working_days(uow_factory):
    from services.routing.casework import Actor, act

    event = load_event(received(received_at=wib(2026, 8, 3, 10)))
    handlers.route_complaint(uow_factory, load_seed(), event, now=wib(2026, 8, 3, 10))
    op = Actor("op", "unit_operator", "kua-merigi")
    for action, text in [("acknowledge", None), ("resolve", "Sudah dijadwalkan")]:
        act(uow_factory, load_seed(), op, event.data["complaint_id"], action, text,
            now=wib(2026, 8, 4, 10))
    # 10 working days after Tue 4 Aug, with 17 Aug off: Wed 19 Aug 16:00.
    assert sla_clock.tick(uow_factory, now=wib(2026, 8, 19, 15))["auto_closed"] == 0
    assert sla_clock.tick(uow_factory, now=wib(2026, 8, 19, 16))["auto_closed"] == 1
    assert sla_clock.tick(uow_factory, now=wib(2026, 8, 20, 16))["auto_closed"] == 0
    assert len(published(uow_factory, "complaint_closed")) == 1


def test_escalations_happen_exactly_once_across_two_replicas_and_a_restart(
    start_service, amqp_uri, pg_urls
):
    capture = amqp.Capture(amqp_uri, "routing.events", "#")
    fast = {"SLA_TICK_SECONDS": 0.1, "EVENT_RETRY_DELAYS_MS": [100, 200]}
    first = start_service(RoutingService, **fast)
    second = start_service(RoutingService, **fast)
    long_ago = datetime.now(UTC) - timedelta(days=60)  # both clocks long past
    ids = [route(amqp_uri, pg_urls["routing"], received_at=long_ago)["complaint_id"]
           for _ in range(5)]

    def breaches():
        return Counter((m["correlation_id"], m["data"]["due_at"])
                       for m, _ in capture.drain() if m["event_type"] == "complaint_sla_breached")

    wait_for(lambda: len(breaches()) == 10, timeout=30, message="two breaches per complaint")

    first.container.stop()  # a restart: one replica goes away, a new one comes
    start_service(RoutingService, **fast)
    marker = route(amqp_uri, pg_urls["routing"], received_at=long_ago)["complaint_id"]
    wait_for(lambda: sum(1 for cid, _ in breaches() if cid == marker) == 2, timeout=30,
             message="the restarted clock runs")
    assert second.container  # still running all along
    counts = breaches()
    assert set(counts.values()) == {1}, counts
    assert {cid for cid, _ in counts} == {*ids, marker}
    assert not [m for m, _ in capture.drain() if m["event_type"] == "complaint_sla_warning"]
