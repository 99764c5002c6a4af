"""routing's use cases: decide where a complaint goes, record it once, announce it."""

from datetime import datetime

from sqlalchemy import select

from services.routing.db import decisions
from services.routing.domain.registry import Registry
from services.routing.domain.rules import ComplaintFacts, Decision, decide
from services.routing.domain.sla import response_due_at
from shared.contracts import Event, build_event
from shared.db import dialect_insert, utcnow

CONSUMER = "routing"
SUMMARY_LENGTH = 160


def summary(description: str, confidentiality: str) -> str:
    """A short excerpt for the unit's notification; nothing of a confidential complaint."""
    if confidentiality == "confidential":
        return ""
    text = " ".join(description.split())
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 1].rstrip() + "…"


def route_complaint(uow_factory, registry: Registry, event: Event, now: datetime | None = None):
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
    due = response_due_at(data["category"], data["received_at"])
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
