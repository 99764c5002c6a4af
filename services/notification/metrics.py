from prometheus_client import Counter, Gauge, Histogram

NOTIFICATIONS = Counter(
    "dumas_notifications_total",
    "Delivery attempts, by provider, audience and outcome (sent, retry, failed).",
    ["provider", "audience", "outcome"],
)
PROVIDER_SECONDS = Histogram(
    "dumas_notification_provider_seconds",
    "Time a provider took to accept or refuse one message.",
    ["provider", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter(
    "dumas_notification_retries_total",
    "Deliveries scheduled for another attempt after a temporary failure.",
    ["provider", "audience"],
)
FALLBACKS = Counter(
    "dumas_notification_fallbacks_total",
    "Deliveries that failed on one channel and were planned on the next.",
    ["audience", "from_channel", "to_channel"],
)
PARKED = Counter(
    "dumas_notification_parked_total",
    "Deliveries failed for good (notification_failed published), by provider and audience.",
    ["provider", "audience"],
)
PENDING = Gauge(
    "dumas_notification_pending_deliveries",
    "Deliveries planned and not yet sent or failed (includes those waiting for a retry).",
)
OLDEST_PENDING = Gauge(
    "dumas_notification_oldest_pending_seconds",
    "Age of the oldest pending delivery (0 when none).",
)
SEND_SLOTS_IN_USE = Gauge(
    "dumas_notification_send_slots_in_use",
    "Sends in flight out of NOTIFICATION_SEND_CONCURRENCY (always at the limit: deliveries wait "
    "for the sweep; raise the concurrency or add replicas).",
)
MARK_SENT_BATCH_SIZE = Histogram(
    "dumas_notification_mark_sent_batch_size",
    "Deliveries marked sent (with their notification_sent events) in one transaction.",
    buckets=(1, 2, 3, 5, 10, 20, 50),
)
CONTACTS_PER_RPC = Histogram(
    "dumas_notification_contacts_per_rpc",
    "Complainant contacts looked up in one intake.get_contacts call.",
    buckets=(1, 2, 3, 5, 10, 20, 50, 100),
)
