"""A complaint's lifecycle as intake keeps it, and the public view of it.

Statuses are those of ``shared.catalogue.STATUSES``, in that order, and only move forward:
events arrive out of order (retries, several producers), so a late ``complaint_received`` must not
turn a routed complaint back into a received one. The cost of a strictly monotonic lifecycle is
that going back (say from ``info_requested`` to ``acknowledged``) is not expressible; a new status
later in the order is the way to add such a step.

The public view (``GET /api/v1/complaints/<code>``) is built from an allow-list of fields, so
personal data or the complaint's text can never leak into it by a column being added.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.catalogue import CATEGORY_BY_CODE, STATUSES

STATUS_ORDER: tuple[str, ...] = tuple(STATUSES)
INITIAL_STATUS = "received"
_RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}

# Event type -> the status it means. Only complaint_received and complaint_routed have contracts
# in shared.contracts today; the others are the names reserved for the unit's actions and must
# match when their contracts are added. Events not listed (notification_sent, ...) change nothing.
EVENT_STATUS: dict[str, str] = {
    "complaint_received": "received",
    "complaint_routed": "routed",
    "complaint_acknowledged": "acknowledged",
    "complaint_info_requested": "info_requested",
    "complaint_responded": "responded",
    "complaint_resolved": "resolved",
    "complaint_closed": "closed",
}


def status_after(event_type: str) -> str | None:
    """The status an event stands for, or None when the event does not change the status."""
    return EVENT_STATUS.get(event_type)


def next_status(current: str | None, event_type: str) -> str | None:
    """The status once ``event_type`` is applied to a complaint in ``current`` (None: unknown yet).

    Monotonic: an event for an earlier status than ``current`` leaves ``current`` unchanged.
    """
    if current is not None and current not in _RANK:
        raise ValueError(f"unknown status {current!r}")
    target = status_after(event_type)
    if target is None:
        return current
    if current is None or _RANK[target] > _RANK[current]:
        return target
    return current


def seq_applies(last_seq: int | None, seq: int) -> bool:
    """Whether a lifecycle event numbered ``seq`` moves the current status (routing numbers the
    transitions of each complaint; the highest applied number wins, so a late or redelivered
    event never moves a complaint backwards, yet a reopened one can go back to in_progress)."""
    return seq > (last_seq or 0)


# What the complainant may do on the tracking page, by current status.
def can_answer(status: str) -> bool:
    return status == "info_requested"


def can_rate(status: str, rating: int | None) -> bool:
    return status == "resolved" and rating is None


def can_reopen(status: str, last_seq: int, reopen_requested_seq: int | None) -> bool:
    # One request per resolution: a new transition (higher seq) allows another.
    return status == "resolved" and (reopen_requested_seq or -1) < last_seq


def has_reached(status: str, milestone: str) -> bool:
    """Whether ``status`` is ``milestone`` or later in the lifecycle."""
    return _RANK[status] >= _RANK[milestone]


def public_view(complaint_record: Mapping[str, Any], history: Iterable[Mapping[str, Any]]) -> dict:
    """The public JSON for a tracking code: status, category, unit once routed, history.

    ``complaint_record`` needs ``tracking_code``, ``status``, ``category`` and, once routed,
    ``unit_code``/``unit_name``; anything else in it (names, phone numbers, the text) is ignored.
    ``history`` holds ``{"status", "occurred_at"}`` entries (aware or UTC-naive datetimes, or ISO
    strings); other keys are ignored. Times are returned as ISO 8601 in UTC, oldest first.
    """
    status = complaint_record["status"]
    category = complaint_record["category"]
    known_category = CATEGORY_BY_CODE.get(category)
    routed = has_reached(status, "routed") and bool(complaint_record.get("unit_code"))
    entries = [
        (at, entry_status)
        for _seq, at, entry_status in sorted(
            (
                (entry.get("seq") or 0, _utc(entry["occurred_at"]), entry["status"])
                for entry in history
            ),
            key=lambda triple: (triple[0], triple[1]),
        )
    ]
    due_at = complaint_record.get("due_at")
    return {
        "tracking_code": complaint_record["tracking_code"],
        "status": status,
        "status_label": STATUSES[status],
        "category": category,
        "category_name": known_category.name if known_category else category,
        "unit_code": complaint_record["unit_code"] if routed else None,
        "unit_name": complaint_record.get("unit_name") if routed else None,
        "expected_at": _utc(due_at).isoformat() if due_at else None,
        "history": [
            {"status": entry_status, "status_label": STATUSES[entry_status], "at": at.isoformat()}
            for at, entry_status in entries
        ],
    }


def _utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    # SQLite hands back naive datetimes; the services always store UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
