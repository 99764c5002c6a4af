"""RabbitMQ helpers for tests: private vhosts (management API), publishing raw messages,
capturing events and reading parked messages."""

import json
import os
import uuid
from urllib.parse import quote

import requests
from kombu import Connection, Exchange, Queue

MGMT = os.environ.get("RABBIT_MGMT_URL", "http://127.0.0.1:15672")
AUTH = ("guest", "guest")
HOST = os.environ.get("RABBIT_AMQP_HOST", "127.0.0.1:5672")


def create_vhost() -> str:
    name = f"dumas_test_{uuid.uuid4().hex[:12]}"
    r = requests.put(f"{MGMT}/api/vhosts/{quote(name)}", auth=AUTH, timeout=10)
    r.raise_for_status()
    r = requests.put(
        f"{MGMT}/api/permissions/{quote(name)}/guest",
        json={"configure": ".*", "write": ".*", "read": ".*"},
        auth=AUTH,
        timeout=10,
    )
    r.raise_for_status()
    return name


def delete_vhost(name: str) -> None:
    requests.delete(f"{MGMT}/api/vhosts/{quote(name)}", auth=AUTH, timeout=30)


def uri_for(vhost: str) -> str:
    return f"amqp://guest:guest@{HOST}/{quote(vhost, safe='')}"


def publish(
    amqp_uri: str, exchange: str, routing_key: str, body, *,
    content_type="application/json", headers=None,
) -> None:
    """Publish a raw body (bytes/str/dict) to a topic exchange, confirmed."""
    if isinstance(body, dict):
        body = json.dumps(body)
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        producer.publish(
            body,
            exchange=Exchange(exchange, type="topic", durable=True),
            declare=[Exchange(exchange, type="topic", durable=True)],
            routing_key=routing_key,
            content_type=content_type,
            content_encoding="utf-8" if isinstance(body, str) else "binary",
            delivery_mode=2,
            headers=headers or {},
        )


def publish_event(amqp_uri: str, envelope: dict) -> None:
    publish(amqp_uri, f"{envelope['producer']}.events", envelope["event_type"], envelope)


class Capture:
    """A queue bound to an exchange before the action under test, to read what was published."""

    def __init__(self, amqp_uri: str, exchange: str, routing_key: str = "#"):
        self.amqp_uri = amqp_uri
        self.name = f"capture_{uuid.uuid4().hex[:10]}"
        self.queue = Queue(
            self.name,
            exchange=Exchange(exchange, type="topic", durable=True),
            routing_key=routing_key,
            durable=False,
            auto_delete=False,
        )
        with Connection(amqp_uri) as conn:
            self.queue(conn.default_channel).declare()
        self.messages: list = []

    def drain(self) -> list:
        """Everything captured so far (accumulated across calls)."""
        self.messages.extend(get_all(self.amqp_uri, self.name))
        return self.messages


def get_all(amqp_uri: str, queue: str) -> list:
    """Consume every message now in `queue`: list of (decoded body or raw bytes, headers)."""
    out = []
    with Connection(amqp_uri) as conn:
        channel = conn.default_channel
        while True:
            message = channel.basic_get(queue, no_ack=True)
            if message is None:
                break
            raw = message.body
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                body = raw
            out.append((body, dict(message.headers or {})))
    return out


def queue_depth(amqp_uri: str, queue: str) -> int:
    with Connection(amqp_uri) as conn:
        _, count, _ = conn.default_channel.queue_declare(queue, passive=True)
        return count
