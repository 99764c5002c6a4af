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
    "unsupported, malformed, invalid).",
    ["outcome"],
)
WHATSAPP_REJECTED = Counter(
    "dumas_intake_whatsapp_rejected_total",
    "WhatsApp webhook deliveries refused with 4xx, by reason (invalid_signature, invalid_json, "
    "invalid_payload, unsupported_media_type, payload_too_large).",
    ["reason"],
)

ATTACHMENTS = Counter(
    "dumas_attachments_total",
    "Evidence files offered to intake, by channel and outcome (accepted, or the refusal code: "
    "file_too_large, unsupported_file_type, invalid_image, image_too_large, invalid_pdf, ...).",
    ["channel", "outcome"],
)
ATTACHMENT_BYTES = Counter(
    "dumas_attachment_bytes_stored_total",
    "Bytes of accepted evidence files written to the blob store (after re-encoding).",
    ["channel"],
)
MEDIA_DOWNLOADS = Counter(
    "dumas_intake_whatsapp_media_downloads_total",
    "WhatsApp media downloads through the Cloud API, by outcome (attached, duplicate, retry, "
    "failed, refused).",
    ["outcome"],
)
ORPHANS_SWEPT = Counter(
    "dumas_attachment_orphans_swept_total",
    "Stored files no complaint refers to (an upload whose complaint was never saved), deleted.",
)
