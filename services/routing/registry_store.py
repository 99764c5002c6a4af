"""Persistence of the unit registry: seeding from data/units.yaml and loading into the domain's
immutable Registry. Stages are changed only through audited operations, never by a re-seed."""

from dataclasses import asdict
from datetime import UTC, datetime

from sqlalchemy import func, select

from services.routing.db import units
from services.routing.domain.registry import Registry, Unit, load_seed, unit_from_mapping


def _row(unit: Unit) -> dict:
    return {
        "code": unit.code,
        "name": unit.name,
        "type": unit.type,
        "kecamatan_code": unit.kecamatan_code,
        "aliases": list(unit.aliases),
        "sections": {s.code: s.name for s in unit.sections},
        "contacts": {k: v for k, v in asdict(unit.contacts).items() if v is not None},
        "head": {k: v for k, v in asdict(unit.head).items() if v is not None}
        if unit.head
        else None,
    }


def seed(session, registry: Registry | None = None) -> int:
    """Insert units that are missing, refresh descriptive data of the others; keep stages."""
    registry = registry or load_seed()
    existing = {r.code: r for r in session.execute(select(units)).all()}
    now = datetime.now(UTC)
    added = 0
    for unit in registry.units():
        values = _row(unit)
        current = existing.get(unit.code)
        if current is None:
            session.execute(units.insert().values(**values, stage=unit.stage, updated_at=now))
            added += 1
        elif any(getattr(current, k) != v for k, v in values.items()):
            session.execute(
                units.update().where(units.c.code == unit.code).values(**values, updated_at=now)
            )
    return added


def version(session) -> tuple:
    """Changes whenever a unit is added or updated: (count, latest update)."""
    return tuple(session.execute(select(func.count(), func.max(units.c.updated_at))).one())


def load(session) -> Registry:
    rows = session.execute(select(units)).all()
    return Registry(
        unit_from_mapping(
            {
                "code": r.code,
                "name": r.name,
                "type": r.type,
                "stage": r.stage,
                "kecamatan_code": r.kecamatan_code,
                "aliases": r.aliases,
                "sections": r.sections,
                "contacts": r.contacts,
                "head": r.head,
            }
        )
        for r in rows
    )
