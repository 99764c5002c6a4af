"""notification with intake and routing on real RabbitMQ and PostgreSQL: the file outbox, contacts
fetched over RPC at send time, idempotent redelivery, confidentiality."""

import json
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, func, select
from support import amqp
from support.wait import wait_for

from services.intake.service import IntakeService
from services.notification.db import deliveries, outbox
from services.notification.service import NotificationService
from services.routing.service import RoutingService

MERIGI = "17.08.05"  # KUA Kecamatan Merigi: pilot in the seed
UNIT_EMAIL = "kua.merigi@kemenag.example"
COMPLAINANT_EMAIL = "siti.aminah@contoh.id"
DESCRIPTION = "Petugas KUA meminta biaya tambahan di luar ketentuan untuk pencatatan nikah"


def submission(**overrides):
    body = {
        "channel": "web",
        "category": "nikah_rujuk",
        "description": DESCRIPTION,
        "kecamatan_code": MERIGI,
        "confidentiality": "public",
        "complainant": {"name": "Siti Aminah", "email": COMPLAINANT_EMAIL},
    }
    body.update(overrides)
    return body


@pytest.fixture
def services(start_service):
    intake = start_service(IntakeService, EVENT_RETRY_DELAYS_MS=[50, 100])
    start_service(RoutingService, EVENT_RETRY_DELAYS_MS=[50, 100])
    notification = start_service(NotificationService, EVENT_RETRY_DELAYS_MS=[50, 100])
    return intake, notification


@pytest.fixture
def intake(services):
    return services[0]


@pytest.fixture
def outbox_dir(services):
    return Path(services[1].config["DUMAS_VAR_DIR"]) / "outbox"


@pytest.fixture
def sent_capture(amqp_uri):
    return amqp.Capture(amqp_uri, "notification.events", "notification_sent")


@pytest.fixture
def routed_capture(amqp_uri):
    return amqp.Capture(amqp_uri, "routing.events", "complaint_routed")


def files_in(outbox_dir):
    return {p.name: json.loads(p.read_text("utf-8")) for p in sorted(outbox_dir.glob("*.json"))}


def by_recipient(files):
    return {doc["to"]: doc for doc in files.values()}


def handled(service, event_type):
    """How many events `service` has handled successfully (this process, all tests)."""
    return REGISTRY.get_sample_value(
        "dumas_event_handler_duration_seconds_count",
        {"service": service, "event_type": event_type, "outcome": "ok"},
    ) or 0.0


def query(url, statement):
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(statement).all()
    engine.dispose()
    return rows


def delivery_rows(url):
    return query(url, select(deliveries).order_by(deliveries.c.audience))


def outbox_drained(url):
    unpublished = query(
        url, select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
    )[0][0]
    return unpublished == 0


def submit(intake, **overrides):
    response = intake.post("/api/v1/complaints", json=submission(**overrides))
    assert response.status_code == 201
    return response.json()["tracking_code"]


def test_a_routed_complaint_is_sent_to_the_unit_and_the_complainant_in_indonesian(
    intake, outbox_dir, sent_capture, pg_urls
):
    code = submit(intake)

    files = wait_for(lambda: len(files_in(outbox_dir)) == 2 and files_in(outbox_dir),
                     timeout=20, message="two messages in the file outbox")
    assert set(by_recipient(files)) == {UNIT_EMAIL, COMPLAINANT_EMAIL}
    unit, complainant = by_recipient(files)[UNIT_EMAIL], by_recipient(files)[COMPLAINANT_EMAIL]
    assert unit["channel"] == complainant["channel"] == "email"
    for doc in (unit, complainant):
        assert code in doc["subject"]
        assert code in doc["text"]
    assert "KUA Kecamatan Merigi untuk ditindaklanjuti" in unit["text"]
    assert "Ringkasan pengaduan" in unit["text"]
    assert "telah kami terima dengan kode pelacakan" in complainant["text"]
    assert f"http://dumas.test/lacak/{code}" in complainant["text"]

    sent = wait_for(lambda: len(sent_capture.drain()) >= 2 and sent_capture.messages,
                    message="two notification_sent events")
    assert len(sent) == 2
    events = [m for m, _ in sent]
    assert all(e["event_type"] == "notification_sent" for e in events)
    assert {e["data"]["audience"] for e in events} == {"unit", "complainant"}
    assert {f"{e['data']['delivery_id']}.json" for e in events} == set(files)
    assert {e["data"]["provider"] for e in events} == {"file"}
    rows = delivery_rows(pg_urls["notification"])
    assert [(r.audience, r.status, r.attempts) for r in rows] == [
        ("complainant", "sent", 1), ("unit", "sent", 1)
    ]


def test_a_redelivered_routed_event_sends_nothing_again(
    intake, outbox_dir, sent_capture, routed_capture, amqp_uri, pg_urls
):
    submit(intake)
    wait_for(lambda: len(files_in(outbox_dir)) == 2, timeout=20, message="first two messages")
    wait_for(lambda: outbox_drained(pg_urls["notification"]), message="first events published")
    first_files = files_in(outbox_dir)
    routed_event = wait_for(routed_capture.drain)[0][0]
    before = handled("notification", "complaint_routed")

    for _ in range(3):
        amqp.publish_event(amqp_uri, routed_event)

    wait_for(lambda: handled("notification", "complaint_routed") - before >= 3,
             message="the three copies handled")
    wait_for(lambda: amqp.queue_depth(amqp_uri, "notification.complaint_routed") == 0)
    wait_for(lambda: outbox_drained(pg_urls["notification"]))
    # A resend would rewrite its file (new created_at), add a row, or announce itself again.
    assert files_in(outbox_dir) == first_files
    rows = delivery_rows(pg_urls["notification"])
    assert len(rows) == 2
    assert all((r.status, r.attempts) == ("sent", 1) for r in rows)
    assert len(sent_capture.drain()) == 2


def test_an_anonymous_complaint_without_contact_is_sent_only_to_the_unit(
    intake, outbox_dir, pg_urls
):
    before = handled("notification", "complaint_routed")
    submit(intake, confidentiality="anonymous", complainant=None)

    wait_for(lambda: handled("notification", "complaint_routed") - before >= 1,
             timeout=20, message="routed complaint handled by notification")

    # Planning is done once the event is handled; sending follows in the background.
    assert [r.audience for r in delivery_rows(pg_urls["notification"])] == ["unit"]
    files = wait_for(lambda: files_in(outbox_dir), message="the unit's message")
    assert set(by_recipient(files)) == {UNIT_EMAIL}


def test_the_unit_is_not_told_what_a_confidential_complaint_says(intake, outbox_dir):
    code = submit(intake, confidentiality="confidential")

    files = wait_for(lambda: len(files_in(outbox_dir)) == 2 and files_in(outbox_dir),
                     timeout=20, message="two messages in the file outbox")
    unit = by_recipient(files)[UNIT_EMAIL]
    assert code in unit["text"]
    assert "Pengaduan ini bersifat rahasia" in unit["text"]
    whole = json.dumps(unit, ensure_ascii=False)
    for fragment in (DESCRIPTION, "biaya tambahan", "Ringkasan pengaduan"):
        assert fragment not in whole
    complainant = by_recipient(files)[COMPLAINANT_EMAIL]
    assert "biaya tambahan" not in json.dumps(complainant, ensure_ascii=False)
