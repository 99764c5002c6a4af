"""Helpers for routing's inbox tests: staff accounts, received complaints, API sessions."""

import uuid
from datetime import UTC, datetime

import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from services.routing import accounts
from services.routing.db import complaints
from shared.contracts import build_event
from support import amqp
from support.wait import wait_for

PASSWORD = "kata-sandi-panjang"
DESK = "kankemenag-kepahiang"

STAFF = {
    # username: (role, unit)
    "op.merigi": ("unit_operator", "kua-merigi"),
    "kepala.merigi": ("unit_head", "kua-merigi"),
    "op.kepahiang": ("unit_operator", "kua-kepahiang"),
    "op.mtsn2": ("unit_operator", "mtsn-2-kepahiang"),
    "op.ujanmas": ("unit_operator", "kua-ujan-mas"),
    "meja": ("desk_admin", None),
    "auditor": ("auditor", None),
    "ptsp": ("ptsp_officer", None),
}


def create_staff(url: str) -> None:
    engine = create_engine(url)
    with Session(engine) as session:
        for username, (role, unit) in STAFF.items():
            accounts.create(session, username, username.title(), role, PASSWORD, unit)
        session.commit()
    engine.dispose()


def received(**overrides) -> dict:
    data = {
        "complaint_id": str(uuid.uuid4()),
        "tracking_code": "DMS-" + uuid.uuid4().hex[:12].upper(),
        "channel": "web",
        "category": "nikah_rujuk",
        "description": "Pendaftaran nikah di KUA sudah dua minggu belum diproses",
        "kecamatan_code": "17.08.05",  # Merigi: pilot in the seed
        "confidentiality": "public",
        "contact_channels": ["email"],
        "received_at": datetime.now(UTC),
    }
    data.update(overrides)
    return build_event("complaint_received", data, correlation_id=data["complaint_id"])


def complaint_row(url: str, complaint_id: str) -> dict | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(complaints).where(complaints.c.complaint_id == complaint_id)
            ).first()
            return dict(row._mapping) if row else None
    finally:
        engine.dispose()


def route(amqp_uri: str, db_url: str, **overrides) -> dict:
    """Publish a received complaint and wait until routing has recorded it; returns its row."""
    event = received(**overrides)
    amqp.publish_event(amqp_uri, event)
    return wait_for(lambda: complaint_row(db_url, event["data"]["complaint_id"]),
                    timeout=20, message="complaint routed")


class ApiClient:
    """A signed-in API session (cookie + CSRF header)."""

    def __init__(self, base_url: str, username: str, password: str = PASSWORD):
        self.base_url = base_url
        self.http = requests.Session()
        # No keep-alive: an idle open connection makes the service's shutdown wait for it.
        self.http.headers["Connection"] = "close"
        r = self.http.post(f"{base_url}/api/v1/session",
                           json={"username": username, "password": password}, timeout=10)
        r.raise_for_status()
        self.csrf = r.json()["csrf_token"]

    def get(self, path, **kw):
        return self.http.get(self.base_url + path, timeout=10, **kw)

    def post(self, path, json=None):
        return self.http.post(self.base_url + path, json=json, timeout=10,
                              headers={"X-CSRF-Token": self.csrf})

    def act(self, complaint_id, action, text=None, **extra):
        return self.post(f"/api/v1/inbox/complaints/{complaint_id}/actions",
                         {"action": action, "text": text, **extra})
