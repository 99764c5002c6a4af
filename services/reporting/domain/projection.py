"""The complaint projection: how each event changes a complaint's reporting facts.

Events can arrive in any order (separate queues, redeliveries, rebuilds), so every rule is
order-tolerant: a status only moves forward, timestamps keep the first value seen, and facts
from `complaint_received` fill gaps without overriding what later events said.
"""

from collections.abc import Mapping
from typing import Any

from shared.catalogue import STATUSES

STATUS_RANK = {status: rank for rank, status in enumerate(STATUSES)}

EVENT_STATUS = {
    "complaint_received": "received",
    "complaint_routed": "routed",
}

HANDLED_EVENTS = (
    ("intake", "complaint_received"),
    ("routing", "complaint_routed"),
    ("notification", "notification_sent"),
    ("notification", "notification_failed"),
)


def _later_status(current: str | None, new: str | None) -> str | None:
    if new is None:
        return current
    if current is None or STATUS_RANK[new] > STATUS_RANK[current]:
        return new
    return current


def _first(current, new):
    return current if current is not None else new


def project(current: Mapping[str, Any] | None, event_type: str, data: Mapping[str, Any]) -> dict:
    """Return the complaint's facts after `event_type` (with its loaded `data`) is applied."""
    row = dict(current or {})
    row.setdefault("complaint_id", data["complaint_id"])
    row.setdefault("notifications_sent", 0)
    row.setdefault("notifications_failed", 0)
    row["status"] = _later_status(row.get("status"), EVENT_STATUS.get(event_type))
    if event_type == "complaint_received":
        for key in ("tracking_code", "channel", "category", "kecamatan_code", "confidentiality"):
            row[key] = _first(row.get(key), data.get(key))
        row["received_at"] = _first(row.get("received_at"), data["received_at"])
    elif event_type == "complaint_routed":
        for key in ("tracking_code", "channel", "category", "kecamatan_code", "confidentiality"):
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
        first = row.get("routed_at")
        row["routed_at"] = routed_at if first is None else min(first, routed_at)
    elif event_type == "notification_sent":
        row["notifications_sent"] += 1
        stamp = "unit_notified_at" if data["audience"] == "unit" else "complainant_notified_at"
        row[stamp] = _first(row.get(stamp), data["sent_at"])
    elif event_type == "notification_failed":
        row["notifications_failed"] += 1
    if row["status"] is None:
        # Only notifications seen so far: the complaint exists, its status is at least received.
        row["status"] = "received"
    return row
