"""routing on real RabbitMQ and PostgreSQL: decisions, idempotency, dead letters."""

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, event, func, select
from support import amqp
from support.wait import wait_for

from services.routing import handlers
from services.routing.db import decisions
from services.routing.service import RoutingService
from shared.contracts import build_event


def received(**overrides):
    data = {
        "complaint_id": str(uuid.uuid4()),
        "tracking_code": "DMS-TEST-CODE-0001",
        "channel": "web",
        "category": "nikah_rujuk",
        "description": "Pendaftaran nikah di KUA sangat lambat dilayani",
        "kecamatan_code": "17.08.05",
        "confidentiality": "public",
        "contact_channels": ["email"],
        "received_at": datetime.now(UTC),
    }
    data.update(overrides)
    return build_event("complaint_received", data, correlation_id=data["complaint_id"])


@pytest.fixture
def routing(start_service):
    return start_service(RoutingService, EVENT_RETRY_DELAYS_MS=[100, 200])


@pytest.fixture
def routed_capture(amqp_uri):
    return amqp.Capture(amqp_uri, "routing.events", "complaint_routed")


def decisions_count(url, complaint_id):
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            select(func.count()).select_from(decisions).where(
                decisions.c.complaint_id == complaint_id
            )
        ).scalar_one()
    engine.dispose()
    return n


def test_complaint_for_a_pilot_kua_is_routed_to_that_kua(routing, routed_capture, amqp_uri):
    event = received(kecamatan_code="17.08.05")  # Merigi: pilot in the seed
    amqp.publish_event(amqp_uri, event)
    messages = wait_for(routed_capture.drain, message="complaint_routed published")
    routed = messages[0][0]
    assert routed["event_type"] == "complaint_routed"
    assert routed["correlation_id"] == event["data"]["complaint_id"]
    assert routed["data"]["unit_code"] == "kua-merigi"
    assert routed["data"]["rule"] == "kua_kecamatan"


def test_complaint_for_an_off_kua_goes_to_the_desk(routing, routed_capture, amqp_uri):
    amqp.publish_event(amqp_uri, received(kecamatan_code="17.08.02"))  # Ujan Mas: off
    routed = wait_for(routed_capture.drain)[0][0]["data"]
    assert routed["unit_code"] == "kankemenag-kepahiang"
    assert "belum aktif" in routed["reason"]


def test_integritas_complaint_is_never_sent_to_the_unit_it_names(
    routing, routed_capture, amqp_uri
):
    amqp.publish_event(
        amqp_uri,
        received(
            category="pendidikan_madrasah",
            description="Ada pungli saat daftar ulang di MTsN 2 Kepahiang, diminta uang",
            kecamatan_code=None,
        ),
    )
    routed = wait_for(routed_capture.drain)[0][0]["data"]
    assert routed["unit_code"] == "kankemenag-kepahiang"
    assert routed["rule"] == "integritas"


def test_a_redelivered_event_routes_the_complaint_once(
    routing, routed_capture, amqp_uri, pg_urls
):
    event = received()
    for _ in range(3):
        amqp.publish_event(amqp_uri, event)
    # A second complaint after the copies: once it is routed, the copies were all handled.
    marker = received()
    amqp.publish_event(amqp_uri, marker)
    wait_for(
        lambda: any(
            m["data"]["complaint_id"] == marker["data"]["complaint_id"]
            for m, _ in routed_capture.drain()
        )
    )
    wait_for(lambda: amqp.queue_depth(amqp_uri, "routing.complaint_received") == 0)
    ours = [m for m, _ in routed_capture.drain()
            if m["data"]["complaint_id"] == event["data"]["complaint_id"]]
    assert len(ours) == 1
    assert decisions_count(pg_urls["routing"], event["data"]["complaint_id"]) == 1


def test_malformed_messages_are_parked_with_their_reason_and_consuming_goes_on(
    routing, routed_capture, amqp_uri
):
    amqp.publish(amqp_uri, "intake.events", "complaint_received", b"\xff\xfe not json",
                 content_type="application/json")
    missing = received()
    del missing["data"]["category"]
    amqp.publish_event(amqp_uri, missing)
    wrong_version = received()
    wrong_version["version"] = 99
    amqp.publish_event(amqp_uri, wrong_version)
    good = received()
    amqp.publish_event(amqp_uri, good)

    wait_for(routed_capture.drain, message="the valid complaint is still routed")
    parked = []

    def three_parked():
        parked.extend(amqp.get_all(amqp_uri, "routing.complaint_received.dead"))
        return len(parked) >= 3

    wait_for(three_parked, message="three parked messages")
    reasons = sorted(headers["x-dumas-reason"] for _, headers in parked)
    assert reasons == ["invalid_data", "undecodable", "unknown_version"]
    assert all(headers["x-dumas-queue"] == "routing.complaint_received" for _, headers in parked)


@pytest.mark.parametrize(("at_start", "later"), [("1", "0"), ("0", "1")])
def test_a_routing_process_keeps_the_prepared_statement_setting_it_started_with(
    start_service, routed_capture, amqp_uri, monkeypatch, at_start, later
):
    """DUMAS_PG_PREPARED_STATEMENTS is read once, when the service is set up (not per batch):
    a process switched off behind a transaction-mode pooler stays off, and one switched on
    stays on, whatever the environment says afterwards."""
    monkeypatch.setenv("DUMAS_PG_PREPARED_STATEMENTS", at_start)
    running = start_service(RoutingService, EVENT_RETRY_DELAYS_MS=[100, 200])
    monkeypatch.setenv("DUMAS_PG_PREPARED_STATEMENTS", later)
    db = next(d for d in running.container.dependencies if d.attr_name == "db")
    assert db.engine.dialect.name == "postgresql"
    statements = []
    event.listen(db.engine, "before_cursor_execute",
                 lambda _conn, _cursor, statement, *_: statements.append(statement))

    complaint = received()
    amqp.publish_event(amqp_uri, complaint)
    routed = wait_for(routed_capture.drain, message="complaint_routed published")[0][0]

    assert routed["data"]["complaint_id"] == complaint["data"]["complaint_id"]
    batch_statement = [s for s in statements if handlers._PG_ROUTE_NAME in s]
    if at_start == "1":  # the whole batch as the one prepared statement
        assert batch_statement and batch_statement[-1].startswith("EXECUTE")
    else:  # as behind a transaction-mode pooler: plain statements, nothing prepared
        assert batch_statement == []
        assert any(s.startswith("INSERT INTO decisions") for s in statements)
