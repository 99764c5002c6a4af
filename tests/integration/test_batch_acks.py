"""Batch acks (`BatchQueueConsumer.ack_messages`) on a real broker: a batch is acked with one
basic.ack(multiple=True) only for the run of its messages that starts at the channel's oldest
unsettled delivery. The batch consumers of a container share one channel, so a `multiple` ack
past a delivery still in someone else's hands would ack that one too: these tests hold such
deliveries (another consumer's batch in its worker, a failed event whose retry copy is being
published) and check, by the acks written and by what the broker takes back when the
container is killed, that they stay unacknowledged."""

import json
import uuid
from datetime import UTC, datetime

import amqp.channel
import eventlet
import pytest
from kombu import Connection
from support import amqp as broker
from support.events import routed_event
from support.wait import wait_for

from shared import messaging
from shared.contracts import build_event
from shared.nameko_ext import BatchEventConsumer, batch_event_consumer

handled: dict[str, list[list[str]]] = {"received": [], "routed": []}
gates: dict[str, eventlet.Event] = {}
poison: set[str] = set()
acks: list[tuple[int, bool]] = []  # (delivery tag, multiple) of every basic.ack written
delivered: dict[str, int] = {}  # event id -> delivery tag


def _handle(kind, events):
    ids = [e.event_id for e in events]
    handled[kind].append(ids)
    if kind in gates:
        gates[kind].wait()
    if poison.intersection(ids):
        raise RuntimeError("cannot handle it")


class TwoConsumers:
    """Two batch consumers, each its own group, on the container's one batch channel."""

    name = "acks"

    @batch_event_consumer("intake", "complaint_received", max_batch=5, max_wait_ms=60_000)
    def on_received(self, events):
        _handle("received", events)

    @batch_event_consumer("routing", "complaint_routed", max_batch=5, max_wait_ms=60_000)
    def on_routed(self, events):
        _handle("routed", events)


RECEIVED = "acks.complaint_received"
ROUTED = "acks.complaint_routed"


@pytest.fixture(autouse=True)
def spy(monkeypatch):
    for calls in handled.values():
        calls.clear()
    gates.clear()
    poison.clear()
    acks.clear()
    delivered.clear()
    basic_ack = amqp.channel.Channel.basic_ack

    def recording_ack(self, delivery_tag, multiple=False, argsig="Lb"):
        acks.append((delivery_tag, multiple))
        return basic_ack(self, delivery_tag, multiple, argsig)

    monkeypatch.setattr(amqp.channel.Channel, "basic_ack", recording_ack)
    handle_message = BatchEventConsumer.handle_message

    def recording_delivery(self, body, message):
        delivered[json.loads(message.body)["event_id"]] = message.delivery_tag
        return handle_message(self, body, message)

    monkeypatch.setattr(BatchEventConsumer, "handle_message", recording_delivery)


def start(start_service, amqp_uri):
    with Connection(amqp_uri) as conn:
        channel = conn.default_channel
        for producer, event_type in (("intake", "complaint_received"),
                                     ("routing", "complaint_routed")):
            messaging.consumer_queue("acks", producer, event_type, (50,))(channel).declare()
    return start_service(TwoConsumers, EVENT_RETRY_DELAYS_MS=[50])


def received_envelope() -> dict:
    complaint_id = str(uuid.uuid4())
    return build_event("complaint_received", {
        "complaint_id": complaint_id, "tracking_code": "DMS-TEST-CODE-0003", "channel": "web",
        "category": "lainnya", "description": "Uraian pengaduan untuk pengujian",
        "confidentiality": "public", "received_at": datetime.now(UTC),
    }, correlation_id=complaint_id)


def publish(amqp_uri, make, n) -> list[str]:
    envelopes = [make() for _ in range(n)]
    for envelope in envelopes:
        broker.publish_event(amqp_uri, envelope)
    return [e["event_id"] for e in envelopes]


def test_a_full_batch_is_acked_with_one_multiple_ack(start_service, amqp_uri):
    start(start_service, amqp_uri)
    ids = publish(amqp_uri, received_envelope, 5)
    wait_for(lambda: handled["received"] == [ids], message="one batch of 5")
    wait_for(lambda: acks, message="acked")
    assert acks == [(max(delivered[i] for i in ids), True)], \
        "one basic.ack(multiple=True) at the batch's last tag"


def test_a_batch_behind_another_consumers_batch_in_its_worker_does_not_ack_that_batch(
        start_service, amqp_uri):
    gates["received"] = eventlet.Event()
    service = start(start_service, amqp_uri)
    held = publish(amqp_uri, received_envelope, 5)
    wait_for(lambda: handled["received"] == [held], message="received batch in its worker")
    later = publish(amqp_uri, routed_event, 5)
    wait_for(lambda: handled["routed"] == [later], message="routed batch handled")
    wait_for(lambda: len(acks) == 5, message="routed batch acked")
    # The routed deliveries came after the held ones on the same channel: `multiple` at the
    # last routed tag would have acked the held batch too.
    assert min(delivered[i] for i in later) > max(delivered[i] for i in held)
    assert sorted(acks) == [(delivered[i], False) for i in later]

    service.container.kill()  # the held batch dies unacknowledged: the broker takes it back
    wait_for(lambda: broker.queue_depth(amqp_uri, RECEIVED) == 5,
             message="the held batch back in its queue")
    assert broker.queue_depth(amqp_uri, ROUTED) == 0


def test_the_held_batch_finishing_last_is_then_acked_with_one_multiple_ack(
        start_service, amqp_uri):
    gates["received"] = eventlet.Event()
    start(start_service, amqp_uri)
    held = publish(amqp_uri, received_envelope, 5)
    wait_for(lambda: handled["received"] == [held], message="received batch in its worker")
    publish(amqp_uri, routed_event, 5)
    wait_for(lambda: len(acks) == 5, message="routed batch acked one by one")
    gates["received"].send()
    wait_for(lambda: len(acks) == 6, message="held batch acked")
    assert acks[-1] == (max(delivered[i] for i in held), True)


def test_a_failed_event_whose_retry_copy_is_on_its_way_is_not_acked_by_a_later_batch(
        start_service, amqp_uri, monkeypatch):
    """A failed batch falls back to one event at a time; the failing event's original is acked
    only once its retry copy is confirmed (if the copy fails it is requeued). A batch that is
    delivered after it and finishes meanwhile must not ack it."""
    copying = eventlet.Event()
    republish = BatchEventConsumer._republish

    def slow_republish(self, message, queue_name, extra_headers):
        copying.wait()
        return republish(self, message, queue_name, extra_headers)

    monkeypatch.setattr(BatchEventConsumer, "_republish", slow_republish)
    service = start(start_service, amqp_uri)
    envelopes = [received_envelope() for _ in range(5)]
    poison.add(envelopes[0]["event_id"])
    for envelope in envelopes:
        broker.publish_event(amqp_uri, envelope)
    wait_for(lambda: len(handled["received"]) == 6, message="batch, then each event alone")
    wait_for(lambda: len(acks) == 4, message="the four good events acked")
    later = publish(amqp_uri, routed_event, 5)
    wait_for(lambda: handled["routed"] == [later], message="routed batch handled")
    wait_for(lambda: len(acks) == 9, message="routed batch acked")
    assert all(not multiple for _, multiple in acks), acks

    service.container.kill()
    wait_for(lambda: broker.queue_depth(amqp_uri, RECEIVED) == 1,
             message="the failing event back in its queue, its copy never made")
    copying.send()
