"""Valid wire events for the consumer tests, each for a new complaint."""

import uuid
from datetime import UTC, datetime

from shared.contracts import build_event


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
