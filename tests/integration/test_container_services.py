"""shared.container.DumasContainer on the real broker: a real service as its config.yaml ships
it, RPC between two containers (the call id stack still travels), and the shared event
consumer (handled events acked, failing ones retried then parked)."""

import pytest
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.testing.services import entrypoint_waiter
from support import amqp
from support.events import routed_event
from support.service_config import load_config
from support.wait import wait_for

from services.intake.service import IntakeService
from shared import messaging
from shared.container import DumasContainer
from shared.nameko_ext import event_consumer, rpc

handled_events: list = []


class WorkerContextOf(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx


class Callee:
    name = "callee"
    ctx = WorkerContextOf()

    @rpc
    def whoami(self):
        return self.ctx.call_id_stack


class Caller:
    name = "caller"
    callee = RpcProxy("callee")
    ctx = WorkerContextOf()

    @rpc
    def go(self):
        return {"mine": self.ctx.call_id, "callee_stack": self.callee.whoami()}


class Routed:
    name = "routed_listener"
    ctx = WorkerContextOf()

    @event_consumer("routing", "complaint_routed")
    def on_routed(self, event):
        handled_events.append((event.event_id, self.ctx.data.get("correlation_id")))
        if event.data["reason"] == "gagal":
            raise RuntimeError("handler failed")


@pytest.fixture(autouse=True)
def clear_seen():
    handled_events.clear()


@pytest.fixture
def dumas_config(amqp_uri):
    def make(**overrides):
        return {"AMQP_URI": amqp_uri, "max_workers": 10,
                "SERVICE_CONTAINER_CLS": load_config("intake")["SERVICE_CONTAINER_CLS"],
                **overrides}

    return make


def test_intake_as_it_ships_answers_http_and_rpc_in_the_dumas_container(
    start_service, amqp_uri
):
    intake = start_service(
        IntakeService, SERVICE_CONTAINER_CLS=load_config("intake")["SERVICE_CONTAINER_CLS"])

    assert type(intake.container) is DumasContainer
    assert intake.get("/health").status_code == 200
    with ClusterRpcProxy({"AMQP_URI": amqp_uri}, timeout=10) as cluster:
        assert cluster.intake.get_contact("00000000-0000-0000-0000-000000000000") is None


def test_rpc_between_dumas_containers_carries_the_call_id_stack(container_factory,
                                                                dumas_config):
    callee = container_factory(Callee, dumas_config())
    caller = container_factory(Caller, dumas_config())
    callee.start()
    caller.start()
    assert (type(callee), type(caller)) == (DumasContainer, DumasContainer)

    with ClusterRpcProxy(dumas_config(), timeout=10) as cluster:
        answer = cluster.caller.go()

    stack = answer["callee_stack"]
    assert stack[-2:-1] == [answer["mine"]]  # the caller's worker is the callee's parent
    assert answer["mine"].startswith("caller.go.")
    assert stack[-1].startswith("callee.whoami.")


def test_an_event_is_handled_and_acked_in_the_dumas_container(container_factory, dumas_config,
                                                             amqp_uri):
    container = container_factory(Routed, dumas_config())
    container.start()
    assert type(container) is DumasContainer
    envelope = routed_event()

    with entrypoint_waiter(container, "on_routed", timeout=10):
        amqp.publish_event(amqp_uri, envelope)
    container.stop()  # an unacked message would go back to the queue now

    assert handled_events == [(envelope["event_id"], envelope["correlation_id"])]
    queue = messaging.consumer_queue_name("routed_listener", "complaint_routed")
    assert amqp.queue_depth(amqp_uri, queue) == 0


def test_a_failing_event_is_retried_then_parked_in_the_dumas_container(
    container_factory, dumas_config, amqp_uri
):
    container = container_factory(Routed, dumas_config(EVENT_RETRY_DELAYS_MS=[50]))
    container.start()
    envelope = routed_event()
    envelope["data"]["reason"] = "gagal"

    amqp.publish_event(amqp_uri, envelope)

    queue = messaging.consumer_queue_name("routed_listener", "complaint_routed")
    parked = []
    wait_for(lambda: parked.extend(amqp.get_all(amqp_uri, f"{queue}.dead")) or parked,
             timeout=15, message="the failing event parked")
    body, headers = parked[0]
    assert body["event_id"] == envelope["event_id"]
    assert headers[messaging.REASON_HEADER] == "max_attempts_exceeded"
    assert headers[messaging.ATTEMPTS_HEADER] == 2
    assert [event_id for event_id, _ in handled_events] == [envelope["event_id"]] * 2
    assert not container._died.ready()
