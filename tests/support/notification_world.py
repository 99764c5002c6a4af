"""What notification's integration tests need around it: stand-ins for intake's and routing's
contact RPCs (outside notification's bounded context) and builders for the events it consumes.

Events are built with shared.contracts.build_event, exactly as routing and intake publish them.
"""

import json
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nameko.rpc import rpc
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from services.cli import SERVICES_DIR
from services.notification.db import deliveries, outbox, processed_events
from shared.contracts import build_event
from shared.db import UnitOfWork, make_engine
from shared.migrate import upgrade

# complaint_id -> contact, unit code -> contacts; tests fill them before publishing.
CONTACTS: dict[str, dict] = {}
# The complaint ids of every get_contacts call FakeIntake answered, in order.
CONTACT_CALLS: list[list[str]] = []
UNITS: dict[str, dict] = {
    "kua-kabawetan": {
        "code": "kua-kabawetan", "name": "KUA Kecamatan Kabawetan",
        "email": "kua.kabawetan@kemenag.example", "whatsapp": "+6281100000001",
        "head": {"email": "kepala.kabawetan@kemenag.example", "whatsapp": "+6281100000002"},
    },
    "kua-merigi": {
        "code": "kua-merigi", "name": "KUA Kecamatan Merigi",
        "email": "kua.merigi@kemenag.example", "whatsapp": "+6281100000003", "head": None,
    },
    "kankemenag-kepahiang": {
        "code": "kankemenag-kepahiang",
        "name": "Meja Dumas Kantor Kementerian Agama Kabupaten Kepahiang",
        "email": "dumas.kepahiang@kemenag.example", "whatsapp": None,
        "head": {"email": "kasi.dumas@kemenag.example", "whatsapp": None},
    },
}


class FakeIntake:
    name = "intake"

    @rpc
    def get_contacts(self, complaint_ids):
        CONTACT_CALLS.append(list(complaint_ids))
        return {c: CONTACTS.get(c) for c in complaint_ids}


class FakeRouting:
    name = "routing"

    @rpc
    def get_unit_contacts(self, unit_code):
        return UNITS.get(unit_code)


class Slots:
    """Send slots as the Sender hands them out, counted (handlers.SendSlots)."""

    def __init__(self, free: int):
        self.free = free

    def reserve(self, wanted: int) -> int:
        taken = min(wanted, self.free)
        self.free -= taken
        return taken

    def release(self, count: int) -> None:
        self.free += count


@contextmanager
def notification_db(url: str):
    """(engine, unit-of-work factory) on notification's database at `url` (migrated)."""
    engine = make_engine(url)
    factory = sessionmaker(engine, expire_on_commit=False)
    try:
        yield engine, lambda: UnitOfWork(factory, outbox, processed_events)
    finally:
        engine.dispose()


@contextmanager
def notification_db_of(request, tmp_path: Path):
    """`notification_db` on the backend a fixture is parametrised with ("postgresql": the
    test's PostgreSQL database from `pg_urls`, already migrated; "sqlite": a new file, migrated
    here)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_urls")["notification"]
    else:
        url = f"sqlite:///{tmp_path / 'notification.sqlite3'}"
        upgrade(SERVICES_DIR / "notification" / "migrations", url)
    with notification_db(url) as engine_and_uow:
        yield engine_and_uow


def now() -> datetime:
    return datetime.now(UTC)


def new_complaint(contact: dict | None, *, channel="web", confidentiality="public",
                  tracking_code=None) -> dict:
    complaint_id = str(uuid.uuid4())
    if contact is not None:
        CONTACTS[complaint_id] = {"name": "Siti Aminah", "phone": None, "email": None,
                                  "channel": channel, **contact}
    kinds = []
    if contact and contact.get("email"):
        kinds.append("email")
    if contact and contact.get("phone"):
        kinds.append("whatsapp" if channel == "whatsapp" else "phone")
    return {
        "complaint_id": complaint_id,
        "tracking_code": tracking_code or f"DMS-{uuid.uuid4().hex[:4].upper()}-TEST",
        "channel": channel,
        "confidentiality": confidentiality,
        "contact_channels": kinds,
    }


def routed(complaint: dict, unit_code="kua-kabawetan", seq=1, **overrides) -> dict:
    unit = UNITS[unit_code]
    data = {
        "complaint_id": complaint["complaint_id"],
        "tracking_code": complaint["tracking_code"],
        "unit_code": unit_code,
        "unit_name": unit["name"],
        "unit_type": "desk" if unit_code == "kankemenag-kepahiang" else "kua",
        "stage": "live",
        "rule": "kua_by_kecamatan",
        "reason": "Kategori nikah_rujuk di kecamatan asal",
        "category": "nikah_rujuk",
        "channel": complaint["channel"],
        "confidentiality": complaint["confidentiality"],
        "contact_channels": complaint["contact_channels"],
        "summary": "Berkas nikah lengkap, jadwal pemeriksaan belum ditetapkan.",
        "routed_at": now(),
        "due_at": now() + timedelta(days=14),
        "status": "routed",
        "seq": seq,
    }
    data.update(overrides)
    return build_event("complaint_routed", data, correlation_id=complaint["complaint_id"])


def unit_action(event_type: str, complaint: dict, seq: int, unit_code="kua-kabawetan",
                status="in_progress", **fields) -> dict:
    data = {
        "complaint_id": complaint["complaint_id"],
        "tracking_code": complaint["tracking_code"],
        "unit_code": unit_code,
        "actor_role": "unit_operator",
        "status": status,
        "seq": seq,
        "at": now(),
        **fields,
    }
    return build_event(event_type, data, correlation_id=complaint["complaint_id"])


def sla(event_type: str, complaint: dict, unit_code="kua-kabawetan") -> dict:
    data = {
        "complaint_id": complaint["complaint_id"],
        "tracking_code": complaint["tracking_code"],
        "unit_code": unit_code,
        "due_at": now() + timedelta(hours=4),
        "at": now(),
    }
    return build_event(event_type, data, correlation_id=complaint["complaint_id"])


def info_added(complaint: dict, channel="web") -> dict:
    data = {
        "complaint_id": complaint["complaint_id"],
        "tracking_code": complaint["tracking_code"],
        "channel": channel,
        "text": "Tanda terima berkas saya lampirkan.",
        "at": now(),
    }
    return build_event("complaint_info_added", data, correlation_id=complaint["complaint_id"])


# -- reading what happened --------------------------------------------------------------------


def outbox_files(directory: Path) -> list[dict]:
    if not directory.exists():
        return []
    return [json.loads(p.read_text("utf-8")) for p in sorted(directory.glob("*.json"))]


def query(url: str, statement) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(statement).all()
    finally:
        engine.dispose()


def delivery_rows(url: str, complaint_id: str | None = None) -> list:
    statement = select(deliveries).order_by(deliveries.c.created_at, deliveries.c.recipient)
    if complaint_id:
        statement = statement.where(deliveries.c.complaint_id == complaint_id)
    return query(url, statement)


def published(url: str, event_type: str) -> list[dict]:
    rows = query(url, select(outbox.c.body).where(outbox.c.routing_key == event_type))
    return [json.loads(r.body) for r in rows]


def handled(event_type: str) -> float:
    return REGISTRY.get_sample_value(
        "dumas_event_handler_duration_seconds_count",
        {"service": "notification", "event_type": event_type, "outcome": "ok"},
    ) or 0.0


def metric(name: str, labels: dict) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
