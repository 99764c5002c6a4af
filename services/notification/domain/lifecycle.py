"""Who is told what for every event of a complaint's life after routing.

Lifecycle events are small (routing's unit actions carry the complaint id, the unit code and the
new status), so notification keeps its own view of each routed complaint: what the templates
need (tracking code, unit, category, due date) and what the channel choice needs (how the
complainant came and which kinds of contact they left). It never holds contact details.

Rules (the issue "Notifications that arrive once"):
- complaint_routed: the unit is told once (a new complaint, or a returned complaint re-routed
  to it); the complainant gets at most one combined "received + forwarded to X" message.
- acknowledged, info_requested, responded, resolved, closed: the complainant only, in the channel
  they came from when possible; nothing when they left no contact; an event older (lower seq)
  than one already announced is not announced (it would tell them something out of date).
- complaint_returned: nobody yet; the reason is kept for the re-routed unit's message.
- complaint_info_added: the unit handling it ("information received").
- complaint_sla_warning: the unit; complaint_sla_breached: the unit, its head and the desk.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from services.notification.domain.planner import (
    COMPLAINANT,
    DEFAULT_UNIT_CHANNEL,
    LOGICAL_CHANNELS,
    PlannedDelivery,
    complainant_channel,
    delivery_id_for,
    inbox_url,
    plan_deliveries,
    tracking_url,
    unit_recipient,
)
from services.notification.domain.privacy import redact
from shared.catalogue import CATEGORY_BY_CODE
from shared.workdays import add_working_days

DESK_UNIT = "kankemenag-kepahiang"
# WhatsApp Business: free-form (text) messages only within 24 h of the person's last message.
REPLY_WINDOW = timedelta(hours=24)

COMPLAINANT_EVENTS: dict[str, str] = {
    # event type -> template event
    "complaint_acknowledged": "complaint_acknowledged",
    "complaint_info_requested": "info_requested",
    "complaint_responded": "complaint_responded",
    "complaint_resolved": "complaint_resolved",
    "complaint_closed": "complaint_closed",
}
HANDLED_EVENTS: tuple[str, ...] = (
    "complaint_routed",
    *COMPLAINANT_EVENTS,
    "complaint_returned",
    "complaint_info_added",
    "complaint_sla_warning",
    "complaint_sla_breached",
)


class NotYetRouted(Exception):
    """A lifecycle event arrived before the complaint_routed it follows: retry later."""


@dataclass(frozen=True)
class Policy:
    """Service configuration the planner needs (no I/O)."""

    public_base_url: str
    unit_channel: str = DEFAULT_UNIT_CHANNEL
    # Working days (shared/workdays.py) a complainant has to answer a question, and to rate or
    # reopen after an answer (routing closes a resolved complaint after the same 10 working
    # days). routing's events do not carry these dates (yet); they are configuration here.
    answer_within_working_days: int = 5
    feedback_within_working_days: int = 10
    desk_unit: str = DESK_UNIT

    def __post_init__(self):
        if self.unit_channel not in LOGICAL_CHANNELS:
            raise ValueError(f"unknown logical channel {self.unit_channel!r}")


@dataclass(frozen=True)
class ComplaintView:
    """notification's memory of one routed complaint (no personal data)."""

    complaint_id: str
    tracking_code: str
    unit_code: str
    unit_name: str
    category: str
    channel: str
    confidentiality: str
    contact_channels: tuple[str, ...]
    due_at: datetime
    routed_seq: int
    notified_seq: int = 0  # highest seq announced to the complainant
    return_reason: str = ""
    return_seq: int = 0
    last_inbound_at: datetime | None = None  # last WhatsApp message from the complainant


@dataclass(frozen=True)
class Plan:
    deliveries: list[PlannedDelivery] = field(default_factory=list)
    view: ComplaintView | None = None  # the view to store (None: unchanged)
    # delivery id -> end of the WhatsApp reply window for that delivery, when one is open
    reply_windows: dict[str, datetime] = field(default_factory=dict)


def _iso(value: datetime) -> str:
    return value.isoformat()


def plan_event(
    event_type: str,
    data: Mapping[str, Any],
    cause_event_id: str,
    view: ComplaintView | None,
    policy: Policy,
) -> Plan:
    """The deliveries one event causes, given what is known of its complaint."""
    if event_type == "complaint_routed":
        return _routed(data, cause_event_id, view, policy)
    if view is None:
        raise NotYetRouted(f"{event_type} for complaint {data['complaint_id']} before routing")
    if event_type in COMPLAINANT_EVENTS:
        return _to_complainant(event_type, data, cause_event_id, view, policy)
    if event_type == "complaint_returned":
        if data["seq"] <= view.return_seq:
            return Plan()
        return Plan(view=replace(view, return_reason=data["reason"], return_seq=data["seq"]))
    if event_type == "complaint_info_added":
        return _info_added(data, cause_event_id, view, policy)
    if event_type in ("complaint_sla_warning", "complaint_sla_breached"):
        return _sla(event_type, data, cause_event_id, view, policy)
    raise ValueError(f"notification does not handle {event_type}")


