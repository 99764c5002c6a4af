"""routing's lifecycle use cases: what units and the desk do with a complaint, what the
complainant's answers (through intake) and the SLA clock do to it, and what the inbox shows.

Every transition: check it in the domain (`lifecycle.check`), update the complaint guarded by
its `seq` (a concurrent action on the same complaint loses with a conflict, never overwrites),
append to the audit trail, and stage the event, all in one UnitOfWork.
"""

import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, false, func, or_, select, true, update

from services.routing.db import audit_log, complaints
from services.routing.domain import lifecycle, sla
from services.routing.domain.registry import Registry
from shared import workdays
from shared.contracts import build_event
from shared.db import utcnow

SYSTEM = "system"
# Built once, executed with parameters (no per-call SQL construction and cache-key work).
_INSERT_AUDIT = audit_log.insert()
COMPLAINANT = "complainant"
PAGE_SIZE = 50


class NotFound(Exception):
    """No such complaint, or one this person may not see (both answer 404)."""


class Conflict(Exception):
    """Someone else changed the complaint meanwhile; reload and try again."""


class Invalid(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Actor:
    username: str
    role: str
    unit_code: str | None = None


# --- shared pieces ---------------------------------------------------------------------------


def summary(description: str, confidentiality: str, length: int = 160) -> str:
    """A short excerpt for notifications; nothing of a confidential complaint."""
    if confidentiality == "confidential":
        return ""
    text = " ".join(description.split())
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def audit(session, *, actor: str, role: str, action: str, complaint_id=None, unit_code=None,
          before=None, after=None, text=None, at: datetime) -> None:
    session.execute(_INSERT_AUDIT, audit_row(
        actor=actor, role=role, action=action, complaint_id=complaint_id, unit_code=unit_code,
        before=before, after=after, text=text, at=at))


def audit_row(*, actor: str, role: str, action: str, complaint_id=None, unit_code=None,
              before=None, after=None, text=None, at: datetime) -> dict:
    """The audit_log row `audit` inserts (routing's batched consumer inserts it itself)."""
    return {
        "complaint_id": str(complaint_id) if complaint_id else None,
        "unit_code": unit_code, "actor": actor, "actor_role": role, "action": action,
        "before": before, "after": after, "text": text, "at": at,
    }


def routed_event(row, unit, seq: int, now: datetime) -> dict:
    """`complaint_routed` for a complaint row now assigned to `unit`."""
    return build_event(
        "complaint_routed",
        {
            "complaint_id": row["complaint_id"],
            "tracking_code": row["tracking_code"],
            "unit_code": unit.code,
            "unit_name": unit.name,
            "unit_type": unit.type,
            "stage": unit.stage,
            "rule": row["rule"],
            "reason": row["reason"][:500],
            "category": row["category"],
            "channel": row["channel"],
            "confidentiality": row["confidentiality"],
            "contact_channels": list(row.get("contact_channels") or []),
            "kecamatan_code": row.get("kecamatan_code"),
            "summary": summary(row["description"], row["confidentiality"]),
            "routed_at": now,
            "due_at": row["response_due_at"],
            "status": "routed",
            "seq": seq,
        },
        correlation_id=str(row["complaint_id"]),
        occurred_at=now,
    )


def _action_event(event_type: str, row, role: str, status: str, seq: int, now, **extra) -> dict:
    return build_event(
        event_type,
        {
            "complaint_id": row["complaint_id"],
            "tracking_code": row["tracking_code"],
            "unit_code": row["unit_code"],
            "actor_role": role,
            "status": status,
            "seq": seq,
            "at": now,
            **extra,
        },
        correlation_id=str(row["complaint_id"]),
        occurred_at=now,
    )


def _load(session, complaint_id, lock: bool = True) -> dict | None:
    try:
        key = str(uuid.UUID(str(complaint_id)))
    except ValueError:
        return None
    stmt = select(complaints).where(complaints.c.complaint_id == key)
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).first()
    return dict(row._mapping) if row else None


def _guarded_update(session, row: dict, values: dict) -> None:
    """UPDATE the complaint if nobody changed it since we read it (same seq)."""
    done = session.execute(
        update(complaints)
        .where(complaints.c.complaint_id == row["complaint_id"], complaints.c.seq == row["seq"])
        .values(**values)
    ).rowcount
    if done != 1:
        raise Conflict(row["complaint_id"])


