"""Batch consumers sharing one batch (`batch_event_consumer(..., batch_group=...)`) on a real
broker: the events of several queues reach ONE handler call together and are acked in their own
queues; a failed group batch is handled again one event at a time, each event by its own
consumer, so only the bad one is retried or parked, in its own queue's companions; waiting
events go back to their own queues when the container goes away; a consumer outside the group
keeps its own batches."""

import uuid
from datetime import UTC, datetime

import pytest
from kombu import Connection
from prometheus_client import REGISTRY
from support import amqp
from support.events import routed_event
from support.wait import wait_for

from shared import messaging
from shared.contracts import build_event
from shared.nameko_ext import PermanentError, batch_event_consumer

SERVICE = "grouped"
GROUP = "together"
GROUPED = (("intake", "complaint_received"), ("routing", "complaint_routed"),
           ("notification", "notification_sent"))
ALONE = ("notification", "notification_failed")
# Long enough for every message already queued to arrive before the batch leaves, even on a
# busy machine (the tests check what a batch holds).
GATHER_MS = 1000

calls: list[tuple[str, list[str]]] = []  # (handler, event ids) of every call, in order
recorded: list[str] = []  # event ids of calls that succeeded
poison: dict[str, type] = {}  # event id -> exception the handler raises when it sees it


def handle(handler, events):
    ids = [e.event_id for e in events]
    calls.append((handler, ids))
    for event_id in ids:
        if event_id in poison:
            raise poison[event_id](f"cannot handle {event_id}")
    recorded.extend(ids)


class Grouped:
    name = SERVICE

    @batch_event_consumer("intake", "complaint_received", batch_group=GROUP)
    def on_received(self, events):
        handle("on_received", events)

    @batch_event_consumer("routing", "complaint_routed", batch_group=GROUP)
    def on_routed(self, events):
        handle("on_routed", events)

    @batch_event_consumer("notification", "notification_sent", batch_group=GROUP)
    def on_sent(self, events):
        handle("on_sent", events)

    @batch_event_consumer("notification", "notification_failed")
    def on_failed(self, events):
        handle("on_failed", events)


HANDLER_OF = {"complaint_received": "on_received", "complaint_routed": "on_routed",
              "notification_sent": "on_sent", "notification_failed": "on_failed"}


@pytest.fixture(autouse=True)
def clean():
    calls.clear()
    recorded.clear()
    poison.clear()


def queue(event_type):
    return f"{SERVICE}.{event_type}"


def declare_queues(amqp_uri):
    """The consumers' queues (and companions) before the service starts: events published now
    wait there, so the test decides what is in hand when consuming begins."""
    with Connection(amqp_uri) as conn:
        for producer, event_type in (*GROUPED, ALONE):
            messaging.consumer_queue(SERVICE, producer, event_type, (50, 100))(
                conn.default_channel).declare()


def complaint_events() -> list[dict]:
    """received, routed and two notification_sent of one complaint."""
    routed = routed_event()
    complaint_id = routed["data"]["complaint_id"]
    received = build_event("complaint_received", {
        "complaint_id": complaint_id, "tracking_code": "DMS-TEST-CODE-0005", "channel": "web",
        "category": "lainnya", "description": "Uraian pengaduan untuk pengujian",
        "confidentiality": "public", "received_at": datetime.now(UTC),
    }, correlation_id=complaint_id)
    return [received, routed, *(sent_event(complaint_id, audience)
                                for audience in ("unit", "complainant"))]


def sent_event(complaint_id, audience="unit") -> dict:
    return build_event("notification_sent", {
        "complaint_id": complaint_id, "delivery_id": str(uuid.uuid4()),
        "cause_event_id": str(uuid.uuid4()), "audience": audience, "channel": "email",
        "provider": "file", "template": "complaint_routed", "sent_at": datetime.now(UTC),
    }, correlation_id=complaint_id)


def failed_event() -> dict:
    complaint_id = str(uuid.uuid4())
    return build_event("notification_failed", {
        "complaint_id": complaint_id, "delivery_id": str(uuid.uuid4()),
        "cause_event_id": str(uuid.uuid4()), "audience": "unit", "channel": "email",
        "provider": "file", "template": "complaint_routed", "reason": "ditolak",
        "failed_at": datetime.now(UTC),
    }, correlation_id=complaint_id)


def publish(amqp_uri, envelopes) -> list[str]:
    for envelope in envelopes:
        amqp.publish_event(amqp_uri, envelope)
    return [e["event_id"] for e in envelopes]


def start(start_service, **config):
    config.setdefault("EVENT_RETRY_DELAYS_MS", [50, 100])
    config.setdefault("EVENT_BATCH_MAX_WAIT_MS", GATHER_MS)
    return start_service(Grouped, **config)


def batches_observed(label) -> float:
    return REGISTRY.get_sample_value("dumas_event_batch_size_count",
                                     {"service": SERVICE, "event_type": label}) or 0


def all_queues_empty(amqp_uri) -> bool:
    return all(amqp.queue_depth(amqp_uri, queue(t)) == 0 for _, t in (*GROUPED, ALONE))


