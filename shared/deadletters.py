"""Operations on parked messages: count, inspect, and send back for another try.

Used by `dumas dlq ...` once the cause of a failure is fixed.
"""

import json
from dataclasses import dataclass

from kombu import Connection

from shared import messaging


@dataclass
class Parked:
    queue: str
    event_id: str | None
    event_type: str | None
    reason: str | None
    error: str | None
    attempts: int | None
    parked_at: str | None


def depths(amqp_uri: str) -> dict[str, int]:
    """Messages parked per dead-letter queue (queues not declared yet count as 0)."""
    out = {}
    with Connection(amqp_uri, connect_timeout=5) as conn:
        for consumer, _producer, event_type in messaging.SUBSCRIPTIONS:
            name = messaging.dead_queue_name(messaging.consumer_queue_name(consumer, event_type))
            channel = conn.channel()
            try:
                _, count, _ = channel.queue_declare(name, passive=True)
            except Exception:  # not declared yet: the consumer never started
                count = 0
            finally:
                if channel.is_open:
                    channel.close()
            out[name] = count
    return out


def _describe(queue: str, message) -> Parked:
    headers = message.headers or {}
    try:
        body = json.loads(message.body)
        event_id, event_type = body.get("event_id"), body.get("event_type")
    except (ValueError, UnicodeDecodeError, AttributeError):
        event_id = event_type = None
    return Parked(
        queue=queue,
        event_id=event_id,
        event_type=event_type,
        reason=headers.get(messaging.REASON_HEADER),
        error=headers.get(messaging.ERROR_HEADER),
        attempts=headers.get(messaging.ATTEMPTS_HEADER),
        parked_at=headers.get(messaging.PARKED_AT_HEADER),
    )


def peek(amqp_uri: str, dead_queue: str, limit: int = 20) -> list[Parked]:
    """Look at parked messages without removing them (they return to the queue on close)."""
    found = []
    with Connection(amqp_uri, connect_timeout=5) as conn:
        channel = conn.channel()
        for _ in range(limit):
            message = channel.basic_get(dead_queue, no_ack=False)
            if message is None:
                break
            found.append(_describe(dead_queue, message))
        channel.close()  # unacked messages go back to the queue, in order
    return found


def requeue(amqp_uri: str, dead_queue: str, event_id: str | None = None) -> int:
    """Move parked messages (all, or the one with `event_id`) back to their consumer queue.

    Each copy is confirmed by the broker before the parked original is acked.
    """
    if not dead_queue.endswith(".dead"):
        raise ValueError(f"not a dead-letter queue: {dead_queue}")
    target = dead_queue[: -len(".dead")]
    moved = 0
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        producer = conn.Producer(channel=channel)
        kept = []
        while True:
            message = channel.basic_get(dead_queue, no_ack=False)
            if message is None:
                break
            if event_id is not None and _describe(dead_queue, message).event_id != event_id:
                kept.append(message)
                continue
            headers = {
                k: v for k, v in (message.headers or {}).items() if not k.startswith("x-dumas-")
            }
            producer.publish(
                message.body,
                exchange="",
                routing_key=target,
                headers=headers,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                delivery_mode=2,
                message_id=message.properties.get("message_id"),
                correlation_id=message.properties.get("correlation_id"),
            )
            channel.basic_ack(message.delivery_tag)
            moved += 1
        channel.close()  # messages we kept return to the dead-letter queue
    return moved
