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

from services.intake.domain.validation import storable_text

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
class InboundMedia:
    """An image, document, audio/voice note or video: the file is fetched later through the
    Cloud API's media endpoints with ``media_id`` (services/intake/attachments.py)."""

    message_id: str
    sender: str
    name: str | None
    kind: str  # image | document | audio | video
    media_id: str
    caption: str  # may be empty
    filename: str | None


MEDIA_KINDS = ("image", "document", "audio", "video")


@dataclass(frozen=True)
class Ignored:
    """Recorded, not turned into a complaint: a status update or an unsupported message type."""

    key: str
    kind: str  # "status" | "unsupported"
    detail: str


class PayloadInvalid(ValueError):
    pass


def parse(payload: object,
          delivery: str = "") -> list[InboundText | InboundMedia | Ignored]:
    """Every message and status in a webhook body, in order.

    A part that cannot be understood (an entry that is not an object, a message without an id,
    a change of another field or product) is not skipped silently: it comes back as
    ``Ignored(kind="malformed" | "unsupported")`` with its reason, keyed by ``delivery`` (a
    digest of the body, so Meta's retry of the same body gives the same keys) and its position.
    """
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        raise PayloadInvalid("not a WhatsApp Business Account webhook")
    items: list[InboundText | InboundMedia | Ignored] = []

    def refuse(where: str, kind: str, reason: str) -> None:
        items.append(Ignored(f"{kind}:{delivery}:{where}", kind, reason[:64]))

    if not isinstance(payload.get("entry"), list):
        refuse("entry", "malformed", "entry_not_a_list")
    for e, entry in enumerate(_list(payload.get("entry"))):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            refuse(f"entry[{e}]", "malformed", "changes_not_a_list")
        for c, change in enumerate(_list(changes)):
            where = f"entry[{e}].changes[{c}]"
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                refuse(where, "malformed", "change_without_value")
                continue
            field = change.get("field", "messages")
            product = value.get("messaging_product", "whatsapp")
            if field != "messages" or product != "whatsapp":
                refuse(where, "unsupported", f"field:{field}/{product}")
                continue
            names = {
                c.get("wa_id"): (c.get("profile") or {}).get("name")
                for c in _list(value.get("contacts"))
                if isinstance(c, dict) and isinstance(c.get("profile") or {}, dict)
            }
            for m, message in enumerate(_list(value.get("messages"))):
                if not isinstance(message, dict) or not _valid_id(message.get("id")):
                    refuse(f"{where}.messages[{m}]", "malformed", "message_without_id")
                    continue
                sender = message.get("from")
                sender = sender if isinstance(sender, str) else ""
                text = (message.get("text") or {}).get("body") if isinstance(
                    message.get("text"), dict) else None
                if message.get("type") == "text" and isinstance(text, str) and sender:
                    name = names.get(sender)
                    items.append(InboundText(
                        message["id"], sender,
                        storable_text(name) if isinstance(name, str) else None,
                        storable_text(text),
                    ))
                elif message.get("type") == "text":
                    items.append(Ignored(
                        f"msg:{message['id']}", "malformed", "text_without_body_or_sender"
                    ))
                elif (media := _media(message, sender, names)) is not None:
                    items.append(media)
                else:
                    items.append(Ignored(
                        f"msg:{message['id']}", "unsupported", str(message.get("type"))[:32]
                    ))
            for n, status in enumerate(_list(value.get("statuses"))):
                if isinstance(status, dict) and _valid_id(status.get("id")):
                    state = str(status.get("status"))[:32]
                    items.append(Ignored(f"status:{status['id']}:{state}", "status", state))
                else:
                    refuse(f"{where}.statuses[{n}]", "malformed", "status_without_id")
    return items


def _media(message: dict, sender: str, names: dict) -> InboundMedia | None:
    """An image, document, audio (voice note) or video message with a media id."""
    kind = message.get("type")
    media = message.get(kind) if kind in MEDIA_KINDS else None
    if not sender or not isinstance(media, dict) or not _valid_id(media.get("id")):
        return None
    name, caption, filename = names.get(sender), media.get("caption"), media.get("filename")
    return InboundMedia(
        message["id"], sender, storable_text(name) if isinstance(name, str) else None, kind,
        media["id"], storable_text(caption) if isinstance(caption, str) else "",
        filename[:200] if isinstance(filename, str) else None,
    )


def wants_new_complaint(text: str) -> tuple[bool, str]:
    """Whether a follow-up asks for a new complaint ("baru: ..."), and the text without that."""
    match = _NEW_COMPLAINT.match(text)
    if not match:
        return False, text
    return True, text[match.end():].strip()


def _valid_id(value) -> bool:
    """Meta's ids (wamid....) are short printable text; anything else cannot be a key."""
    return isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable()


def _list(value) -> list:
    return value if isinstance(value, list) else []
