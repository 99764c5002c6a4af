"""Who is told what, and how, when a complaint is routed.

The planner decides audiences, logical channels (email | sms | whatsapp) and template contexts.
It never sees contact details: intake holds those, and the sender looks them up at send time.
Which provider carries a logical channel is configuration of the service, not planner logic.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from services.notification.domain.dates import to_wib
from services.notification.domain.privacy import redact
from shared.catalogue import CATEGORY_BY_CODE, CHANNELS

LOGICAL_CHANNELS: tuple[str, ...] = ("email", "sms", "whatsapp")
DEFAULT_UNIT_CHANNEL = "email"
COMPLAINANT = "complainant"

# Fixed forever: changing it would give a redelivered event new delivery ids (duplicate messages).
DELIVERY_NAMESPACE = uuid.UUID("6f1d7e2a-4b0c-5d3e-9a8f-2c7b1e0d4a56")


@dataclass(frozen=True)
class PlannedDelivery:
    delivery_id: str
    audience: str  # "unit" | "complainant"
    recipient: str  # "unit:<unit_code>" | "complainant"
    channel: str  # logical channel: "email" | "sms" | "whatsapp"
    template_event: str
    context: dict[str, Any]  # JSON-ready; already redacted for the audience


def delivery_id_for(
    cause_event_id: uuid.UUID | str, audience: str, recipient: str, channel: str
) -> str:
    """The same cause, audience, recipient and channel always give the same id."""
    cause = uuid.UUID(str(cause_event_id))  # normalises case and braces of textual ids
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{cause}|{audience}|{recipient}|{channel}"))


def unit_recipient(unit_code: str) -> str:
    return f"unit:{unit_code}"


def complainant_channel(channel: str, contact_channels: Sequence[str]) -> str | None:
    """How to reach a complainant, or None when they left no way to be reached.

    A WhatsApp answer is only possible as a reply to someone who wrote to us there (WhatsApp
    Business allows free-form messages only inside the conversation the person opened), so a
    WhatsApp number given on a web form is not used.
    """
    if channel == "whatsapp" and "whatsapp" in contact_channels:
        return "whatsapp"
    if "email" in contact_channels:
        return "email"
    if "phone" in contact_channels:
        return "sms"
    return None


def tracking_url(public_base_url: str, tracking_code: str) -> str:
    return f"{public_base_url.rstrip('/')}/lacak/{quote(tracking_code, safe='')}"


def inbox_url(public_base_url: str, complaint_id: uuid.UUID | str) -> str:
    return f"{public_base_url.rstrip('/')}/inbox/{quote(str(complaint_id), safe='')}"


def _iso(value: datetime | str) -> str:
    to_wib(value)  # rejects naive times here rather than when the message is rendered
    return value if isinstance(value, str) else value.isoformat()


def plan_deliveries(
    routed: Mapping[str, Any],
    cause_event_id: uuid.UUID | str,
    *,
    public_base_url: str,
    unit_channel: str = DEFAULT_UNIT_CHANNEL,
) -> list[PlannedDelivery]:
    """Deliveries caused by one ``complaint_routed`` event (its loaded ComplaintRoutedV1 data).

    ``unit_channel`` is the unit's preferred logical channel. The unit is always told; the
    complainant gets one message (received + tracking code + forwarded to + due date) when they
    left a way to be reached.
    """
    if unit_channel not in LOGICAL_CHANNELS:
        raise ValueError(f"unknown logical channel {unit_channel!r}")
    confidential = routed["confidentiality"] == "confidential"
    due_at = _iso(routed["due_at"])

    def planned(audience: str, recipient: str, channel: str, context: dict) -> PlannedDelivery:
        return PlannedDelivery(
            delivery_id=delivery_id_for(cause_event_id, audience, recipient, channel),
            audience=audience,
            recipient=recipient,
            channel=channel,
            template_event="complaint_routed",
            context=redact(audience, context),
        )

    unit_context = {
        "confidential": confidential,
        "tracking_code": routed["tracking_code"],
        "unit_name": routed["unit_name"],
        "category_name": CATEGORY_BY_CODE[routed["category"]].name,
        "channel_name": CHANNELS[routed["channel"]],
        "summary": routed.get("summary") or "",
        "routed_at": _iso(routed["routed_at"]),
        "due_at": due_at,
        "inbox_url": inbox_url(public_base_url, routed["complaint_id"]),
    }
    deliveries = [planned("unit", unit_recipient(routed["unit_code"]), unit_channel, unit_context)]

    channel = complainant_channel(routed["channel"], routed.get("contact_channels") or ())
    if channel is not None:
        complainant_context = {
            "confidential": confidential,
            "tracking_code": routed["tracking_code"],
            "tracking_url": tracking_url(public_base_url, routed["tracking_code"]),
            "unit_name": routed["unit_name"],
            "due_at": due_at,
        }
        deliveries.append(planned(COMPLAINANT, COMPLAINANT, channel, complainant_context))
    return deliveries
