"""The production broker topology on this single-node RabbitMQ: the generated definitions
(deploy/rabbitmq/definitions.json) imported into a private vhost, the services declaring quorum
queues over them (DUMAS_QUEUE_TYPE=quorum: any disagreement in queue arguments would fail their
declarations), a complaint flowing through, and the delivery limit parking a poison message."""

import json
from urllib.parse import quote

import pytest
import requests
from kombu import Connection
from support import amqp
from support.deploy_files import DEPLOY
from support.wait import wait_for

from shared import messaging

pytestmark = pytest.mark.e2e


def import_definitions(vhost: str) -> dict:
    defs = json.loads((DEPLOY / "rabbitmq/definitions.json").read_text())
    response = requests.post(f"{amqp.MGMT}/api/definitions/{quote(vhost, safe='')}", json=defs,
                             auth=amqp.AUTH, timeout=30)
    assert response.status_code in (200, 201, 204), response.text
    return defs


def queue_info(vhost: str, name: str) -> dict:
    response = requests.get(f"{amqp.MGMT}/api/queues/{quote(vhost, safe='')}/{quote(name)}",
                            auth=amqp.AUTH, timeout=10)
    response.raise_for_status()
    return response.json()


def test_definitions_declare_quorum_queues_with_a_poison_limit(vhost, amqp_uri):
    defs = import_definitions(vhost)
    main = messaging.consumer_queue_name("routing", "complaint_received")
    info = wait_for(lambda: queue_info(vhost, main).get("effective_policy_definition")
                    and queue_info(vhost, main), timeout=10, message="policy applied")
    assert info["type"] == "quorum"
    limit = info["effective_policy_definition"]["delivery-limit"]
    assert queue_info(vhost, f"{main}.retry.1")["type"] == "quorum"
    assert len(defs["queues"]) == len(
        requests.get(f"{amqp.MGMT}/api/queues/{quote(vhost, safe='')}", auth=amqp.AUTH,
                     timeout=10).json())

    # a message that keeps failing without ever being acked (a consumer crashing on it) is
    # parked in the .dead queue after `limit` redeliveries, not looped forever
    amqp.publish(amqp_uri, "intake.events", "complaint_received", {"poison": True})
    deliveries = 0
    with Connection(amqp_uri) as conn:
        channel = conn.default_channel
        dead = messaging.dead_queue_name(main)

        def parked_now() -> bool:  # from the broker itself (the management API's counts lag)
            return channel.queue_declare(queue=dead, passive=True).message_count > 0

        while deliveries <= limit + 1:
            # the message comes back, or the last reject has just parked it
            message = wait_for(lambda: channel.basic_get(main, no_ack=False)
                               or (parked_now() and "parked"), timeout=10,
                               message="message back in the queue, or parked")
            if message == "parked":
                break
            deliveries += 1
            channel.basic_reject(message.delivery_tag, requeue=True)
            if amqp.queue_depth(amqp_uri, messaging.dead_queue_name(main)):
                break
    parked = wait_for(lambda: amqp.get_all(amqp_uri, messaging.dead_queue_name(main)),
                      timeout=10, message="poison message parked")
    assert parked[0][0] == {"poison": True}
    assert deliveries == limit + 1
    assert amqp.queue_depth(amqp_uri, main) == 0


def test_a_complaint_flows_through_quorum_queues(vhost, amqp_uri, service_env, make_services,
                                                  make_complaint):
    import_definitions(vhost)
    cluster = make_services({**service_env, "DUMAS_QUEUE_TYPE": "quorum"})
    response = requests.post(cluster.url("intake", "/api/v1/complaints"), timeout=10,
                             json=make_complaint("17.08.05", "budi@example.com"))
    assert response.status_code == 201, response.text
    code = response.json()["tracking_code"]
    status = wait_for(lambda: requests.get(cluster.url("intake", f"/api/v1/complaints/{code}"),
                                           timeout=10).json().get("status") != "received"
                      and requests.get(cluster.url("intake", f"/api/v1/complaints/{code}"),
                                       timeout=10).json(), timeout=60, message="routed")
    assert status["status"] != "received"
    for name in ("routing.complaint_received", "notification.complaint_routed",
                 "reporting.complaint_routed"):
        assert queue_info(vhost, name)["type"] == "quorum"
