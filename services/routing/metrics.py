from prometheus_client import Counter, Gauge

ROUTED = Counter(
    "dumas_complaints_routed_total",
    "Complaints routed, by receiving unit and the rule that decided.",
    ["unit", "rule"],
)
OPEN = Gauge(
    "dumas_complaints_open",
    "Complaints not closed, by handling unit and status (measured when scraped).",
    ["unit", "status"],
)
ACTIONS = Counter(
    "dumas_complaint_actions_total",
    "Lifecycle actions taken in the inbox, by action and role.",
    ["action", "role"],
)
SLA_WARNINGS = Counter(
    "dumas_sla_warnings_total", "SLA warnings issued, by clock (response, resolution).", ["clock"]
)
SLA_BREACHES = Counter(
    "dumas_sla_breaches_total", "SLA breaches escalated, by clock (response, resolution).",
    ["clock"],
)
AUTO_CLOSED = Counter(
    "dumas_complaints_auto_closed_total",
    "Resolved complaints closed after the complainant's 10 working days passed.",
)
STAGE_CHANGES = Counter(
    "dumas_unit_stage_changes_total", "Rollout stage changes, by new stage.", ["stage"]
)
INBOX_EXPORTS = Counter(
    "dumas_inbox_exports_total", "Inbox lists exported as CSV, by role.", ["role"]
)
THUMBNAILS = Counter(
    "dumas_inbox_thumbnails_total",
    "Inbox thumbnails served, by outcome: made (the photo decoded and resized) or hit (cached).",
    ["outcome"],
)
