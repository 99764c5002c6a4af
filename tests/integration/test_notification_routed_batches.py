"""notification plans complaint_routed events in batches (issue 8) on real RabbitMQ and
PostgreSQL: every complaint of a batch is told once, to its unit and its complainant, and one
complaint that cannot be planned is retried and parked alone while the others are sent once."""

from pathlib import Path

import pytest
from kombu import Connection
from prometheus_client import REGISTRY
from support import amqp
from support.notification_world import (
    FakeIntake,
    FakeRouting,
    delivery_rows,
    new_complaint,
    outbox_files,
    routed,
)
from support.wait import wait_for

from services.notification import handlers
from services.notification.service import NotificationService
from shared import messaging

QUEUE = "notification.complaint_routed"
DELAYS = (50, 100)


def declare_queue(amqp_uri):
    """The consumer's queue before the service starts: what is published now waits there, so
    the service finds a batch in hand when it starts consuming."""
    with Connection(amqp_uri) as conn:
        messaging.consumer_queue("notification", "routing", "complaint_routed", DELAYS)(
            conn.default_channel).declare()


@pytest.fixture
def start(start_service):
    def start_notification():
        start_service(FakeIntake)
        start_service(FakeRouting)
        return start_service(NotificationService, EVENT_RETRY_DELAYS_MS=list(DELAYS),
                             EVENT_BATCH_MAX_WAIT_MS=300)
    return start_notification


def batches() -> tuple[float, float]:
    labels = {"service": "notification", "event_type": "complaint_routed"}
    return (REGISTRY.get_sample_value("dumas_event_batch_size_count", labels) or 0,
            REGISTRY.get_sample_value("dumas_event_batch_size_sum", labels) or 0)


def publish_routed(amqp_uri, n) -> list[dict]:
    complaints = [new_complaint({"email": f"warga{i}@contoh.id"}) for i in range(n)]
    for c in complaints:
        amqp.publish_event(amqp_uri, routed(c))
    return complaints


def test_routed_complaints_waiting_together_are_planned_as_one_batch_and_each_told_once(
        start, amqp_uri, pg_urls):
    declare_queue(amqp_uri)
    complaints = publish_routed(amqp_uri, 12)
    count_before, size_before = batches()
    notification = start()
    url = pg_urls["notification"]

    wait_for(lambda: sum(r.status == "sent" for r in delivery_rows(url)) == 24, timeout=30,
             message="a unit and a complainant message for each of the 12 complaints")

    count, size = batches()
    assert size - size_before == 12
    assert count - count_before < 12, "at least two complaints planned in one transaction"
    files = outbox_files(Path(notification.config["DUMAS_VAR_DIR"]) / "outbox")
    assert sorted(f["to"] for f in files if f["to"].startswith("warga")) == sorted(
        f"warga{i}@contoh.id" for i in range(12))
    assert len(files) == 24
    rows = delivery_rows(url)
    assert {r.complaint_id for r in rows} == {c["complaint_id"] for c in complaints}
    wait_for(lambda: amqp.queue_depth(amqp_uri, QUEUE) == 0)


def test_a_complaint_that_cannot_be_planned_is_parked_alone_and_the_others_sent_once(
        start, amqp_uri, pg_urls, monkeypatch):
    declare_queue(amqp_uri)
    complaints = publish_routed(amqp_uri, 6)
    poisoned = complaints[2]["complaint_id"]
    real_plan_event = handlers.plan_event

    def plan_event(event_type, data, *args):
        if str(data["complaint_id"]) == poisoned:
            raise ValueError("cannot plan this one")
        return real_plan_event(event_type, data, *args)

    monkeypatch.setattr(handlers, "plan_event", plan_event)
    start()
    url = pg_urls["notification"]

    parked = []
    wait_for(lambda: parked.extend(amqp.get_all(amqp_uri, f"{QUEUE}.dead")) or parked,
             timeout=20, message="the poisoned complaint parked")
    assert [body["data"]["complaint_id"] for body, _ in parked] == [poisoned]
    assert parked[0][1]["x-dumas-reason"] == "max_attempts_exceeded"
    wait_for(lambda: sum(r.status == "sent" for r in delivery_rows(url)) == 10, timeout=20,
             message="the five others told")
    rows = delivery_rows(url)
    assert len(rows) == 10 and poisoned not in {r.complaint_id for r in rows}
    assert sorted((r.complaint_id, r.audience) for r in rows) == sorted(
        (c["complaint_id"], a) for c in complaints if c["complaint_id"] != poisoned
        for a in ("complainant", "unit"))
