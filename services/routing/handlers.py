"""routing's use cases: decide where a complaint goes, record it once, announce it."""

from datetime import datetime

from sqlalchemy import select

from services.routing import attachments
from services.routing.casework import SYSTEM, audit, summary
from services.routing.db import complaints, decisions
from services.routing.domain.registry import Registry
from services.routing.domain.rules import ComplaintFacts, Decision, decide
from services.routing.domain.sla import deadlines
from shared.contracts import Event, build_event
from shared.db import dialect_insert, utcnow

CONSUMER = "routing"

__all__ = ["CONSUMER", "decision_for", "route_complaint", "route_complaints", "summary"]

# Built once and executed with parameters: no per-complaint SQL construction and cache-key work
# (docs/performance.md, "intake and routing: CPU per complaint").
_INSERT_COMPLAINT = complaints.insert()
_DECISION_STATEMENTS: dict = {}


def _insert_decision(session):
    """INSERT ... ON CONFLICT DO NOTHING into decisions, built once per dialect."""
    dialect = session.get_bind().dialect.name
    stmt = _DECISION_STATEMENTS.get(dialect)
    if stmt is None:
        stmt = _DECISION_STATEMENTS[dialect] = dialect_insert(session, decisions) \
            .on_conflict_do_nothing()
    return stmt


def route_complaint(uow_factory, registry: Registry, event: Event, now: datetime | None = None,
                    calendar=None, response_days=None, resolution_days=None):
    """Decide and record the routing of a received complaint, and stage `complaint_routed`.

    Idempotent twice over: the processed-event mark, and one decision per complaint (primary
    key). Returns the Decision, or None when this complaint was already routed.
    """
    with uow_factory() as uow:
        decision = _route(uow, registry, event, now or utcnow(), calendar, response_days,
                          resolution_days)
        uow.commit()
    return decision


def route_complaints(uow_factory, registry: Registry, events: list[Event],
                     now: datetime | None = None, calendar=None, response_days=None,
                     resolution_days=None) -> list[Decision | None]:
    """What routing does with received complaints (its batched consumer): `route_complaint`
    and the attachment references (`attachments.on_received`) of every event, all in ONE
    transaction, one commit. A Decision or None per event, in order. A failure rolls back the
    whole batch; the batch consumer then handles its events one at a time."""
    now = now or utcnow()
    with uow_factory() as uow:
        decisions = []
        for event in events:
            decisions.append(_route(uow, registry, event, now, calendar, response_days,
                                    resolution_days))
            attachments.record_in(uow, event.data["complaint_id"],
                                  event.data.get("attachments") or [],
                                  event.data.get("received_at"))
        uow.commit()
    return decisions


def _route(uow, registry: Registry, event: Event, now: datetime, calendar, response_days,
           resolution_days) -> Decision | None:
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
    clocks = deadlines(data["category"], data["received_at"], calendar, response_days,
                       resolution_days)
    due = clocks["response_due_at"]
    if not uow.claim(CONSUMER, event.event_id):
        return None
    s = uow.session
    inserted = s.execute(_insert_decision(s), {
        "complaint_id": facts.complaint_id,
        "tracking_code": data["tracking_code"],
        "unit_code": decision.unit_code,
        "rule": decision.rule,
        "reason": decision.reason,
        "section": decision.section,
        "shadow_unit_code": decision.shadow_copy_unit_code,
        "category": facts.category,
        "channel": facts.channel,
        "confidentiality": facts.confidentiality,
        "decided_at": now,
        "due_at": due,
    }).rowcount
    if not inserted:
        # Another copy of the same complaint (a re-published event) was routed already.
        return None
    unit = decision.unit
    s.execute(_INSERT_COMPLAINT, {
        "complaint_id": str(facts.complaint_id),
        "tracking_code": data["tracking_code"],
        "unit_code": decision.unit_code,
        "shadow_unit_code": decision.shadow_copy_unit_code,
        "section": decision.section,
        "rule": decision.rule,
        "reason": decision.reason,
        "category": facts.category,
        "channel": facts.channel,
        "confidentiality": facts.confidentiality,
        "description": facts.description,
        "kecamatan_code": facts.kecamatan_code,
        "desa_code": facts.desa_code,
        "unit_hint": facts.unit_hint,
        "unit_hint_trusted": facts.unit_hint_trusted,
        "contact_channels": list(data.get("contact_channels", [])),
        "status": "routed",
        "seq": 1,
        "received_at": data["received_at"],
        "routed_at": now,
        "updated_at": now,
        **clocks,
    })
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
    return decision


def decision_for(session, complaint_id: str) -> dict | None:
    row = session.execute(select(decisions).where(decisions.c.complaint_id == complaint_id)).first()
    return dict(row._mapping) if row else None