def _resume_clocks(row: dict, now: datetime, calendar=None) -> dict:
    """Deadlines moved by the working days the complaint waited for the complainant."""
    if row["paused_at"] is None:
        return {}
    days = workdays.paused_working_days(row["paused_at"], now, calendar)
    shift = {}
    for column in ("response_warn_at", "response_due_at", "resolution_warn_at",
                   "resolution_due_at"):
        shift[column] = workdays.shift_working_days(row[column], days, calendar)
    shift["paused_at"] = None
    return shift


# --- unit and desk actions -------------------------------------------------------------------


def act(uow_factory, registry: Registry, actor: Actor, complaint_id, action_name: str,
        text: str | None = None, target_unit: str | None = None, now: datetime | None = None,
        calendar=None) -> dict:
    """Apply one action of a person to a complaint. Returns the complaint as it now is.

    NotFound (also for complaints this person may not see), lifecycle.LifecycleError (not
    allowed, wrong status, missing text), Invalid (bad re-route target), Conflict.
    """
    now = now or utcnow()
    text = (text or "").strip() or None
    with uow_factory() as uow:
        s = uow.session
        row = _load(s, complaint_id)
        if row is None or not lifecycle.can_view(
            actor.role, actor.unit_code, row["unit_code"], row["shadow_unit_code"]
        ):
            raise NotFound(complaint_id)
        action = lifecycle.check(
            action_name, actor.role, actor.unit_code, row["unit_code"], row["status"], text
        )
        before = {"status": row["status"], "unit_code": row["unit_code"]}
        seq = row["seq"] + 1
        values: dict = {"updated_at": now}
        events: list[dict] = []
        name = action.name
        if name == "note":
            audit(s, actor=actor.username, role=actor.role, action="note",
                  complaint_id=row["complaint_id"], unit_code=row["unit_code"], text=text,
                  before=before, after=before, at=now)
            uow.commit()
            return row
        if name == "acknowledge":
            values.update(status="acknowledged", responded_at=row["responded_at"] or now)
            events.append(_action_event("complaint_acknowledged", row, actor.role,
                                        "acknowledged", seq, now))
        elif name == "start":
            values.update(status="in_progress")
            events.append(_action_event("complaint_work_started", row, actor.role,
                                        "in_progress", seq, now, cause="started"))
        elif name == "request_info":
            values.update(status="info_requested", paused_at=now)
            events.append(_action_event("complaint_info_requested", row, actor.role,
                                        "info_requested", seq, now, question=text))
        elif name == "respond":
            values.update(status="responded", public_response=text)
            events.append(_action_event("complaint_responded", row, actor.role, "responded",
                                        seq, now, response=text))
        elif name == "resolve":
            values.update(
                status="resolved", resolved_at=now, resolution=text,
                feedback_due_at=workdays.add_working_days(now, sla.FEEDBACK_WORKING_DAYS, calendar),
            )
            events.append(_action_event("complaint_resolved", row, actor.role, "resolved",
                                        seq, now, resolution=text))
        elif name == "return":
            unit = registry.get(row["unit_code"])
            desk = registry.desk()
            reason = f"Dikembalikan oleh {unit.name if unit else row['unit_code']}: {text}"
            events.append(_action_event("complaint_returned", row, actor.role, "routed", seq,
                                        now, reason=text))
            seq += 1
            values.update(status="routed", unit_code=desk.code, shadow_unit_code=None,
                          section="umum", rule="returned", reason=reason[:1000],
                          responded_at=None, routed_at=now)
            events.append(routed_event({**row, **values}, desk, seq, now))
        elif name == "reroute":
            target = registry.get(target_unit or "")
            if target is None:
                raise Invalid("unknown_unit", "Unit tujuan tidak dikenal.")
            if target.code == row["unit_code"]:
                raise Invalid("same_unit", "Pengaduan sudah berada di unit tersebut.")
            if target.type != "desk" and not target.accepting:
                raise Invalid("unit_not_active",
                              f"{target.name} belum aktif di Dumas (tahap {target.stage}).")
            reason = f"Dialihkan oleh {lifecycle_label(actor.role)} ke {target.name}"
            if text:
                reason += f": {text}"
            values.update(status="routed", unit_code=target.code, shadow_unit_code=None,
                          section=None if target.type != "desk" else "umum",
                          rule="desk_reroute", reason=reason[:1000], responded_at=None,
                          routed_at=now)
            events.append(routed_event({**row, **values}, target, seq, now))
        elif name in ("close", "reject", "duplicate"):
            reason = lifecycle.close_reason(name, text or "")
            values.update(status="closed", closed_at=now, close_reason=reason, paused_at=None)
            events.append(_action_event("complaint_closed", row, actor.role, "closed", seq, now,
                                        reason=reason))
        values["seq"] = seq
        _guarded_update(s, row, values)
        after = {"status": values["status"], "unit_code": values.get("unit_code",
                                                                      row["unit_code"])}
        audit(s, actor=actor.username, role=actor.role, action=name,
              complaint_id=row["complaint_id"], unit_code=row["unit_code"], before=before,
              after=after, text=text, at=now)
        for event in events:
            uow.publish(event)
        uow.commit()
    return {**row, **values}


