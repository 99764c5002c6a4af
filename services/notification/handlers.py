"""notification's use cases: plan deliveries for an event (durably, once), then send them.

Sending is separate from planning: the AMQP message is done once its deliveries are committed;
each delivery is then sent under a short lease (so replicas never send the same one at once),
retried with back-off on temporary failures, and marked failed (with an event) for good.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from services.notification.db import deliveries
from services.notification.domain.planner import plan_deliveries
from services.notification.domain.render import TemplateCatalogue, TemplateError
from services.notification.providers import (
    PermanentProviderError,
    Provider,
    TemporaryProviderError,
)
from shared.contracts import Event, build_event
from shared.db import dialect_insert, utcnow

log = logging.getLogger(__name__)

CONSUMER = "notification"
LEASE = timedelta(seconds=60)
RETRY_DELAYS = (timedelta(seconds=10), timedelta(minutes=1), timedelta(minutes=5),
                timedelta(minutes=30))
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1


class NoAddress(Exception):
    """The recipient has no address for the delivery's channel."""


@dataclass(frozen=True)
class Outcome:
    delivery_id: str
    status: str  # sent | retry | failed | skipped
    provider: str | None = None
    audience: str | None = None
    error: str | None = None


def plan(uow_factory, event: Event, public_base_url: str) -> list[str]:
    """Record the deliveries an event causes (idempotent) and return those still pending."""
    planned = plan_deliveries(event.data, event.event_id, public_base_url=public_base_url)
    now = utcnow()
    with uow_factory() as uow:
        s = uow.session
        uow.claim(CONSUMER, event.event_id)
        for p in planned:
            s.execute(
                dialect_insert(s, deliveries)
                .values(
                    id=p.delivery_id,
                    cause_event_id=event.event_id,
                    complaint_id=event.data["complaint_id"],
                    audience=p.audience,
                    recipient=p.recipient,
                    channel=p.channel,
                    template=p.template_event,
                    context=p.context,
                    status="pending",
                    attempts=0,
                    created_at=now,
                    next_attempt_at=now,
                )
                .on_conflict_do_nothing()
            )
        pending = s.execute(
            select(deliveries.c.id).where(
                deliveries.c.cause_event_id == event.event_id, deliveries.c.status == "pending"
            )
        ).scalars().all()
        uow.commit()
    return list(pending)


def due_deliveries(session, limit: int = 100) -> list[str]:
    now = utcnow()
    return list(
        session.execute(
            select(deliveries.c.id)
            .where(
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_at <= now,
                or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
            )
            .order_by(deliveries.c.next_attempt_at)
            .limit(limit)
        ).scalars()
    )


def send(
    uow_factory,
    delivery_ids: Iterable[str],
    *,
    resolve_address: Callable[[dict], str | None],
    catalogue: TemplateCatalogue,
    provider_for: Callable[[str], Provider],
) -> list[Outcome]:
    return [
        _send_one(uow_factory, d, resolve_address, catalogue, provider_for) for d in delivery_ids
    ]


def _lease(uow_factory, delivery_id: str) -> dict | None:
    now = utcnow()
    with uow_factory() as uow:
        s = uow.session
        claimed = s.execute(
            update(deliveries)
            .where(
                deliveries.c.id == delivery_id,
                deliveries.c.status == "pending",
                or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
            )
            .values(lease_until=now + LEASE, attempts=deliveries.c.attempts + 1)
        ).rowcount
        row = None
        if claimed:
            row = dict(
                s.execute(select(deliveries).where(deliveries.c.id == delivery_id)).one()._mapping
            )
        uow.commit()
    return row


def _send_one(uow_factory, delivery_id, resolve_address, catalogue, provider_for) -> Outcome:
    row = _lease(uow_factory, delivery_id)
    if row is None:
        return Outcome(delivery_id, "skipped")
    provider = provider_for(row["channel"])
    try:
        address = resolve_address(row)
        if not address:
            raise NoAddress(f"no {row['channel']} address for {row['recipient']}")
        message = catalogue.render(row["template"], row["audience"], row["context"])
        result = provider.send(row["id"], row["channel"], address, message)
    except (PermanentProviderError, NoAddress, TemplateError) as exc:
        return _fail(uow_factory, row, provider.name, str(exc))
    except Exception as exc:  # temporary: provider down, RPC timeout, ...
        if isinstance(exc, TemporaryProviderError):
            log.warning("delivery %s: temporary failure: %s", row["id"], exc)
        else:
            log.exception("delivery %s: unexpected failure, will retry", row["id"])
        if row["attempts"] >= MAX_ATTEMPTS:
            return _fail(uow_factory, row, provider.name, f"gave up: {exc}")
        delay = RETRY_DELAYS[min(row["attempts"], len(RETRY_DELAYS)) - 1]
        with uow_factory() as uow:
            uow.session.execute(
                update(deliveries)
                .where(deliveries.c.id == row["id"])
                .values(
                    lease_until=None,
                    next_attempt_at=utcnow() + delay,
                    last_error=str(exc)[:1000],
                )
            )
            uow.commit()
        return Outcome(row["id"], "retry", provider.name, row["audience"], str(exc))
    now = utcnow()
    with uow_factory() as uow:
        uow.session.execute(
            update(deliveries)
            .where(and_(deliveries.c.id == row["id"], deliveries.c.status == "pending"))
            .values(
                status="sent",
                sent_at=now,
                lease_until=None,
                provider=provider.name,
                provider_message_id=result.provider_message_id[:200],
                last_error=None,
            )
        )
        uow.publish(
            build_event(
                "notification_sent",
                {
                    "complaint_id": row["complaint_id"],
                    "delivery_id": row["id"],
                    "cause_event_id": row["cause_event_id"],
                    "audience": row["audience"],
                    "channel": row["channel"],
                    "provider": provider.name,
                    "template": row["template"],
                    "sent_at": now,
                },
                correlation_id=row["complaint_id"],
                occurred_at=now,
            )
        )
        uow.commit()
    return Outcome(row["id"], "sent", provider.name, row["audience"])


def _fail(uow_factory, row: dict, provider_name: str, reason: str) -> Outcome:
    now = utcnow()
    with uow_factory() as uow:
        uow.session.execute(
            update(deliveries)
            .where(deliveries.c.id == row["id"])
            .values(
                status="failed", lease_until=None, last_error=reason[:1000], provider=provider_name
            )
        )
        uow.publish(
            build_event(
                "notification_failed",
                {
                    "complaint_id": row["complaint_id"],
                    "delivery_id": row["id"],
                    "cause_event_id": row["cause_event_id"],
                    "audience": row["audience"],
                    "channel": row["channel"],
                    "provider": provider_name,
                    "template": row["template"],
                    "reason": reason[:500],
                    "failed_at": now,
                },
                correlation_id=row["complaint_id"],
                occurred_at=now,
            )
        )
        uow.commit()
    log.error("delivery %s failed for good: %s", row["id"], reason)
    return Outcome(row["id"], "failed", provider_name, row["audience"], reason)