def _routed(data, cause_event_id, view, policy) -> Plan:
    seq = data.get("seq", 1)
    if view is not None and seq <= view.routed_seq:
        return Plan()  # an older routing, already superseded: its unit has been told since
    new_view = ComplaintView(
        complaint_id=str(data["complaint_id"]),
        tracking_code=data["tracking_code"],
        unit_code=data["unit_code"],
        unit_name=data["unit_name"],
        category=data["category"],
        channel=data["channel"],
        confidentiality=data["confidentiality"],
        contact_channels=tuple(data.get("contact_channels") or ()),
        due_at=data["due_at"],
        routed_seq=seq,
        notified_seq=max(seq, view.notified_seq if view else 0),
        return_reason=view.return_reason if view else "",
        return_seq=view.return_seq if view else 0,
        last_inbound_at=(
            view.last_inbound_at if view
            else data["routed_at"] if data["channel"] == "whatsapp" else None
        ),
    )
    planned = plan_deliveries(
        data, cause_event_id, public_base_url=policy.public_base_url,
        unit_channel=policy.unit_channel,
    )
    if view is not None and view.unit_code != data["unit_code"]:
        # Re-routed: the new unit hears why it gets a complaint another unit returned.
        reason = view.return_reason if view.return_seq and view.return_seq < seq else ""
        context = {
            "confidential": data["confidentiality"] == "confidential",
            "tracking_code": data["tracking_code"],
            "unit_name": data["unit_name"],
            "inbox_url": inbox_url(policy.public_base_url, data["complaint_id"]),
            "previous_unit_name": view.unit_name,
            "return_reason": reason,
            "category_name": CATEGORY_BY_CODE[data["category"]].name,
            "summary": data.get("summary") or "",
            "due_at": _iso(data["due_at"]),
        }
        planned = [
            replace(p, template_event="complaint_returned_rerouted",
                    context=redact("unit", context))
            if p.audience == "unit" else p
            for p in planned
        ]
    return Plan(planned, new_view, _windows(planned, new_view))


def _windows(planned: list[PlannedDelivery], view: ComplaintView) -> dict[str, datetime]:
    if view.last_inbound_at is None:
        return {}
    until = view.last_inbound_at + REPLY_WINDOW
    return {p.delivery_id: until for p in planned
            if p.audience == COMPLAINANT and p.channel == "whatsapp"}


def _to_complainant(event_type, data, cause_event_id, view, policy) -> Plan:
    seq = data["seq"]
    if seq <= view.notified_seq:
        return Plan()  # out of date: something newer has been announced already
    new_view = replace(view, notified_seq=seq)
    channel = complainant_channel(view.channel, view.contact_channels)
    if channel is None:
        return Plan(view=new_view)
    at: datetime = data["at"]
    context: dict[str, Any] = {
        "confidential": view.confidentiality == "confidential",
        "tracking_code": view.tracking_code,
        "tracking_url": tracking_url(policy.public_base_url, view.tracking_code),
    }
    if event_type == "complaint_acknowledged":
        context.update(unit_name=view.unit_name, due_at=_iso(view.due_at))
    elif event_type == "complaint_info_requested":
        context.update(unit_name=view.unit_name, question=data["question"],
                       answer_by=_iso(add_working_days(at, policy.answer_within_working_days)))
    elif event_type == "complaint_responded":
        context.update(unit_name=view.unit_name, response=data["response"],
                       feedback_until=_iso(
                           add_working_days(at, policy.feedback_within_working_days)))
    elif event_type == "complaint_resolved":
        context.update(unit_name=view.unit_name, resolution=data["resolution"],
                       resolved_at=_iso(at), feedback_until=_iso(
                           add_working_days(at, policy.feedback_within_working_days)))
    elif event_type == "complaint_closed":
        context.update(closed_at=_iso(at), closing_note=data["reason"])
    delivery = PlannedDelivery(
        delivery_id=delivery_id_for(cause_event_id, COMPLAINANT, COMPLAINANT, channel),
        audience=COMPLAINANT,
        recipient=COMPLAINANT,
        channel=channel,
        template_event=COMPLAINANT_EVENTS[event_type],
        context=redact(COMPLAINANT, context),
    )
    return Plan([delivery], new_view, _windows([delivery], new_view))


def _unit_delivery(cause_event_id, recipient, template, context, policy) -> PlannedDelivery:
    return PlannedDelivery(
        delivery_id=delivery_id_for(cause_event_id, "unit", recipient, policy.unit_channel),
        audience="unit",
        recipient=recipient,
        channel=policy.unit_channel,
        template_event=template,
        context=redact("unit", context),
    )


def _unit_context(view: ComplaintView, policy: Policy, **fields) -> dict[str, Any]:
    return {
        "tracking_code": view.tracking_code,
        "unit_name": view.unit_name,
        "inbox_url": inbox_url(policy.public_base_url, view.complaint_id),
        **fields,
    }


def _info_added(data, cause_event_id, view, policy) -> Plan:
    new_view = view
    if data["channel"] == "whatsapp" and (
        view.last_inbound_at is None or data["at"] > view.last_inbound_at
    ):
        new_view = replace(view, last_inbound_at=data["at"])
    context = _unit_context(view, policy, received_at=_iso(data["at"]),
                            due_at=_iso(view.due_at))
    delivery = _unit_delivery(cause_event_id, unit_recipient(view.unit_code), "info_received",
                              context, policy)
    return Plan([delivery], new_view if new_view is not view else None)


def _sla(event_type, data, cause_event_id, view, policy) -> Plan:
    if data["unit_code"] != view.unit_code:
        return Plan()  # the clock of a unit that no longer has the complaint
    context = _unit_context(
        view, policy, category_name=CATEGORY_BY_CODE[view.category].name,
        due_at=_iso(data["due_at"]),
    )
    if event_type == "complaint_sla_warning":
        return Plan([_unit_delivery(cause_event_id, unit_recipient(view.unit_code),
                                    "sla_warning", context, policy)])
    recipients = [unit_recipient(view.unit_code), head_recipient(view.unit_code)]
    if view.unit_code != policy.desk_unit:
        recipients.append(unit_recipient(policy.desk_unit))
    return Plan([_unit_delivery(cause_event_id, r, "sla_breach", context, policy)
                 for r in recipients])


def head_recipient(unit_code: str) -> str:
    return f"head:{unit_code}"
