from prometheus_client import Counter

ROUTED = Counter(
    "dumas_complaints_routed_total",
    "Complaints routed, by receiving unit and the rule that decided.",
    ["unit", "rule"],
)
