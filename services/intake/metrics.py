from prometheus_client import Counter

RECEIVED = Counter(
    "dumas_complaints_received_total",
    "Complaint submissions answered by intake, by channel and outcome (accepted, invalid).",
    ["channel", "outcome"],
)
