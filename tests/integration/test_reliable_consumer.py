"""The shared event consumer on a real broker: retries with back-off, then parking."""

import uuid
from datetime import UTC, datetime

import pytest
from support import amqp
from support.events import routed_event
from support.wait import wait_for

from shared.contracts import build_event
from shared.nameko_ext import PermanentError, event_consumer

CALLS: dict[str, list] = {}


def received_event():
    complaint_id = str(uuid.uuid4())
    return build_event(
        "complaint_received",
        {
            "complaint_id": complaint_id,
            "tracking_code": "DMS-TEST-CODE-0002",
            "channel": "web",
            "category": "lainnya",
            "description": "Uraian pengaduan untuk pengujian",
            "confidentiality": "public",
            "received_at": datetime.now(UTC),
        },
        correlation_id=complaint_id,
    )


class AlwaysFails:
    name = "always_fails"

    @event_consumer("intake", "complaint_received")
    def handle(self, event):
        CALLS.setdefault(self.name, []).append(event.event_id)
        raise RuntimeError("database exploded")


class FailsTwice:
    name = "fails_twice"

    @event_consumer("intake", "complaint_received")
    def handle(self, event):
        calls = CALLS.setdefault(self.name, [])
        calls.append(event.event_id)
        if len(calls) <= 2:
            raise RuntimeError("temporary trouble")


class RefusesForGood:
    name = "refuses"

    @event_consumer("intake", "complaint_received")
    def handle(self, event):
        CALLS.setdefault(self.name, []).append(event.event_id)
        raise PermanentError("this can never work")


@pytest.fixture(autouse=True)
def clear_calls():
    CALLS.clear()


def parked_messages(amqp_uri, queue, expected):
    got = []

    def enough():
        got.extend(amqp.get_all(amqp_uri, f"{queue}.dead"))
        return len(got) >= expected

    wait_for(enough, timeout=15, message=f"{expected} message(s) parked in {queue}.dead")
    return got


def test_a_failing_handler_is_retried_then_parked_with_the_reason(start_service, amqp_uri):
    start_service(AlwaysFails, EVENT_RETRY_DELAYS_MS=[50, 100])
    event = received_event()
    amqp.publish_event(amqp_uri, event)
    parked = parked_messages(amqp_uri, "always_fails.complaint_received", 1)
    body, headers = parked[0]
    assert body["event_id"] == event["event_id"]
    assert headers["x-dumas-reason"] == "max_attempts_exceeded"
    assert headers["x-dumas-attempts"] == 3
    assert "database exploded" in headers["x-dumas-error"]
    assert CALLS["always_fails"] == [event["event_id"]] * 3
    assert amqp.queue_depth(amqp_uri, "always_fails.complaint_received") == 0


def test_a_handler_that_recovers_handles_the_event_once_and_parks_nothing(
    start_service, amqp_uri
):
    start_service(FailsTwice, EVENT_RETRY_DELAYS_MS=[50, 100, 150])
    amqp.publish_event(amqp_uri, received_event())
    wait_for(lambda: len(CALLS.get("fails_twice", [])) == 3, message="third attempt succeeded")
    wait_for(lambda: amqp.queue_depth(amqp_uri, "fails_twice.complaint_received") == 0)
    assert amqp.get_all(amqp_uri, "fails_twice.complaint_received.dead") == []


def test_a_permanent_error_is_parked_at_once(start_service, amqp_uri):
    start_service(RefusesForGood, EVENT_RETRY_DELAYS_MS=[50, 100])
    amqp.publish_event(amqp_uri, received_event())
    parked = parked_messages(amqp_uri, "refuses.complaint_received", 1)
    assert parked[0][1]["x-dumas-reason"] == "permanent_error"
    assert len(CALLS["refuses"]) == 1


BUG = {"present": True}


class FixedLater:
    name = "fixed_later"

    @event_consumer("intake", "complaint_received")
    def handle(self, event):
        if BUG["present"]:
            raise PermanentError("a bug we will fix")
        CALLS.setdefault(self.name, []).append(event.event_id)


