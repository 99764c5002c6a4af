from prometheus_client import Counter

RECEIVED = Counter(
    "dumas_complaints_received_total",
    "Complaint submissions answered by intake, by channel and outcome (accepted, invalid).",
    ["channel", "outcome"],
)

RATE_LIMITED = Counter(
    "dumas_intake_rate_limited_total",
    "Requests refused with 429 by intake's per-source rate limit, by source kind.",
    ["source"],
)
DUPLICATES = Counter(
    "dumas_intake_duplicates_total",
    "Submissions linked to an earlier complaint of the same contact (near-identical text).",
    ["channel"],
)
IDEMPOTENT_REPLAYS = Counter(
    "dumas_intake_idempotent_replays_total",
    "Requests answered from the idempotency store (retries), by channel.",
    ["channel"],
)
WHATSAPP_ITEMS = Counter(
    "dumas_intake_whatsapp_items_total",
    "WhatsApp webhook items by outcome (complaint, info_added, duplicate_delivery, status, "
    "unsupported, invalid).",
    ["outcome"],
)
