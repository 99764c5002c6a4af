"""WhatsApp Business Cloud API webhooks: signature check and the payload shape Meta documents.

``POST`` bodies look like::

    {"object": "whatsapp_business_account",
     "entry": [{"id": "<WABA id>", "changes": [{"field": "messages", "value": {
         "messaging_product": "whatsapp",
         "metadata": {"display_phone_number": "...", "phone_number_id": "..."},
         "contacts": [{"profile": {"name": "Siti"}, "wa_id": "6281234567890"}],
         "messages": [{"from": "6281234567890", "id": "wamid.XXX", "timestamp": "1700000000",
                       "type": "text", "text": {"body": "..."}}],
         "statuses": [{"id": "wamid.YYY", "status": "delivered", ...}]}}]}]}
"""

import hashlib
import hmac
import re
from dataclasses import dataclass

# A follow-up starting like this opens a new complaint instead of adding to the open one.
_NEW_COMPLAINT = re.compile(r"^\s*(#?baru|pengaduan\s+baru|aduan\s+baru)\b[\s:,.-]*", re.I)


def signature_valid(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the app secret>``."""
    if not header or not app_secret or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header[len("sha256="):].strip().lower(), expected)


@dataclass(frozen=True)
class InboundText:
    message_id: str
    sender: str  # wa_id, digits with country code
    name: str | None
    text: str


@dataclass(frozen=True)
class Ignored:
    """Recorded, not turned into a complaint: a status update or an unsupported message type."""

    key: str
    kind: str  # "status" | "unsupported"
    detail: str


class PayloadInvalid(ValueError):
    pass


def parse(payload: object) -> list[InboundText | Ignored]:
    """Every message and status in a webhook body, in order."""
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        raise PayloadInvalid("not a WhatsApp Business Account webhook")
    items: list[InboundText | Ignored] = []
    for entry in _list(payload.get("entry")):
        for change in _list(entry.get("changes") if isinstance(entry, dict) else None):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            names = {
                c.get("wa_id"): (c.get("profile") or {}).get("name")
                for c in _list(value.get("contacts"))
                if isinstance(c, dict)
            }
            for message in _list(value.get("messages")):
                if not isinstance(message, dict) or not isinstance(message.get("id"), str):
                    continue
                sender = str(message.get("from") or "")
                text = (message.get("text") or {}).get("body") if isinstance(
                    message.get("text"), dict) else None
                if message.get("type") == "text" and isinstance(text, str) and sender:
                    name = names.get(sender)
                    items.append(InboundText(
                        message["id"], sender, name if isinstance(name, str) else None, text
                    ))
                else:
                    items.append(Ignored(
                        f"msg:{message['id']}", "unsupported", str(message.get("type"))[:32]
                    ))
            for status in _list(value.get("statuses")):
                if isinstance(status, dict) and isinstance(status.get("id"), str):
                    state = str(status.get("status"))[:32]
                    items.append(Ignored(f"status:{status['id']}:{state}", "status", state))
    return items


def wants_new_complaint(text: str) -> tuple[bool, str]:
    """Whether a follow-up asks for a new complaint ("baru: ..."), and the text without that."""
    match = _NEW_COMPLAINT.match(text)
    if not match:
        return False, text
    return True, text[match.end():].strip()


def _list(value) -> list:
    return value if isinstance(value, list) else []
