"""The batched event consumer (`shared.nameko_ext.batch_event_consumer`) on a real broker:
waiting events reach the handler as one list, a failed batch falls back to the events one at a
time with the usual retries and parking, malformed messages are parked, and messages waiting
in a batch are not lost when the container stops or is killed."""

import uuid
from datetime import UTC, datetime

import eventlet
import pytest
from kombu import Connection
from prometheus_client import REGISTRY
from support import amqp
from support.events import routed_event
from support.wait import wait_for

from shared import messaging
from shared.contracts import build_event
from shared.nameko_ext import (
    BatchEventConsumer,
    PermanentError,
    batch_event_consumer,
    event_consumer,
)

calls: list[list[str]] = []  # event ids of every call, in order
recorded: list[str] = []  # event ids of calls that succeeded (a committed transaction)
poison: dict[str, type] = {}  # event id -> exception the handler raises when it sees it
gate: dict = {}


def received_event() -> dict:
    complaint_id = str(uuid.uuid4())
    return build_event("complaint_received", {
        "complaint_id": complaint_id,
        "tracking_code": "DMS-TEST-CODE-0003",
        "channel": "web",
        "category": "lainnya",
        "description": "Uraian pengaduan untuk pengujian",
        "confidentiality": "public",
        "received_at": datetime.now(UTC),
    }, correlation_id=complaint_id)


def handle(events):
    ids = [e.event_id for e in events]
    calls.append(ids)
    if "event" in gate:
        gate["event"].wait()
    for event_id in ids:
        if event_id in poison:
            raise poison[event_id](f"cannot handle {event_id}")
    recorded.extend(ids)


class Batched:
    name = "batched"

    @batch_event_consumer("intake", "complaint_received")
    def on_received(self, events):
        handle(events)


QUEUE = "batched.complaint_received"
# Long enough for every message already queued to arrive before the batch leaves, even on a
# busy machine (the tests check what a batch holds).
GATHER_MS = 1000


@pytest.fixture(autouse=True)
def clean():
    calls.clear()
    recorded.clear()
    poison.clear()
    gate.clear()


def declare_queue(amqp_uri, delays=(50, 100)):
    """The consumer's queue (and companions) before the service starts: events published now
    wait there, so the test decides what is in hand when consuming begins."""
    with Connection(amqp_uri) as conn:
        messaging.consumer_queue("batched", "intake", "complaint_received", delays)(
            conn.default_channel).declare()


def publish_all(amqp_uri, n) -> list[str]:
    events = [received_event() for _ in range(n)]
    for event in events:
        amqp.publish_event(amqp_uri, event)
    return [e["event_id"] for e in events]


def start(start_service, **config):
    config.setdefault("EVENT_RETRY_DELAYS_MS", [50, 100])
    return start_service(Batched, **config)


def batch_sizes_observed() -> float:
    return REGISTRY.get_sample_value(
        "dumas_event_batch_size_count",
        {"service": "batched", "event_type": "complaint_received"}) or 0


def entrypoint(service) -> BatchEventConsumer:
    return next(e for e in service.container.entrypoints if isinstance(e, BatchEventConsumer))


def test_waiting_events_reach_the_handler_as_one_list_and_are_all_acked(
        start_service, amqp_uri):
    declare_queue(amqp_uri)
    ids = publish_all(amqp_uri, 12)
    batches_before = batch_sizes_observed()
    start(start_service, EVENT_BATCH_MAX_WAIT_MS=GATHER_MS)
    wait_for(lambda: len(recorded) == 12, message="12 events recorded")
    assert calls == [ids], "one call with the 12 events, in delivery order"
    wait_for(lambda: amqp.queue_depth(amqp_uri, QUEUE) == 0)
    assert batch_sizes_observed() == batches_before + 1


def test_a_full_batch_goes_at_once_and_the_rest_after_the_wait(start_service, amqp_uri):
    declare_queue(amqp_uri)
    ids = publish_all(amqp_uri, 12)
    start(start_service, EVENT_BATCH_MAX_SIZE=5, EVENT_BATCH_MAX_WAIT_MS=GATHER_MS)
    wait_for(lambda: len(recorded) == 12, message="12 events recorded")
    assert calls == [ids[:5], ids[5:10], ids[10:]]


