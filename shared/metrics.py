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


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