def test_events_of_several_queues_reach_one_handler_call_and_are_all_acked(
        start_service, amqp_uri):
    declare_queues(amqp_uri)
    envelopes = complaint_events() + complaint_events()
    ids = publish(amqp_uri, envelopes)
    alone = publish(amqp_uri, [failed_event(), failed_event()])
    group_batches, alone_batches = batches_observed(GROUP), batches_observed("notification_failed")
    start(start_service)

    wait_for(lambda: len(recorded) == 10, message="10 events recorded")
    grouped_calls = [(h, c) for h, c in calls if h != "on_failed"]
    assert len(grouped_calls) == 1, "one call for the 8 events of three queues"
    handler, batch = grouped_calls[0]
    assert sorted(batch) == sorted(ids)
    first = next(e for e in envelopes if e["event_id"] == batch[0])
    assert handler == HANDLER_OF[first["event_type"]], "the oldest event's consumer handles it"
    assert ("on_failed", alone) in calls, "the consumer outside the group: its own batch"
    wait_for(lambda: all_queues_empty(amqp_uri), message="every message acked")
    assert batches_observed(GROUP) == group_batches + 1
    assert batches_observed("notification_failed") == alone_batches + 1


def test_a_full_group_batch_leaves_at_once_whatever_queues_its_events_came_from(
        start_service, amqp_uri):
    declare_queues(amqp_uri)
    ids = publish(amqp_uri, complaint_events() + complaint_events() + complaint_events())
    start(start_service, EVENT_BATCH_MAX_SIZE=5)

    wait_for(lambda: len(recorded) == 12, message="12 events recorded")
    assert [len(batch) for _, batch in calls] == [5, 5, 2]
    assert sorted(i for _, batch in calls for i in batch) == sorted(ids)
    wait_for(lambda: all_queues_empty(amqp_uri), message="every message acked")


def test_a_failed_group_batch_is_handled_one_event_at_a_time_each_by_its_own_consumer(
        start_service, amqp_uri):
    declare_queues(amqp_uri)
    envelopes = complaint_events() + complaint_events()
    ids = publish(amqp_uri, envelopes)
    refused = envelopes[1]["event_id"]  # a complaint_routed: parked at once
    failing = envelopes[6]["event_id"]  # a notification_sent: retried, then parked
    poison[refused] = PermanentError
    poison[failing] = RuntimeError
    start(start_service)

    def dead(event_type):
        return amqp.get_all(amqp_uri, f"{queue(event_type)}.dead")

    parked = {}
    wait_for(lambda: parked.update({t: parked.get(t, []) + dead(t) for _, t in GROUPED})
             or sum(map(len, parked.values())) == 2, timeout=15,
             message="both poison events parked")
    assert parked["complaint_received"] == []
    [(body, headers)] = parked["complaint_routed"]
    assert body["event_id"] == refused
    assert headers["x-dumas-reason"] == "permanent_error"
    assert headers["x-dumas-queue"] == queue("complaint_routed")
    [(body, headers)] = parked["notification_sent"]
    assert body["event_id"] == failing
    assert headers["x-dumas-reason"] == "max_attempts_exceeded"
    assert headers["x-dumas-attempts"] == 3

    others = [i for i in ids if i not in poison]
    assert sorted(recorded) == sorted(others), "every other event recorded exactly once"
    assert sorted(calls[0][1]) == sorted(ids), "first the whole batch"
    singles = calls[1:]
    assert all(len(batch) == 1 for _, batch in singles), "then one event per call"
    by_id = {e["event_id"]: e for e in envelopes}
    assert all(h == HANDLER_OF[by_id[i]["event_type"]] for h, (i,) in singles), \
        "each event by its own consumer"
    assert [c for c in singles if c[1] == [failing]] == [("on_sent", [failing])] * 3
    assert [c for c in singles if c[1] == [refused]] == [("on_routed", [refused])]
    wait_for(lambda: all_queues_empty(amqp_uri), message="every message acked")


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_waiting_events_go_back_to_their_own_queues_when_the_container_goes_away(
        start_service, amqp_uri, how):
    declare_queues(amqp_uri)
    ids = publish(amqp_uri, complaint_events())
    service = start(start_service, EVENT_BATCH_MAX_WAIT_MS=60_000)
    consumers = {e.event_type: e for e in service.container.entrypoints
                 if hasattr(e, "group")}
    wait_for(lambda: sum(len(consumers[t]._pending) for _, t in GROUPED) == 4,
             message="4 events waiting in the group")
    assert len({id(c.group) for t, c in consumers.items() if t != ALONE[1]}) == 1
    assert consumers[ALONE[1]].group is not consumers["complaint_received"].group

    getattr(service.container, how)()
    assert calls == []
    for event_type, n in (("complaint_received", 1), ("complaint_routed", 1),
                          ("notification_sent", 2)):
        wait_for(lambda: amqp.queue_depth(amqp_uri, queue(event_type)) == n,  # noqa: B023
                 message=f"{n} back in {queue(event_type)}")

    start(start_service, EVENT_BATCH_MAX_WAIT_MS=50)
    wait_for(lambda: sorted(recorded) == sorted(ids), message="all recorded once")
    wait_for(lambda: all_queues_empty(amqp_uri), message="every message acked")