def lifecycle_label(role: str) -> str:
    return {"desk_admin": "Meja Dumas"}.get(role, role)


# --- what the complainant does (events from intake) ------------------------------------------


@contextmanager
def _complainant_event(uow_factory, consumer: str, event):
    """One unit of work for an event the complainant caused (through intake): yields None for
    a redelivery (claimed before: nothing is done or committed), else (uow, the complaint's row
    locked, or None when it is not routed here yet); commits when the block ends without an
    exception, also after a `return` (the claim then records the event as handled)."""
    with uow_factory() as uow:
        if not uow.claim(consumer, event.event_id):
            yield None
            return
        yield uow, _load(uow.session, event.data["complaint_id"])
        uow.commit()


def info_added(uow_factory, consumer: str, event, now=None, calendar=None) -> str | None:
    """The complainant answered: resume the clocks and go back to in_progress."""
    data = event.data
    now = now or utcnow()
    with _complainant_event(uow_factory, consumer, event) as claimed:
        if claimed is None or claimed[1] is None:  # a redelivery; not routed here (yet)
            return None
        uow, row = claimed
        s = uow.session
        outcome = "noted"
        if row["status"] in lifecycle.INFO_ADDED_FROM:
            seq = row["seq"] + 1
            values = {"status": "in_progress", "seq": seq, "updated_at": now,
                      **_resume_clocks(row, now, calendar)}
            _guarded_update(s, row, values)
            uow.publish(_action_event("complaint_work_started", row, COMPLAINANT, "in_progress",
                                      seq, now, cause="info_added"))
            outcome = "resumed"
        audit(s, actor=COMPLAINANT, role=COMPLAINANT, action="info_added",
              complaint_id=row["complaint_id"], unit_code=row["unit_code"],
              before={"status": row["status"]},
              after={"status": "in_progress" if outcome == "resumed" else row["status"]},
              text=data["text"], at=now)
    return outcome


def rated(uow_factory, consumer: str, event, now=None) -> bool:
    data = event.data
    now = now or utcnow()
    with _complainant_event(uow_factory, consumer, event) as claimed:
        if claimed is None:
            return False
        uow, row = claimed
        s = uow.session
        if row is not None:
            s.execute(
                update(complaints).where(complaints.c.complaint_id == row["complaint_id"])
                .values(rating=data["rating"], rating_comment=data.get("comment") or None,
                        updated_at=now)
            )
            audit(s, actor=COMPLAINANT, role=COMPLAINANT, action="rated",
                  complaint_id=row["complaint_id"], unit_code=row["unit_code"],
                  after={"rating": data["rating"]}, text=data.get("comment") or None, at=now)
    return row is not None


def reopened(uow_factory, consumer: str, event, category_days=None, now=None,
             calendar=None) -> str | None:
    """"Not resolved": back to in_progress with a fresh resolution clock."""
    data = event.data
    now = now or utcnow()
    with _complainant_event(uow_factory, consumer, event) as claimed:
        if claimed is None or claimed[1] is None:
            return None
        uow, row = claimed
        s = uow.session
        if row["status"] not in lifecycle.REOPEN_FROM:
            audit(s, actor=COMPLAINANT, role=COMPLAINANT, action="reopen_refused",
                  complaint_id=row["complaint_id"], unit_code=row["unit_code"],
                  before={"status": row["status"]}, after={"status": row["status"]},
                  text=data["reason"], at=now)
            return "refused"
        days = sla.resolution_working_days(row["category"], category_days)
        seq = row["seq"] + 1
        values = {
            "status": "in_progress", "seq": seq, "updated_at": now, "resolved_at": None,
            "feedback_due_at": None, "resolution_warned_at": None,
            "resolution_breached_at": None,
            "resolution_warn_at": workdays.add_working_days(now, sla.warning_days(days), calendar),
            "resolution_due_at": workdays.add_working_days(now, days, calendar),
        }
        _guarded_update(s, row, values)
        audit(s, actor=COMPLAINANT, role=COMPLAINANT, action="reopened",
              complaint_id=row["complaint_id"], unit_code=row["unit_code"],
              before={"status": row["status"]}, after={"status": "in_progress"},
              text=data["reason"], at=now)
        uow.publish(_action_event("complaint_work_started", row, COMPLAINANT, "in_progress",
                                  seq, now, cause="reopened"))
    return "reopened"


