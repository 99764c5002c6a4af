"""The complaint projection: how each event changes a complaint's reporting facts.

Events can arrive in any order (separate queues, redeliveries, rebuilds), so every rule is
order-tolerant:
- the status is the one of the highest lifecycle `seq` applied (complaint_received is seq 0);
- moments keep the earliest value seen (first response, resolution, first routing);
- the unit is the one of the latest routing; counters count distinct events (the event store's
  primary key makes each event count once);
- facts from `complaint_received` fill gaps without overriding what later events said.
"""

from collections.abc import Mapping
from typing import Any

# Every event reporting consumes: (producer, event type).
HANDLED_EVENTS = (
    ("intake", "complaint_received"),
    ("intake", "complaint_info_added"),
    ("intake", "complaint_rated"),
    ("intake", "complaint_reopened"),
    ("routing", "complaint_routed"),
    ("routing", "complaint_acknowledged"),
    ("routing", "complaint_info_requested"),
    ("routing", "complaint_responded"),
    ("routing", "complaint_resolved"),
    ("routing", "complaint_closed"),
    ("routing", "complaint_returned"),
    ("routing", "complaint_sla_warning"),
    ("routing", "complaint_sla_breached"),
    ("routing", "unit_stage_changed"),
    ("notification", "notification_sent"),
    ("notification", "notification_failed"),
)

# Events about a unit, not a complaint: stored, but no complaint facts change.
NON_COMPLAINT_EVENTS = frozenset({"unit_stage_changed"})

# Unit actions that count as the unit's first response to the complainant.
FIRST_RESPONSE_EVENTS = frozenset(
    {"complaint_acknowledged", "complaint_responded", "complaint_resolved"}
)
LIFECYCLE_EVENTS = frozenset(
    {
        "complaint_routed",
        "complaint_acknowledged",
        "complaint_info_requested",
        "complaint_responded",
        "complaint_resolved",
        "complaint_closed",
        "complaint_returned",
    }
)
DESCRIPTIVE = ("tracking_code", "channel", "category", "kecamatan_code", "confidentiality")
COUNTERS = (
    "notifications_sent",
    "notifications_failed",
    "returned_count",
    "reroute_count",
    "reopened_count",
    "info_added_count",
)


def _first(current, new):
    return current if current is not None else new


def _earliest(current, new):
    if new is None:
        return current
    return new if current is None or new < current else current


def project(current: Mapping[str, Any] | None, event_type: str, data: Mapping[str, Any]) -> dict:
    """Return the complaint's facts after `event_type` (with its loaded `data`) is applied."""
    row = dict(current or {})
    row.setdefault("complaint_id", data["complaint_id"])
    for key in COUNTERS:
        row[key] = row.get(key) or 0
    if row.get("status") is None:
        row["status"] = "received"
    if row.get("status_seq") is None:
        row["status_seq"] = 0
    for key in ("sla_warned", "sla_breached"):
        row[key] = bool(row.get(key))

    if event_type in LIFECYCLE_EVENTS:
        seq = data.get("seq", 1)
        if seq > row["status_seq"]:
            row["status"] = data.get("status", "routed")
            row["status_seq"] = seq

    if event_type == "complaint_received":
        for key in DESCRIPTIVE:
            row[key] = _first(row.get(key), data.get(key))
        row["received_at"] = _first(row.get("received_at"), data["received_at"])
    elif event_type == "complaint_routed":
        for key in DESCRIPTIVE:
            row[key] = _first(row.get(key), data.get(key))
        # The latest routing decides the unit, whatever order the events arrive in;
        # `routed_at` keeps the earliest routing (time to first assignment).
        routed_at = data["routed_at"]
        latest = row.get("last_routed_at")
        if latest is None or routed_at >= latest:
            row["unit_code"] = data["unit_code"]
            row["rule"] = data["rule"]
            row["due_at"] = data["due_at"]
            row["last_routed_at"] = routed_at
        row["routed_at"] = _earliest(row.get("routed_at"), routed_at)
        if data.get("seq", 1) > 1:
            row["reroute_count"] += 1
    elif event_type in FIRST_RESPONSE_EVENTS or event_type == "complaint_info_requested":
        if event_type in FIRST_RESPONSE_EVENTS:
            row["first_response_at"] = _earliest(row.get("first_response_at"), data["at"])
        if event_type == "complaint_resolved":
            row["resolved_at"] = _earliest(row.get("resolved_at"), data["at"])
    elif event_type == "complaint_closed":
        row["closed_at"] = _earliest(row.get("closed_at"), data["at"])
    elif event_type == "complaint_returned":
        row["returned_count"] += 1
    elif event_type == "complaint_sla_warning":
        row["sla_warned"] = True
    elif event_type == "complaint_sla_breached":
        row["sla_breached"] = True
    elif event_type == "complaint_rated":
        # The latest rating counts (a complainant may rate again after a reopening).
        rated_at = row.get("rated_at")
        if rated_at is None or data["at"] >= rated_at:
            row["rating"] = data["rating"]
            row["rated_at"] = data["at"]
    elif event_type == "complaint_reopened":
        row["reopened_count"] += 1
    elif event_type == "complaint_info_added":
        row["info_added_count"] += 1
    elif event_type == "notification_sent":
        row["notifications_sent"] += 1
        stamp = "unit_notified_at" if data["audience"] == "unit" else "complainant_notified_at"
        row[stamp] = _earliest(row.get(stamp), data["sent_at"])
    elif event_type == "notification_failed":
        row["notifications_failed"] += 1
    return row
