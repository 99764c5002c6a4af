"""Valid wire events for the consumer tests, each for a new complaint."""

import uuid
from datetime import UTC, datetime

from shared.contracts import Event, build_event, load_event


def routed_event() -> dict:
    """A `complaint_routed` envelope (KUA Merigi, live)."""
    complaint_id = str(uuid.uuid4())
    return build_event("complaint_routed", {
        "complaint_id": complaint_id, "tracking_code": "DMS-TEST-CODE-0004",
        "unit_code": "kua-merigi", "unit_name": "KUA Merigi", "unit_type": "kua",
        "stage": "live", "rule": "kecamatan", "reason": "Uji", "category": "nikah_rujuk",
        "channel": "web", "confidentiality": "public", "kecamatan_code": "17.08.05",
        "routed_at": datetime.now(UTC), "due_at": datetime.now(UTC), "status": "routed",
        "seq": 1,
    }, correlation_id=complaint_id)


def received_event(**overrides) -> Event:
    """A loaded `complaint_received` event (kecamatan Merigi, one attachment reference); any
    field can be overridden, `complaint_id` too."""
    complaint_id = overrides.pop("complaint_id", None) or str(uuid.uuid4())
    return load_event(build_event("complaint_received", {
        "complaint_id": complaint_id, "tracking_code": "DMS-7KQ4-MX9T-2BH3", "channel": "web",
        "category": "nikah_rujuk",
        "description": "Pendaftaran nikah di KUA Merigi sudah dua minggu belum diproses.",
        "kecamatan_code": "17.08.05", "desa_code": None, "unit_hint": None,
        "unit_hint_trusted": False, "confidentiality": "public", "contact_channels": ["email"],
        "received_at": datetime.now(UTC), "attachments": [
            {"sha256": "a" * 64, "size": 10, "media_type": "image/jpeg", "name": "foto.jpg"}],
        **overrides,
    }, correlation_id=complaint_id))
