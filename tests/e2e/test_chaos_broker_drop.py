"""Found by `make chaos` (20 s broker outages under load): when RabbitMQ went away at the wrong
instant, nameko let a broker error escape into a worker's result handling, which kills the
whole container; the service process exited and answered nothing until restarted.

- an RPC being handled could not publish its reply (kombu OperationalError after nameko's
  3 retries): intake died this way;
- an event handler's ack met the dropped socket (ConnectionResetError, which nameko's
  `ack_message` does not catch): routing died this way.

`shared.nameko_ext` `rpc` and `event_consumer` keep the service up and leave the message to be
delivered again. The broker cannot be taken away for one container only, so the publish or the
ack is made to fail the way it fails when the broker is gone. Each pair shows plain nameko
dying first, so the test would notice if the failure were no longer reproduced."""

import uuid
from datetime import UTC, datetime
from unittest import mock

import pytest
from kombu.exceptions import OperationalError
from kombu.message import Message
from nameko.events import event_handler
from nameko.rpc import Responder, rpc
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from support import amqp
from support.wait import wait_for

from shared.contracts import build_event
from shared.nameko_ext import event_consumer
from shared.nameko_ext import rpc as resilient_rpc

FAIL = {"reply": 0, "ack": 0}
HANDLED: list[str] = []
_send_response = Responder.send_response
_ack = Message.ack


def flaky_send_response(self, result, exc_info):
    if FAIL["reply"]:
        FAIL["reply"] -= 1
        raise OperationalError("[Errno 111] ECONNREFUSED")
    return _send_response(self, result, exc_info)


def flaky_ack(self, *args, **kwargs):
    if FAIL["ack"]:
        FAIL["ack"] -= 1
        raise ConnectionResetError(104, "Connection reset by peer")
    return _ack(self, *args, **kwargs)


@pytest.fixture
def broker_drops():
    with mock.patch.object(Responder, "send_response", flaky_send_response), \
            mock.patch.object(Message, "ack", flaky_ack):
        yield FAIL
    FAIL.update(reply=0, ack=0)
    HANDLED.clear()


class PlainRpc:
    name = "plain_rpc"

    @rpc
    def ping(self):
        return "pong"


class SharedRpc:
    name = "shared_rpc"

    @resilient_rpc
    def ping(self):
        return "pong"


class PlainEvents:
    name = "plain_events"

    @event_handler("somewhere", "happened")
    def handle(self, payload):
        HANDLED.append(payload)


class SharedEvents:
    name = "shared_events"

    @event_consumer("intake", "complaint_received")
    def handle(self, event):
        HANDLED.append(event.event_id)


def call(amqp_uri, service, timeout):
    with ServiceRpcProxy(service, {"AMQP_URI": amqp_uri}, timeout=timeout) as proxy:
        return proxy.ping()


def died(container) -> bool:
    return container._died.ready()


def received():
    complaint_id = str(uuid.uuid4())
    return build_event("complaint_received", {
        "complaint_id": complaint_id, "tracking_code": "DMS-TEST-CODE-0002", "channel": "web",
        "category": "lainnya", "description": "Uraian pengaduan untuk pengujian",
        "confidentiality": "public", "received_at": datetime.now(UTC),
    }, correlation_id=complaint_id)


def test_plain_nameko_dies_when_an_rpc_reply_cannot_be_published(
    container_factory, amqp_uri, broker_drops
):
    container = container_factory(PlainRpc, {"AMQP_URI": amqp_uri})
    container.start()
    broker_drops["reply"] = 1
    with pytest.raises(Exception):  # noqa: B017 - the caller only sees its own timeout
        call(amqp_uri, "plain_rpc", timeout=3)
    wait_for(lambda: died(container), timeout=10, message="plain nameko container died")


def test_the_shared_rpc_survives_a_reply_it_cannot_publish_and_answers_the_next_call(
    container_factory, amqp_uri, broker_drops
):
    container = container_factory(SharedRpc, {"AMQP_URI": amqp_uri})
    container.start()
    broker_drops["reply"] = 1
    with pytest.raises(Exception):  # noqa: B017 - the lost reply: the caller times out
        call(amqp_uri, "shared_rpc", timeout=3)
    assert not died(container)
    assert call(amqp_uri, "shared_rpc", timeout=10) == "pong"
    assert not died(container)


def test_plain_nameko_dies_when_an_ack_meets_a_reset_connection(
    container_factory, amqp_uri, broker_drops
):
    container = container_factory(PlainEvents, {"AMQP_URI": amqp_uri})
    container.start()
    broker_drops["ack"] = 1
    event_dispatcher({"AMQP_URI": amqp_uri})("somewhere", "happened", "first")
    wait_for(lambda: died(container), timeout=10, message="plain nameko container died")
    assert HANDLED == ["first"]


def test_the_shared_event_consumer_survives_a_lost_ack_and_handles_the_next_event(
    container_factory, amqp_uri, broker_drops
):
    container = container_factory(SharedEvents, {"AMQP_URI": amqp_uri})
    container.start()
    broker_drops["ack"] = 1
    first, second = received(), received()
    amqp.publish_event(amqp_uri, first)
    wait_for(lambda: first["event_id"] in HANDLED, timeout=10, message="first handled")
    amqp.publish_event(amqp_uri, second)
    wait_for(lambda: second["event_id"] in HANDLED, timeout=10, message="second handled")
    assert not died(container)
    assert broker_drops["ack"] == 0  # the first ack did fail