def test_a_poison_event_is_retried_and_parked_alone_and_the_others_recorded_once(
        start_service, amqp_uri):
    declare_queue(amqp_uri)
    ids = publish_all(amqp_uri, 10)
    failing, refused = ids[3], ids[7]
    poison[failing] = RuntimeError
    poison[refused] = PermanentError
    start(start_service, EVENT_BATCH_MAX_WAIT_MS=GATHER_MS)

    parked = []
    wait_for(lambda: parked.extend(amqp.get_all(amqp_uri, f"{QUEUE}.dead")) or len(parked) == 2,
             timeout=15, message="both poison events parked")
    by_id = {body["event_id"]: headers for body, headers in parked}
    assert by_id[failing]["x-dumas-reason"] == "max_attempts_exceeded"
    assert by_id[failing]["x-dumas-attempts"] == 3
    assert f"cannot handle {failing}" in by_id[failing]["x-dumas-error"]
    assert by_id[refused]["x-dumas-reason"] == "permanent_error"

    others = [i for i in ids if i not in poison]
    assert sorted(recorded) == sorted(others), "every other event recorded exactly once"
    assert calls[0] == ids, "first the whole batch"
    singles = calls[1:]
    assert all(len(call) == 1 for call in singles), "then one event per call"
    assert sorted(i for (i,) in singles if i not in poison) == sorted(others)
    assert [c for c in singles if c == [failing]] == [[failing]] * 3  # first try + 2 retries
    assert [c for c in singles if c == [refused]] == [[refused]]  # parked at once
    wait_for(lambda: amqp.queue_depth(amqp_uri, QUEUE) == 0)


def test_malformed_messages_are_parked_and_the_good_ones_still_come_as_a_batch(
        start_service, amqp_uri):
    declare_queue(amqp_uri)
    good = publish_all(amqp_uri, 3)
    amqp.publish(amqp_uri, "intake.events", "complaint_received", b"\x00\xffnot json",
                 content_type="application/json")
    wrong = received_event()
    wrong["data"]["channel"] = "merpati_pos"
    amqp.publish_event(amqp_uri, wrong)
    good += publish_all(amqp_uri, 2)
    start(start_service, EVENT_BATCH_MAX_WAIT_MS=GATHER_MS)

    parked = []
    wait_for(lambda: parked.extend(amqp.get_all(amqp_uri, f"{QUEUE}.dead")) or len(parked) == 2,
             message="both malformed messages parked")
    reasons = sorted(headers["x-dumas-reason"] for _, headers in parked)
    assert reasons == ["invalid_data", "undecodable"]
    wait_for(lambda: len(recorded) == 5)
    assert calls == [good]


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_nothing_is_lost_when_the_container_goes_away_mid_batch(start_service, amqp_uri, how):
    declare_queue(amqp_uri)
    gate["event"] = eventlet.Event()
    first = publish_all(amqp_uri, 5)
    # A full batch goes at once and blocks in the handler; what arrives next waits (60 s).
    service = start(start_service, EVENT_BATCH_MAX_SIZE=5, EVENT_BATCH_MAX_WAIT_MS=60_000)
    wait_for(lambda: calls == [first], message="first batch in the handler")
    waiting = publish_all(amqp_uri, 3)
    wait_for(lambda: len(entrypoint(service)._pending) == 3, message="3 events waiting")

    if how == "stop":
        stopping = eventlet.spawn(service.container.stop)
        wait_for(lambda: entrypoint(service)._closed, message="consumer stopped")
        gate["event"].send()  # the running batch finishes and is acked
        stopping.wait()
        assert recorded == first
        wait_for(lambda: amqp.queue_depth(amqp_uri, QUEUE) == 3, message="3 requeued")
    else:
        service.container.kill()  # the running batch dies unacknowledged
        assert recorded == []
        wait_for(lambda: amqp.queue_depth(amqp_uri, QUEUE) == 8, message="all 8 back")

    gate.clear()
    start(start_service, EVENT_BATCH_MAX_WAIT_MS=50)
    wait_for(lambda: set(recorded) == set(first + waiting), message="all recorded")
    assert len(recorded) == 8, "each event recorded once"
    wait_for(lambda: amqp.queue_depth(amqp_uri, QUEUE) == 0)


class Mixed:
    """A service with both kinds of consumer (as routing, intake and notification have)."""

    name = "mixed"

    @batch_event_consumer("intake", "complaint_received")
    def on_received(self, events):
        handle(events)

    @event_consumer("routing", "complaint_routed")
    def on_routed(self, event):
        recorded.append(event.event_id)


def test_a_batch_consumer_and_a_one_by_one_consumer_work_side_by_side(
        start_service, amqp_uri):
    start_service(Mixed, EVENT_BATCH_MAX_WAIT_MS=20)
    received = publish_all(amqp_uri, 3)
    routed = routed_event()
    amqp.publish_event(amqp_uri, routed)
    wait_for(lambda: set(recorded) == {*received, routed["event_id"]}, message="all handled")
    assert all(len(call) >= 1 for call in calls) and sum(map(len, calls)) == 3
