"""RabbitMQ topology, in one place.

- Each producing service publishes to the durable topic exchange `<producer>.events`, with the
  event type as routing key (the same exchange nameko's EventDispatcher would use).
- Each consuming service has a durable queue `<service>.<event_type>` bound to it, and beside it:
  `<queue>.retry.<n>`: holding queues with a TTL whose expired messages are dead-lettered back to
  the main queue (back-off), and `<queue>.dead`: the parking queue for messages that failed
  for good.
"""

import os

from kombu import Exchange, Queue

RETRY_DELAYS_MS: tuple[int, ...] = (1_000, 5_000, 30_000, 120_000)

# Headers set on retried and parked messages.
ATTEMPTS_HEADER = "x-dumas-attempts"
REASON_HEADER = "x-dumas-reason"
ERROR_HEADER = "x-dumas-error"
QUEUE_HEADER = "x-dumas-queue"
PARKED_AT_HEADER = "x-dumas-parked-at"


# Who consumes what: (consuming service, producing service, event type). One queue each.
SUBSCRIPTIONS: tuple[tuple[str, str, str], ...] = (
    ("routing", "intake", "complaint_received"),
    ("routing", "intake", "complaint_info_added"),
    ("routing", "intake", "complaint_rated"),
    ("routing", "intake", "complaint_reopened"),
    ("routing", "intake", "complaint_attachment_added"),
    ("reporting", "intake", "complaint_received"),
    ("intake", "routing", "complaint_routed"),
    ("intake", "routing", "complaint_acknowledged"),
    ("intake", "routing", "complaint_work_started"),
    ("intake", "routing", "complaint_info_requested"),
    ("intake", "routing", "complaint_responded"),
    ("intake", "routing", "complaint_resolved"),
    ("intake", "routing", "complaint_closed"),
    ("intake", "channels", "complaint_submitted"),
    ("notification", "routing", "complaint_routed"),
    ("notification", "routing", "complaint_acknowledged"),
    ("notification", "routing", "complaint_info_requested"),
    ("notification", "routing", "complaint_responded"),
    ("notification", "routing", "complaint_resolved"),
    ("notification", "routing", "complaint_closed"),
    ("notification", "routing", "complaint_returned"),
    ("notification", "routing", "complaint_sla_warning"),
    ("notification", "routing", "complaint_sla_breached"),
    ("notification", "intake", "complaint_info_added"),
    ("reporting", "routing", "complaint_routed"),
    ("reporting", "notification", "notification_sent"),
    ("reporting", "notification", "notification_failed"),
    ("reporting", "intake", "complaint_info_added"),
    ("reporting", "intake", "complaint_rated"),
    ("reporting", "intake", "complaint_reopened"),
    ("reporting", "routing", "complaint_acknowledged"),
    ("reporting", "routing", "complaint_info_requested"),
    ("reporting", "routing", "complaint_responded"),
    ("reporting", "routing", "complaint_resolved"),
    ("reporting", "routing", "complaint_closed"),
    ("reporting", "routing", "complaint_returned"),
    ("reporting", "routing", "complaint_sla_warning"),
    ("reporting", "routing", "complaint_sla_breached"),
    ("reporting", "routing", "unit_stage_changed"),
)


def queue_type_arguments() -> dict:
    """`DUMAS_QUEUE_TYPE=quorum` declares quorum queues (clustered production brokers)."""
    queue_type = os.environ.get("DUMAS_QUEUE_TYPE", "classic")
    return {} if queue_type == "classic" else {"x-queue-type": queue_type}


def events_exchange(producer: str) -> Exchange:
    return Exchange(f"{producer}.events", type="topic", durable=True)


def consumer_queue_name(service: str, event_type: str) -> str:
    return f"{service}.{event_type}"


def retry_queue_name(queue: str, attempt: int, levels: int = len(RETRY_DELAYS_MS)) -> str:
    """Retry queue used after `attempt` failed attempts (1-based)."""
    return f"{queue}.retry.{min(attempt, levels)}"


def dead_queue_name(queue: str) -> str:
    return f"{queue}.dead"


class ConsumerQueue(Queue):
    """The main queue of a consumer; declaring it also declares its retry and parking queues,
    so the whole set exists after every (re)connection of the consumer."""

    companions: tuple[Queue, ...] = ()

    def bind(self, channel):
        # kombu copies only its declared attributes when binding; keep the companions.
        bound = super().bind(channel)
        bound.companions = self.companions
        return bound

    def declare(self, nowait=False, channel=None):
        chan = channel or self.channel
        for companion in self.companions:
            companion.bind(chan).declare(nowait=nowait)
        return super().declare(nowait=nowait, channel=channel)


def consumer_queue(
    service: str, producer: str, event_type: str, delays_ms: tuple[int, ...] = RETRY_DELAYS_MS
) -> ConsumerQueue:
    name = consumer_queue_name(service, event_type)
    extra = queue_type_arguments()
    queue = ConsumerQueue(
        name,
        exchange=events_exchange(producer),
        routing_key=event_type,
        durable=True,
        queue_arguments=dict(extra) or None,
    )
    retries = tuple(
        Queue(
            f"{name}.retry.{i + 1}",
            durable=True,
            queue_arguments={
                **extra,
                "x-message-ttl": delay,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": name,
            },
        )
        for i, delay in enumerate(delays_ms)
    )
    queue.companions = (*retries, Queue(dead_queue_name(name), durable=True,
                                        queue_arguments=dict(extra) or None))
    return queue
