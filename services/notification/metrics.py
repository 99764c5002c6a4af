from prometheus_client import Counter

NOTIFICATIONS = Counter(
    "dumas_notifications_total",
    "Delivery attempts, by provider, audience and outcome (sent, retry, failed).",
    ["provider", "audience", "outcome"],
)
