"""The SLA timer's use case: warn at two thirds of a deadline, escalate at breach, close resolved
complaints nobody answered. Run by a nameko @timer in every routing instance; exactly once by
construction, not by luck:

each escalation sets its column (`response_breached_at`, ...) with a conditional UPDATE
(`... WHERE complaint_id = :id AND response_breached_at IS NULL`); only the transaction whose
UPDATE changed a row publishes the event, in the same UnitOfWork. Replicas racing on the same
complaint, or a restart in the middle of a tick, can neither lose nor repeat an escalation.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select, true, update

from services.routing.casework import SYSTEM, _action_event, audit
from services.routing.db import complaints
from services.routing.domain import lifecycle
from shared.contracts import build_event
from shared.db import utcnow

BATCH = 200
AUTO_CLOSE_REASON = (
    "Ditutup otomatis: tidak ada tanggapan pelapor dalam 10 hari kerja setelah selesai"
)


@dataclass(frozen=True)
class Check:
    name: str  # response_warning, response_breach, resolution_warning, resolution_breach
    event_type: str
    moment: str  # column with the moment it is due
    mark: str  # column set once when it fired
    stopped_by: str  # the clock stops when this column is set


CHECKS = (
    # A breach first: after a long outage the warning is pointless once the deadline passed.
    Check("response_breach", "complaint_sla_breached", "response_due_at",
          "response_breached_at", "responded_at"),
    Check("resolution_breach", "complaint_sla_breached", "resolution_due_at",
          "resolution_breached_at", "resolved_at"),
    Check("response_warning", "complaint_sla_warning", "response_warn_at",
          "response_warned_at", "responded_at"),
    Check("resolution_warning", "complaint_sla_warning", "resolution_warn_at",
          "resolution_warned_at", "resolved_at"),
)
_WARNING_OF = {"response_breach": "response_warned_at",
               "resolution_breach": "resolution_warned_at"}
_DUE_OF = {"response_warn_at": "response_due_at", "resolution_warn_at": "resolution_due_at"}


def tick(uow_factory, now: datetime | None = None, batch: int = BATCH) -> dict[str, int]:
    """One pass of the clock at `now`. Returns how many escalations this call owned, by kind."""
    now = now or utcnow()
    fired = {c.name: 0 for c in CHECKS}
    fired["auto_closed"] = 0
    for check in CHECKS:
        due = and_(
            complaints.c.status.in_(sorted(lifecycle.OPEN)),
            complaints.c.paused_at.is_(None),
            complaints.c[check.stopped_by].is_(None),
            complaints.c[check.mark].is_(None),
            complaints.c[check.moment] <= now,
            # A warning only while the deadline is still ahead: once it passed, the breach
            # is the news (after an outage, or a complaint routed between two checks).
            complaints.c[_DUE_OF[check.moment]] > now if check.moment in _DUE_OF else true(),
        )
        with uow_factory() as uow:
            ids = [r[0] for r in uow.session.execute(
                select(complaints.c.complaint_id).where(due)
                .order_by(complaints.c[check.moment]).limit(batch)
            ).all()]
        for complaint_id in ids:
            fired[check.name] += _fire(uow_factory, check, complaint_id, due, now)
    with uow_factory() as uow:
        ids = [r[0] for r in uow.session.execute(
            select(complaints.c.complaint_id).where(
                complaints.c.status == "resolved", complaints.c.feedback_due_at <= now
            ).limit(batch)
        ).all()]
    for complaint_id in ids:
        fired["auto_closed"] += _auto_close(uow_factory, complaint_id, now)
    return fired


def _fire(uow_factory, check: Check, complaint_id: str, due, now: datetime) -> int:
    with uow_factory() as uow:
        s = uow.session
        values = {check.mark: now}
        if check.name in _WARNING_OF:
            # Never warn after the breach was announced.
            warned = _WARNING_OF[check.name]
            values[warned] = func.coalesce(complaints.c[warned], now)
        owned = s.execute(
            update(complaints).where(complaints.c.complaint_id == complaint_id, due)
            .values(**values)
        ).rowcount
        if owned != 1:
            return 0  # another instance (or an earlier tick) fired it
        row = dict(s.execute(
            select(complaints).where(complaints.c.complaint_id == complaint_id)
        ).one()._mapping)
        due_at = row[_DUE_OF.get(check.moment, check.moment)]
        uow.publish(build_event(
            check.event_type,
            {"complaint_id": complaint_id, "tracking_code": row["tracking_code"],
             "unit_code": row["unit_code"], "due_at": due_at, "at": now},
            correlation_id=complaint_id, occurred_at=now,
        ))
        audit(s, actor=SYSTEM, role=SYSTEM, action=check.name, complaint_id=complaint_id,
              unit_code=row["unit_code"], after={"due_at": due_at.isoformat()}, at=now)
        uow.commit()
    return 1


def _auto_close(uow_factory, complaint_id: str, now: datetime) -> int:
    with uow_factory() as uow:
        s = uow.session
        row = s.execute(select(complaints).where(complaints.c.complaint_id == complaint_id)).first()
        if row is None or row.status != "resolved" or row.feedback_due_at > now:
            return 0
        row = dict(row._mapping)
        seq = row["seq"] + 1
        owned = s.execute(
            update(complaints)
            .where(complaints.c.complaint_id == complaint_id, complaints.c.seq == row["seq"],
                   complaints.c.status == "resolved")
            .values(status="closed", seq=seq, closed_at=now, close_reason=AUTO_CLOSE_REASON,
                    updated_at=now)
        ).rowcount
        if owned != 1:
            return 0
        uow.publish(_action_event("complaint_closed", row, SYSTEM, "closed", seq, now,
                                  reason=AUTO_CLOSE_REASON))
        audit(s, actor=SYSTEM, role=SYSTEM, action="auto_closed", complaint_id=complaint_id,
              unit_code=row["unit_code"], before={"status": "resolved"},
              after={"status": "closed"}, text=AUTO_CLOSE_REASON, at=now)
        uow.commit()
    return 1
