"""`dumas deliveries list|show|retry`: parked (failed) deliveries, inspected and sent again.

Works on notification's database directly; a retried delivery is set back to `pending` with its
attempts reset, and the running service's sweep sends it within seconds. Addresses are not
stored, so nothing printed here is personal data.
"""

from sqlalchemy import func, select, update

from services.notification.db import deliveries
from shared.db import make_engine, utcnow

COLUMNS = ("id", "status", "audience", "recipient", "channel", "template", "attempts",
           "provider", "created_at", "next_attempt_at", "sent_at", "fallback_of",
           "complaint_id", "cause_event_id", "provider_message_id", "last_error")


def list_deliveries(url: str, status: str = "failed", limit: int = 50) -> tuple[dict, list]:
    """(count per status, the `limit` most recent deliveries with `status`)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            counts = dict(conn.execute(
                select(deliveries.c.status, func.count()).group_by(deliveries.c.status)).all())
            rows = conn.execute(
                select(deliveries).where(deliveries.c.status == status)
                .order_by(deliveries.c.created_at.desc()).limit(limit)
            ).all()
    finally:
        engine.dispose()
    return counts, [dict(r._mapping) for r in rows]


def show_delivery(url: str, delivery_id: str) -> dict | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(deliveries).where(deliveries.c.id == delivery_id)).one_or_none()
    finally:
        engine.dispose()
    return None if row is None else dict(row._mapping)


def retry_deliveries(url: str, delivery_ids: list[str] | None = None) -> int:
    """Re-queue failed deliveries (all of them when no ids are given); returns how many."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            statement = update(deliveries).where(deliveries.c.status == "failed")
            if delivery_ids:
                statement = statement.where(deliveries.c.id.in_(delivery_ids))
            return conn.execute(statement.values(
                status="pending", attempts=0, next_attempt_at=utcnow(), lease_until=None,
            )).rowcount
    finally:
        engine.dispose()