# --- the inbox (reads) -----------------------------------------------------------------------


def _visible(actor: Actor):
    if actor.role in lifecycle.UNIT_ROLES:
        return or_(complaints.c.unit_code == actor.unit_code,
                   complaints.c.shadow_unit_code == actor.unit_code)
    if actor.role in lifecycle.DESK_ROLES | lifecycle.READ_ONLY_ROLES:
        return true()
    return false()


_LIST_COLUMNS = (
    "complaint_id", "tracking_code", "unit_code", "shadow_unit_code", "category", "channel",
    "confidentiality", "status", "routed_at", "received_at", "response_due_at",
    "resolution_due_at", "responded_at", "response_breached_at", "resolution_breached_at",
    "response_warned_at", "resolution_warned_at", "description", "paused_at", "rule",
)
EXPORT_LIMIT = 20_000


def _list_filter(actor: Actor, status: str | None, unit: str | None, only_open: bool):
    where = [_visible(actor)]
    if status:
        where.append(complaints.c.status == status)
    elif only_open:
        where.append(complaints.c.status.in_(sorted(lifecycle.ACTIVE)))
    if unit:
        where.append(complaints.c.unit_code == unit)
    return and_(*where)


def inbox(session, actor: Actor, status: str | None = None, unit: str | None = None,
          only_open: bool = True, page: int = 1) -> dict:
    """One page of the complaints this person may see, oldest deadline first."""
    where = _list_filter(actor, status, unit, only_open)
    cols = [complaints.c[c] for c in _LIST_COLUMNS]
    total = session.execute(
        select(func.count()).select_from(complaints).where(where)
    ).scalar_one()
    rows = session.execute(
        select(*cols).where(where)
        .order_by(complaints.c.response_due_at, complaints.c.routed_at)
        .limit(PAGE_SIZE).offset((max(page, 1) - 1) * PAGE_SIZE)
    ).all()
    return {"total": total, "page": page, "page_size": PAGE_SIZE,
            "items": [dict(r._mapping) for r in rows]}


def export(session, actor: Actor, status: str | None = None, unit: str | None = None,
           only_open: bool = True) -> list[dict]:
    """Every complaint of the list this person sees (same filter, no pages), for a CSV file;
    at most EXPORT_LIMIT rows, oldest deadline first."""
    rows = session.execute(
        select(*[complaints.c[c] for c in _LIST_COLUMNS])
        .where(_list_filter(actor, status, unit, only_open))
        .order_by(complaints.c.response_due_at, complaints.c.routed_at)
        .limit(EXPORT_LIMIT)
    ).all()
    return [dict(r._mapping) for r in rows]


def detail(session, actor: Actor, complaint_id) -> tuple[dict, list[dict]]:
    """The complaint and its timeline, or NotFound if this person may not see it."""
    row = _load(session, complaint_id, lock=False)
    if row is None or not lifecycle.can_view(
        actor.role, actor.unit_code, row["unit_code"], row["shadow_unit_code"]
    ):
        raise NotFound(complaint_id)
    timeline = [
        dict(r._mapping)
        for r in session.execute(
            select(audit_log).where(audit_log.c.complaint_id == row["complaint_id"])
            .order_by(audit_log.c.id)
        ).all()
    ]
    return row, timeline


def audit_trail(session, limit: int = 200, before_id: int | None = None) -> list[dict]:
    stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if before_id:
        stmt = stmt.where(audit_log.c.id < before_id)
    return [dict(r._mapping) for r in session.execute(stmt).all()]


def open_counts(session) -> list[tuple[str, str, int]]:
    """(unit, status, count) of complaints not closed, for the gauge."""
    return [
        tuple(r)
        for r in session.execute(
            select(complaints.c.unit_code, complaints.c.status, func.count())
            .where(complaints.c.status != "closed")
            .group_by(complaints.c.unit_code, complaints.c.status)
        ).all()
    ]
