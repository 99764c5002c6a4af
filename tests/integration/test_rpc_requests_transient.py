"""RPC requests are transient and published without confirms (docs/events.md, "RPC"): a request
lost with the broker ends in the caller's timeout like any failed call, so every RpcProxy of the
project sends it as a transient message (no message-store write on the broker) and does not wait
for a publisher confirm. Checked on the real broker with each service's own proxy declaration."""

import eventlet
import pytest
from kombu import Connection, Exchange, Queue
from nameko.exceptions import UnknownService
from nameko.rpc import RpcProxy, rpc
from nameko.testing.services import entrypoint_hook

from services.intake.service import IntakeService
from services.notification.service import NotificationService
from services.reporting.service import ReportingService

PROXIES = {
    "notification.intake": NotificationService.intake,
    "notification.routing": NotificationService.routing,
    "intake.routing": IntakeService.routing,
    "reporting.routing": ReportingService.routing,
}

# nameko warns at each unconfirmed request that it cannot detect an unroutable one: the second
# test shows what that means.
pytestmark = pytest.mark.filterwarnings("ignore:Mandatory delivery was requested")


def probe_declaring(proxy: RpcProxy, target: str):
    """A service whose only dependency is an RpcProxy declared as `proxy` is, aimed at `target`."""

    class Probe:
        name = "rpc_probe"
        remote = RpcProxy(target, **proxy.options)

        @rpc
        def ask(self, question):
            return self.remote.echo(question)

    return Probe


class Echo:
    name = "echo_target"

    @rpc
    def echo(self, question):
        return {"answer": question}


@pytest.fixture
def config(amqp_uri):
    return {"AMQP_URI": amqp_uri, "serializer": "json"}


@pytest.mark.parametrize("declared", PROXIES)
def test_a_request_reaches_the_service_as_a_transient_message_and_is_answered(
        declared, config, amqp_uri, container_factory):
    target = container_factory(Echo, config)
    target.start()
    with Connection(amqp_uri) as conn:  # a copy of every request to the target
        tap = Queue("rpc_tap", Exchange("nameko-rpc", type="topic", durable=True),
                    routing_key="echo_target.*", channel=conn.default_channel)
        tap.declare()
    probe = container_factory(probe_declaring(PROXIES[declared], "echo_target"), config)
    probe.start()

    with entrypoint_hook(probe, "ask") as ask:
        assert ask("halo") == {"answer": "halo"}

    with Connection(amqp_uri) as conn:
        request = tap(conn.default_channel).get(no_ack=True)
    assert request is not None
    assert request.properties["delivery_mode"] == 1  # 2 = persistent


@pytest.mark.parametrize("declared", PROXIES)
def test_a_request_is_not_confirmed_so_a_missing_service_ends_in_the_callers_timeout(
        declared, config, container_factory):
    # With publisher confirms nameko learns at once that no queue took the request
    # (UnknownService); without them the caller's own timeout ends the call, as it does for a
    # request the broker lost.
    probe = container_factory(probe_declaring(PROXIES[declared], "nobody_listens"), config)
    probe.start()

    with (entrypoint_hook(probe, "ask") as ask, pytest.raises(TimeoutError),
          eventlet.Timeout(1, TimeoutError)):
        ask("halo")


def test_with_confirms_a_missing_service_is_reported_at_once(config, container_factory):
    """The previous test's control: the same probe with nameko's default (confirmed) request."""
    probe = container_factory(probe_declaring(RpcProxy("x"), "nobody_listens"), config)
    probe.start()

    with (entrypoint_hook(probe, "ask") as ask, pytest.raises(UnknownService),
          eventlet.Timeout(5, TimeoutError)):
        ask("halo")