def test_a_parked_message_can_be_inspected_and_requeued_once_the_cause_is_fixed(
    start_service, amqp_uri
):
    from shared import deadletters

    BUG["present"] = True
    start_service(FixedLater, EVENT_RETRY_DELAYS_MS=[50])
    event = received_event()
    amqp.publish_event(amqp_uri, event)
    dead = "fixed_later.complaint_received.dead"
    wait_for(lambda: amqp.queue_depth(amqp_uri, dead) == 1)

    seen = deadletters.peek(amqp_uri, dead)
    assert [(p.event_id, p.reason) for p in seen] == [(event["event_id"], "permanent_error")]
    assert amqp.queue_depth(amqp_uri, dead) == 1, "peeking leaves the message parked"

    BUG["present"] = False
    assert deadletters.requeue(amqp_uri, dead) == 1
    wait_for(lambda: CALLS.get("fixed_later") == [event["event_id"]])
    assert amqp.queue_depth(amqp_uri, dead) == 0


GATE: dict = {}


class BusyWorkers:
    name = "busy_workers"

    @event_consumer("intake", "complaint_received")
    def received(self, event):
        CALLS.setdefault("received", []).append(event.event_id)
        GATE["open"].wait()

    @event_consumer("routing", "complaint_routed")
    def routed(self, event):
        CALLS.setdefault("routed", []).append(event.event_id)


def test_while_every_worker_is_busy_the_consumer_still_parks_and_a_good_event_waits_for_one(
        start_service, amqp_uri):
    """Messages are handed over in the consumer's own thread only while a worker is free; when
    none is, an event waits for one in a thread of its own, so the messages behind it (here a
    malformed one, parked) are not held up."""
    import eventlet

    GATE["open"] = eventlet.Event()
    start_service(BusyWorkers, max_workers=2)
    received = [received_event() for _ in range(2)]
    for event in received:
        amqp.publish_event(amqp_uri, event)
    wait_for(lambda: len(CALLS.get("received", [])) == 2, message="both workers taken")
    routed = routed_event()
    amqp.publish_event(amqp_uri, routed)
    amqp.publish(amqp_uri, "routing.events", "complaint_routed", b"not json")

    parked = parked_messages(amqp_uri, "busy_workers.complaint_routed", 1)
    assert parked[0][1]["x-dumas-reason"] == "undecodable"
    assert "routed" not in CALLS, "no worker was free for it yet"
    GATE["open"].send()
    wait_for(lambda: CALLS.get("routed") == [routed["event_id"]],
             message="handled once a worker was free")
    assert sorted(CALLS["received"]) == sorted(e["event_id"] for e in received)
    wait_for(lambda: amqp.queue_depth(amqp_uri, "busy_workers.complaint_routed") == 0)
    wait_for(lambda: amqp.queue_depth(amqp_uri, "busy_workers.complaint_received") == 0)


class Records:
    name = "records"

    @event_consumer("intake", "complaint_received")
    def handle(self, event):
        CALLS.setdefault(self.name, []).append(event.event_id)


def test_a_consumer_whose_broker_connection_is_closed_reconnects_and_goes_on(
        start_service, amqp_uri, vhost):
    """The consumers read through their own buffered AMQP transport; after the broker closes
    the connection (as on a broker restart) a new one is made with it and deliveries go on."""
    from urllib.parse import quote

    import requests

    start_service(Records)
    first = received_event()
    amqp.publish_event(amqp_uri, first)
    wait_for(lambda: CALLS.get("records") == [first["event_id"]], message="first handled")

    connections = f"{amqp.MGMT}/api/vhosts/{quote(vhost, safe='')}/connections"
    names: list[str] = []

    def listed():  # the management API lists a new connection after its next stats tick
        names[:] = [c["name"] for c in requests.get(connections, auth=amqp.AUTH,
                                                     timeout=10).json()]
        return bool(names)

    wait_for(listed, timeout=30, message="the consumer's connection listed by the broker")
    for name in names:
        requests.delete(f"{amqp.MGMT}/api/connections/{quote(name, safe='')}",
                        auth=amqp.AUTH, timeout=10)
    second = received_event()
    amqp.publish_event(amqp_uri, second)
    wait_for(lambda: CALLS.get("records") == [first["event_id"], second["event_id"]],
             timeout=30, message="handled after the reconnect")
