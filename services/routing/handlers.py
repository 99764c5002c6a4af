"""routing's use cases: decide where a complaint goes, record it once, announce it."""

from datetime import datetime

from sqlalchemy import select

from services.routing.casework import SYSTEM, audit, summary
from services.routing.db import complaints, decisions
from services.routing.domain.registry import Registry
from services.routing.domain.rules import ComplaintFacts, Decision, decide
from services.routing.domain.sla import deadlines
from shared.contracts import Event, build_event
from shared.db import dialect_insert, utcnow

CONSUMER = "routing"

__all__ = ["CONSUMER", "decision_for", "route_complaint", "summary"]


def route_complaint(uow_factory, registry: Registry, event: Event, now: datetime | None = None,
                    calendar=None, response_days=None, resolution_days=None):
    """Decide and record the routing of a received complaint, and stage `complaint_routed`.

    Idempotent twice over: the processed-event mark, and one decision per complaint (primary
    key). Returns the Decision, or None when this complaint was already routed.
    """
    data = event.data
    facts = ComplaintFacts(
        complaint_id=data["complaint_id"],
        category=data["category"],
        description=data["description"],
        kecamatan_code=data.get("kecamatan_code"),
        desa_code=data.get("desa_code"),
        unit_hint=data.get("unit_hint"),
        unit_hint_trusted=data.get("unit_hint_trusted", False),
        channel=data["channel"],
        confidentiality=data["confidentiality"],
    )
    decision: Decision = decide(facts, registry)
    now = now or utcnow()
    clocks = deadlines(data["category"], data["received_at"], calendar, response_days,
                       resolution_days)
    due = clocks["response_due_at"]
    with uow_factory() as uow:
        if not uow.claim(CONSUMER, event.event_id):
            return None
        s = uow.session
        inserted = s.execute(
            dialect_insert(s, decisions)
            .values(
                complaint_id=facts.complaint_id,
                tracking_code=data["tracking_code"],
                unit_code=decision.unit_code,
                rule=decision.rule,
                reason=decision.reason,
                section=decision.section,
                shadow_unit_code=decision.shadow_copy_unit_code,
                category=facts.category,
                channel=facts.channel,
                confidentiality=facts.confidentiality,
                decided_at=now,
                due_at=due,
            )
            .on_conflict_do_nothing()
        ).rowcount
        if not inserted:
            # Another copy of the same complaint (a re-published event) was routed already.
            uow.commit()
            return None
        unit = decision.unit
        s.execute(
            complaints.insert().values(
                complaint_id=str(facts.complaint_id),
                tracking_code=data["tracking_code"],
                unit_code=decision.unit_code,
                shadow_unit_code=decision.shadow_copy_unit_code,
                section=decision.section,
                rule=decision.rule,
                reason=decision.reason,
                category=facts.category,
                channel=facts.channel,
                confidentiality=facts.confidentiality,
                description=facts.description,
                kecamatan_code=facts.kecamatan_code,
                desa_code=facts.desa_code,
                unit_hint=facts.unit_hint,
                unit_hint_trusted=facts.unit_hint_trusted,
                contact_channels=list(data.get("contact_channels", [])),
                status="routed",
                seq=1,
                received_at=data["received_at"],
                routed_at=now,
                updated_at=now,
                **clocks,
            )
        )
        audit(s, actor=SYSTEM, role=SYSTEM, action="routed", complaint_id=facts.complaint_id,
              unit_code=decision.unit_code, after={"status": "routed",
                                                   "unit_code": decision.unit_code,
                                                   "rule": decision.rule},
              text=decision.reason, at=now)
        uow.publish(
            build_event(
                "complaint_routed",
                {
                    "complaint_id": facts.complaint_id,
                    "tracking_code": data["tracking_code"],
                    "unit_code": unit.code,
                    "unit_name": unit.name,
                    "unit_type": unit.type,
                    "stage": unit.stage,
                    "rule": decision.rule,
                    "reason": decision.reason,
                    "category": facts.category,
                    "channel": facts.channel,
                    "confidentiality": facts.confidentiality,
                    "contact_channels": data.get("contact_channels", []),
                    "kecamatan_code": data.get("kecamatan_code"),
                    "summary": summary(facts.description, facts.confidentiality),
                    "routed_at": now,
                    "due_at": due,
                    "status": "routed",
                    "seq": 1,
                },
                correlation_id=facts.complaint_id,
                occurred_at=now,
            )
        )
        uow.commit()
    return decision


def decision_for(session, complaint_id: str) -> dict | None:
    row = session.execute(select(decisions).where(decisions.c.complaint_id == complaint_id)).first()
    return dict(row._mapping) if row else None
