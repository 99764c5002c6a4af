"""intake's use cases, called by the nameko adapter in service.py (and by tests) with a unit of
work. No nameko here: these functions take plain data and a UnitOfWork."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from services.intake.db import complainants, complaints, status_history
from services.intake.domain.complaint import next_status, public_view
from services.intake.domain.tracking import new_tracking_code, normalize_tracking_code
from services.intake.domain.validation import contact_channels
from shared.contracts import Event, build_event
from shared.db import UnitOfWork

CONSUMER = "intake"


@dataclass(frozen=True)
class Accepted:
    complaint_id: str
    tracking_code: str
    status: str
    received_at: datetime
    contact_channels: list[str]


def submit_complaint(
    uow_factory, clean: dict, *, unit_hint_trusted: bool = False, now: datetime | None = None
) -> Accepted:
    """Store a validated complaint, its complainant and a `complaint_received` event, atomically.

    A tracking-code collision (about 1 in 10^15 per pair) is retried with a fresh code.
    """
    now = now or datetime.now(UTC)
    contacts = contact_channels(clean)
    for _attempt in range(5):
        complaint_id = str(uuid.uuid4())
        code = new_tracking_code()
        try:
            with uow_factory() as uow:
                _insert(uow, complaint_id, code, clean, unit_hint_trusted, now)
                uow.publish(
                    build_event(
                        "complaint_received",
                        {
                            "complaint_id": complaint_id,
                            "tracking_code": code,
                            "channel": clean["channel"],
                            "category": clean["category"],
                            "description": clean["description"],
                            "kecamatan_code": clean.get("kecamatan_code"),
                            "desa_code": clean.get("desa_code"),
                            "unit_hint": clean.get("unit_code"),
                            "unit_hint_trusted": unit_hint_trusted,
                            "confidentiality": clean["confidentiality"],
                            "contact_channels": contacts,
                            "received_at": now,
                        },
                        correlation_id=complaint_id,
                        occurred_at=now,
                    )
                )
                uow.commit()
        except IntegrityError:
            continue
        return Accepted(complaint_id, code, "received", now, contacts)
    raise RuntimeError("could not allocate a unique tracking code")


def _insert(uow: UnitOfWork, complaint_id, code, clean, trusted, now) -> None:
    s = uow.session
    s.execute(
        complaints.insert().values(
            id=complaint_id,
            tracking_code=code,
            channel=clean["channel"],
            category=clean["category"],
            description=clean["description"],
            kecamatan_code=clean.get("kecamatan_code"),
            desa_code=clean.get("desa_code"),
            unit_hint=clean.get("unit_code"),
            unit_hint_trusted=trusted,
            confidentiality=clean["confidentiality"],
            status="received",
            created_at=now,
            updated_at=now,
        )
    )
    person = clean.get("complainant")
    if person and clean["confidentiality"] != "anonymous":
        s.execute(
            complainants.insert().values(
                complaint_id=complaint_id,
                name=person.get("name"),
                phone=person.get("phone"),
                email=person.get("email"),
            )
        )
    s.execute(
        status_history.insert().values(complaint_id=complaint_id, status="received", at=now)
    )


def find_public(session, user_code: str) -> dict | None:
    """The public view for a tracking code typed by a person (any case, dashes optional)."""
    code = normalize_tracking_code(user_code)
    if code is None:
        return None
    row = session.execute(select(complaints).where(complaints.c.tracking_code == code)).first()
    if row is None:
        return None
    history = session.execute(
        select(status_history.c.status, status_history.c.at)
        .where(status_history.c.complaint_id == row.id)
        .order_by(status_history.c.at, status_history.c.id)
    ).all()
    return public_view(
        row._mapping, [{"status": h.status, "occurred_at": h.at} for h in history]
    )


def contact_for(session, complaint_id: str) -> dict | None:
    """The complainant's contact for notification (RPC); None for anonymous or no contact."""
    row = session.execute(
        select(complainants, complaints.c.channel, complaints.c.confidentiality)
        .join(complaints, complaints.c.id == complainants.c.complaint_id)
        .where(complainants.c.complaint_id == complaint_id)
    ).first()
    if row is None or row.confidentiality == "anonymous":
        return None
    return {"name": row.name, "phone": row.phone, "email": row.email, "channel": row.channel}


def apply_status_event(uow_factory, event: Event) -> bool:
    """Record a lifecycle event (e.g. complaint_routed) in the public status; idempotent.

    Returns False when the event was already applied (a redelivery).
    """
    with uow_factory() as uow:
        if not uow.claim(CONSUMER, event.event_id):
            return False
        s = uow.session
        complaint_id = event.data["complaint_id"]
        row = s.execute(
            select(complaints.c.status).where(complaints.c.id == complaint_id).with_for_update()
        ).first()
        if row is None:
            # Not ours (another intake database?): a permanent condition, not worth retries.
            raise UnknownComplaint(complaint_id)
        new = next_status(row.status, event.event_type)
        values = {"updated_at": datetime.now(UTC)}
        if new != row.status:
            values["status"] = new
        if event.event_type == "complaint_routed":
            values["unit_code"] = event.data["unit_code"]
            values["unit_name"] = event.data["unit_name"]
        s.execute(update(complaints).where(complaints.c.id == complaint_id).values(**values))
        if new != row.status or event.event_type == "complaint_routed":
            s.execute(
                status_history.insert().values(
                    complaint_id=complaint_id,
                    status=new,
                    unit_code=event.data.get("unit_code"),
                    unit_name=event.data.get("unit_name"),
                    at=event.occurred_at,
                )
            )
        uow.commit()
    return True


class UnknownComplaint(LookupError):
    pass
