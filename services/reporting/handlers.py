"""reporting's use cases: record every event once, keep the projection, answer statistics."""

from sqlalchemy import delete, func, select

from services.reporting.db import complaints, events
from services.reporting.domain.projection import project
from shared.contracts import Event, event_schema, load_event
from shared.db import dialect_insert, utcnow

STAT_DIMENSIONS = {
    "by_status": complaints.c.status,
    "by_unit": complaints.c.unit_code,
    "by_channel": complaints.c.channel,
    "by_category": complaints.c.category,
}


def record(uow_factory, event: Event) -> bool:
    """Store the event and apply it to the projection in one transaction; False if seen before."""
    with uow_factory() as uow:
        s = uow.session
        inserted = s.execute(
            dialect_insert(s, events)
            .values(
                event_id=event.event_id,
                event_type=event.event_type,
                version=event.version,
                producer=event.producer,
                correlation_id=event.correlation_id,
                occurred_at=event.occurred_at,
                data=event_schema(event.event_type).dump(event.data),
                recorded_at=utcnow(),
            )
            .on_conflict_do_nothing()
        ).rowcount
        if not inserted:
            return False
        _apply(s, event.event_type, event.data)
        uow.commit()
    return True


def _apply(session, event_type: str, data: dict) -> None:
    complaint_id = data["complaint_id"]
    # Create-then-lock: concurrent events of one complaint serialise on its row (PostgreSQL).
    session.execute(
        dialect_insert(session, complaints)
        .values(complaint_id=complaint_id, status="received")
        .on_conflict_do_nothing()
    )
    current = session.execute(
        select(complaints).where(complaints.c.complaint_id == complaint_id).with_for_update()
    ).one()
    new = project(current._mapping, event_type, data)
    session.execute(
        complaints.update().where(complaints.c.complaint_id == complaint_id).values(**new)
    )


def rebuild(uow_factory, batch: int = 1000) -> int:
    """Drop the projection and replay every stored event in the order they happened."""
    with uow_factory() as uow:
        s = uow.session
        s.execute(delete(complaints))
        count = 0
        result = s.execute(select(events).order_by(events.c.occurred_at, events.c.event_id))
        for row in result.yield_per(batch):
            envelope = {
                "event_id": row.event_id,
                "event_type": row.event_type,
                "version": row.version,
                "occurred_at": row.occurred_at.isoformat(),
                "correlation_id": row.correlation_id,
                "producer": row.producer,
                "data": row.data,
            }
            event = load_event(envelope)
            _apply(s, event.event_type, event.data)
            count += 1
        uow.commit()
    return count


def stats(session) -> dict:
    total = session.execute(select(func.count()).select_from(complaints)).scalar_one()
    result = {"total": total}
    for key, column in STAT_DIMENSIONS.items():
        rows = session.execute(
            select(column, func.count()).group_by(column).order_by(column)
        ).all()
        result[key] = {(value if value is not None else "unrouted"): n for value, n in rows}
    sent, failed = session.execute(
        select(
            func.coalesce(func.sum(complaints.c.notifications_sent), 0),
            func.coalesce(func.sum(complaints.c.notifications_failed), 0),
        )
    ).one()
    result["notifications"] = {"sent": int(sent), "failed": int(failed)}
    return result
