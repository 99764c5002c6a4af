"""Prometheus metrics shared by every service (names prefixed `dumas_`).

Service-specific metrics live next to the service; these cover the common machinery.
"""

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

HANDLER_DURATION = Histogram(
    "dumas_event_handler_duration_seconds",
    "Time spent handling one event, by consuming service, event type and outcome.",
    ["service", "event_type", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HANDLER_RETRIES = Counter(
    "dumas_event_retries_total",
    "Events scheduled for another attempt after their handler failed.",
    ["service", "event_type"],
)
DEAD_LETTERED = Counter(
    "dumas_events_dead_lettered_total",
    "Events parked in a dead-letter queue, by reason.",
    ["service", "event_type", "reason"],
)
EVENT_BATCH_SIZE = Histogram(
    "dumas_event_batch_size",
    "Events handed to one worker of a batch consumer, by consuming service and event type "
    "(batches smaller than the maximum mean the queue was nearly empty).",
    ["service", "event_type"],
    buckets=(1, 2, 5, 10, 20, 30, 50, 100, 200),
)
EVENT_BATCH_FALLBACKS = Counter(
    "dumas_event_batch_fallbacks_total",
    "Batches whose handler failed, so their events were handled again one at a time.",
    ["service", "event_type"],
)
DUPLICATES_SKIPPED = Counter(
    "dumas_events_duplicate_total",
    "Redelivered events recognised by their id and skipped.",
    ["service", "event_type"],
)
OUTBOX_PUBLISHED = Counter(
    "dumas_outbox_published_total",
    "Events published from the transactional outbox (with broker confirmation).",
    ["service", "event_type"],
)
OUTBOX_BATCH_SIZE = Histogram(
    "dumas_outbox_batch_size",
    "Events published by one confirmed batch of the outbox relay (one claim, one confirm wait).",
    ["service"],
    buckets=(1, 2, 3, 5, 10, 20, 50, 100, 200),
)
OUTBOX_BACKLOG = Gauge(
    "dumas_outbox_backlog",
    "Events committed but not yet confirmed by the broker.",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "dumas_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox event (0 when empty).",
    ["service"],
)
OUTBOX_PUBLISH_ERRORS = Counter(
    "dumas_outbox_publish_errors_total",
    "Failed attempts to publish outbox events (the events stay and are retried).",
    ["service"],
)
RETENTION_DELETED = Counter(
    "dumas_retention_deleted_total",
    "Rows deleted by the shared retention sweep (shared/retention.py), by service and table "
    "(outbox: published rows past OUTBOX_RETENTION_HOURS; processed_events: idempotency records "
    "past PROCESSED_EVENTS_RETENTION_DAYS). intake's own tables: "
    "dumas_intake_retention_deleted_total.",
    ["service", "table"],
)
HTTP_REQUESTS = Counter(
    "dumas_http_requests_total",
    "HTTP requests answered, by service, route and status code.",
    ["service", "route", "status"],
)
HTTP_DURATION = Histogram(
    "dumas_http_request_duration_seconds",
    "HTTP request handling time, by service and route.",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HTTP_SLOT_WAITS = Counter(
    "dumas_http_slot_waits_total",
    "HTTP requests that waited for one of the service's HTTP worker slots (HTTP_MAX_WORKERS): "
    "the web side is at its share of the workers, the rest stay free for consumers and RPC.",
    ["service"],
)
HTTP_IN_WORKERS = Gauge(
    "dumas_http_requests_in_workers",
    "HTTP requests being handled by a worker now (at most HTTP_MAX_WORKERS).",
    ["service"],
)


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


class DeadLetterDepthCollector:
    """`dumas_dead_letter_messages{queue, service, event_type}`: messages parked per dead-letter
    queue, read from the broker when Prometheus scrapes (cached for `ttl` seconds so frequent
    scrapes cost one broker round trip per queue at most every `ttl`).

    `read_depths` returns {dead-letter queue name: messages} (shared.deadletters.depths). One
    service per deployment registers it (reporting), so the series are not duplicated.
    """

    def __init__(self, read_depths, ttl: float = 10.0, registry=None):
        import time

        from prometheus_client import REGISTRY

        self._read = read_depths
        self._ttl = ttl
        self._clock = time.monotonic
        self._registry = registry or REGISTRY
        self._cached: dict[str, int] | None = None
        self._read_at = 0.0
        self._registered = False

    def register(self) -> None:
        if not self._registered:
            self._registry.register(self)
            self._registered = True

    def unregister(self) -> None:
        if self._registered:
            self._registry.unregister(self)
            self._registered = False

    def describe(self):
        return []  # no samples at registration time (the broker may not be reachable yet)

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        now = self._clock()
        if self._cached is None or now - self._read_at > self._ttl:
            try:
                self._cached = self._read()
                self._read_at = now
            except Exception as exc:  # broker down: no series rather than a failed scrape
                import logging

                logging.getLogger(__name__).warning("dead-letter depths unavailable: %s", exc)
                self._cached, self._read_at = None, now
        family = GaugeMetricFamily(
            "dumas_dead_letter_messages",
            "Messages parked in a dead-letter queue (<service>.<event_type>.dead).",
            labels=["queue", "service", "event_type"],
        )
        for queue, depth in sorted((self._cached or {}).items()):
            service, _, rest = queue.partition(".")
            family.add_metric([queue, service, rest.removesuffix(".dead")], depth)
        yield family
