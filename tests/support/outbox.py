"""Outbox test helpers: stage events in a unit of work, count what is still unpublished.

`store` is (engine, outbox table, sessionmaker)."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from shared.contracts import build_event
from shared.db import UnitOfWork


def stage(store, n: int) -> list[str]:
    """Commit `n` complaint_received events to the outbox; their event ids."""
    _, table, factory = store
    ids = []
    with UnitOfWork(factory, table, None) as uow:
        for _ in range(n):
            cid = str(uuid.uuid4())
            envelope = build_event(
                "complaint_received",
                {
                    "complaint_id": cid,
                    "tracking_code": "DMS-TEST-CODE-0003",
                    "channel": "web",
                    "category": "lainnya",
                    "description": "Uraian pengaduan untuk pengujian",
                    "confidentiality": "public",
                    "received_at": datetime.now(UTC),
                },
                correlation_id=cid,
            )
            uow.publish(envelope)
            ids.append(envelope["event_id"])
        uow.commit()
    return ids


def unpublished(store) -> int:
    engine, table, _ = store
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(table).where(table.c.published_at.is_(None))
        ).scalar_one()
