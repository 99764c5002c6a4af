"""Rollout use cases: change a unit's stage (audited, announced), and simulate a proposed set of
stages over the complaints of a period.

A stage change updates the unit row (and its `updated_at`, which every routing instance's
RegistryCache polls twice a second: the change applies everywhere within a second, without a
restart), appends to `stage_changes` and the audit trail, and publishes `unit_stage_changed`,
all in one UnitOfWork.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from services.routing.casework import audit
from services.routing.db import complaints, stage_changes, units
from services.routing.domain.registry import STAGES, Registry
from services.routing.domain.rules import ComplaintFacts, decide
from shared.contracts import build_event
from shared.db import utcnow


class StageError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def change_stage(uow_factory, unit_code: str, new_stage: str, changed_by: str,
                 actor_role: str = "desk_admin", reason: str = "",
                 now: datetime | None = None) -> dict:
    """Move a unit to `new_stage`. Returns {unit_code, old_stage, new_stage, changed}."""
    if new_stage not in STAGES:
        raise StageError("invalid_stage",
                         f"Tahap tidak dikenal; pilih salah satu: {', '.join(STAGES)}.")
    now = now or utcnow()
    reason = (reason or "").strip()[:500]
    with uow_factory() as uow:
        s = uow.session
        row = s.execute(
            select(units.c.code, units.c.stage, units.c.type).where(units.c.code == unit_code)
            .with_for_update()
        ).first()
        if row is None:
            raise StageError("unknown_unit", "Unit tidak dikenal.")
        if row.type == "desk" and new_stage != "live":
            raise StageError("desk_always_live", "Meja Dumas selalu aktif (live).")
        if row.stage == new_stage:
            return {"unit_code": unit_code, "old_stage": row.stage, "new_stage": new_stage,
                    "changed": False}
        s.execute(update(units).where(units.c.code == unit_code)
                  .values(stage=new_stage, updated_at=now))
        s.execute(stage_changes.insert().values(
            unit_code=unit_code, old_stage=row.stage, new_stage=new_stage,
            changed_by=changed_by[:120], reason=reason or None, at=now))
        audit(s, actor=changed_by[:64], role=actor_role, action="stage_changed",
              unit_code=unit_code, before={"stage": row.stage}, after={"stage": new_stage},
              text=reason or None, at=now)
        uow.publish(build_event(
            "unit_stage_changed",
            {"unit_code": unit_code, "old_stage": row.stage, "new_stage": new_stage,
             "changed_by": changed_by[:64], "reason": reason, "at": now},
            correlation_id=unit_code, occurred_at=now,
        ))
        uow.commit()
    return {"unit_code": unit_code, "old_stage": row.stage, "new_stage": new_stage,
            "changed": True}


@dataclass(frozen=True)
class SimulationRow:
    unit_code: str
    unit_name: str
    stage_now: str
    stage_proposed: str
    today: int  # complaints it would receive with today's stages
    proposed: int  # ... with the proposed stages
    shadow_copies: int  # read-only copies it would get (shadow stage)


def simulate(session, registry: Registry, proposal: dict[str, str], since: datetime,
             until: datetime) -> tuple[list[SimulationRow], int]:
    """Replay the complaints received in [since, until) through today's and the proposed stages.

    Returns one row per unit with any complaint in either scenario (plus every unit the proposal
    names), and the number of complaints replayed.
    """
    for code, stage in proposal.items():
        if code not in registry:
            raise StageError("unknown_unit", f"unknown unit {code!r}")
        if stage not in STAGES:
            raise StageError("invalid_stage", f"unknown stage {stage!r}")
    proposed = registry
    for code, stage in proposal.items():
        proposed = proposed.with_stage(code, stage)
    today, future, copies = Counter(), Counter(), Counter()
    total = 0
    rows = session.execute(
        select(complaints.c.complaint_id, complaints.c.category, complaints.c.description,
               complaints.c.kecamatan_code, complaints.c.desa_code, complaints.c.unit_hint,
               complaints.c.unit_hint_trusted, complaints.c.channel,
               complaints.c.confidentiality)
        .where(complaints.c.received_at >= since, complaints.c.received_at < until)
        .execution_options(yield_per=1000)
    )
    for r in rows:
        facts = ComplaintFacts(
            complaint_id=r.complaint_id, category=r.category, description=r.description,
            kecamatan_code=r.kecamatan_code, desa_code=r.desa_code, unit_hint=r.unit_hint,
            unit_hint_trusted=bool(r.unit_hint_trusted), channel=r.channel,
            confidentiality=r.confidentiality,
        )
        total += 1
        today[decide(facts, registry).unit_code] += 1
        decision = decide(facts, proposed)
        future[decision.unit_code] += 1
        if decision.shadow_copy_unit_code:
            copies[decision.shadow_copy_unit_code] += 1
    codes = set(today) | set(future) | set(copies) | set(proposal)
    desk = registry.desk().code
    table = [
        SimulationRow(code, registry[code].name, registry[code].stage, proposed[code].stage,
                      today[code], future[code], copies[code])
        for code in sorted(codes, key=lambda c: (c != desk, c))
    ]
    return table, total


def format_table(rows: list[SimulationRow], total: int, since, until) -> str:
    lines = [
        f"Rollout simulation: {total} complaints received {since:%Y-%m-%d} .. {until:%Y-%m-%d}",
        "",
        f"{'unit':<26} {'stage now':>9} {'proposed':>9} {'today':>6} {'proposed':>9} "
        f"{'change':>7} {'copies':>7}",
    ]
    for r in rows:
        lines.append(
            f"{r.unit_code:<26} {r.stage_now:>9} {r.stage_proposed:>9} {r.today:>6} "
            f"{r.proposed:>9} {r.proposed - r.today:>+7} {r.shadow_copies:>7}"
        )
    return "\n".join(lines)
