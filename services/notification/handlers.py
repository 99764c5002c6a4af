"""notification's use cases: plan deliveries for an event (durably, once), then send them.

Sending is separate from planning: the AMQP message is done once its deliveries are committed;
each delivery is then sent under a short lease (so replicas never send the same one at once),
retried with exponential back-off and jitter on temporary failures (honouring Retry-After),
and parked as `failed` (with a notification_failed event) for good, falling back to the next
configured channel when there is one.
"""

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select, update

from services.notification.db import complaint_views, deliveries
from services.notification.domain.lifecycle import ComplaintView, Plan, plan_event
from services.notification.domain.planner import delivery_id_for
from services.notification.domain.render import TemplateCatalogue, TemplateError
from services.notification.providers import (
    PermanentProviderError,
    Provider,
    TemporaryProviderError,
)
from services.notification.settings import Settings
from shared.contracts import Event, build_event
from shared.db import dialect_insert, utcnow

log = logging.getLogger(__name__)

CONSUMER = "notification"
# A WhatsApp text sent this close to the end of the reply window might arrive after it closes.
WINDOW_MARGIN = timedelta(minutes=10)
MAX_RETRY_AFTER = timedelta(hours=6)


class NoAddress(Exception):
    """The recipient has no address for the delivery's channel."""


@dataclass(frozen=True)
class Outcome:
    delivery_id: str
    status: str  # sent | retry | failed | skipped
    provider: str | None = None
    audience: str | None = None
    channel: str | None = None
    error: str | None = None
    seconds: float | None = None  # time spent in the provider call
    fallback_to: str | None = None  # channel of the delivery planned because this one failed


# -- planning -------------------------------------------------------------------------------


def plan(uow_factory, event: Event, settings: Settings) -> list[str]:
    """Record the deliveries an event causes (idempotent) and return those still pending.

    Raises lifecycle.NotYetRouted when the complaint_routed it follows has not been handled yet
    (the consumer retries it later through its retry queues).
    """
    data = event.data
    complaint_id = str(data["complaint_id"])
    now = utcnow()
    with uow_factory() as uow:
        s = uow.session
        if not uow.claim(CONSUMER, event.event_id):
            uow.commit()
            return []
        view = _load_view(s, complaint_id)
        result: Plan = plan_event(event.event_type, data, event.event_id, view, settings.policy)
        if result.view is not None:
            _save_view(s, result.view, exists=view is not None, now=now)
        for p in result.deliveries:
            s.execute(
                dialect_insert(s, deliveries)
                .values(
                    id=p.delivery_id,
                    cause_event_id=str(event.event_id),
                    complaint_id=complaint_id,
                    audience=p.audience,
                    recipient=p.recipient,
                    channel=p.channel,
                    template=p.template_event,
                    context=p.context,
                    status="pending",
                    attempts=0,
                    created_at=now,
                    next_attempt_at=now,
                    reply_window_until=result.reply_windows.get(p.delivery_id),
                )
                .on_conflict_do_nothing()
            )
        uow.commit()
    return [p.delivery_id for p in result.deliveries]


def _load_view(s, complaint_id: str) -> ComplaintView | None:
    query = select(complaint_views).where(complaint_views.c.complaint_id == complaint_id)
    if s.bind.dialect.name == "postgresql":
        query = query.with_for_update()  # lifecycle events of one complaint update it in turn
    row = s.execute(query).one_or_none()
    if row is None:
        return None
    m = row._mapping
    return ComplaintView(
        complaint_id=m["complaint_id"],
        tracking_code=m["tracking_code"],
        unit_code=m["unit_code"],
        unit_name=m["unit_name"],
        category=m["category"],
        channel=m["channel"],
        confidentiality=m["confidentiality"],
        contact_channels=tuple(m["contact_channels"] or ()),
        due_at=m["due_at"],
        routed_seq=m["routed_seq"],
        notified_seq=m["notified_seq"],
        return_reason=m["return_reason"],
        return_seq=m["return_seq"],
        last_inbound_at=m["last_inbound_at"],
    )


def _save_view(s, view: ComplaintView, *, exists: bool, now) -> None:
    values = {
        "tracking_code": view.tracking_code,
        "unit_code": view.unit_code,
        "unit_name": view.unit_name,
        "category": view.category,
        "channel": view.channel,
        "confidentiality": view.confidentiality,
        "contact_channels": list(view.contact_channels),
        "due_at": view.due_at,
        "routed_seq": view.routed_seq,
        "notified_seq": view.notified_seq,
        "return_reason": view.return_reason,
        "return_seq": view.return_seq,
        "last_inbound_at": view.last_inbound_at,
        "updated_at": now,
    }
    if exists:
        s.execute(
            update(complaint_views)
            .where(complaint_views.c.complaint_id == view.complaint_id)
            .values(**values)
        )
    else:
        s.execute(complaint_views.insert().values(complaint_id=view.complaint_id, **values))


# -- what is due ----------------------------------------------------------------------------


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


def pending_stats(session) -> tuple[int, float]:
    """(pending deliveries, age in seconds of the oldest one) for the gauges."""
    count, oldest = session.execute(
        select(func.count(), func.min(deliveries.c.created_at)).where(
            deliveries.c.status == "pending"
        )
    ).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite aggregates bypass the column type
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (utcnow() - oldest).total_seconds())


# -- sending --------------------------------------------------------------------------------


def backoff(attempts: int, settings: Settings, rng: Callable[[], float] = random.random
            ) -> timedelta:
    """Exponential back-off with jitter: base * 2^(attempts-1), capped, times 0.5..1.0."""
    raw = settings.retry_base * (2 ** max(0, attempts - 1))
    capped = min(raw, settings.retry_cap)
    return capped * (0.5 + rng() / 2)


def send(
    uow_factory,
    delivery_ids: Iterable[str],
    *,
    resolve_address: Callable[[dict], str | None],
    catalogue: TemplateCatalogue,
    provider_for: Callable[[str, str], Provider],
    settings: Settings,
) -> list[Outcome]:
    return [
        send_one(uow_factory, d, resolve_address=resolve_address, catalogue=catalogue,
                 provider_for=provider_for, settings=settings)
        for d in delivery_ids
    ]


def _lease(uow_factory, delivery_id: str, lease: timedelta) -> dict | None:
    now = utcnow()
    with uow_factory() as uow:
        s = uow.session
        claimed = s.execute(
            update(deliveries)
            .where(
                deliveries.c.id == delivery_id,
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_at <= now,
                or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now),
            )
            .values(lease_until=now + lease, attempts=deliveries.c.attempts + 1)
        ).rowcount
        row = None
        if claimed:
            row = dict(
                s.execute(select(deliveries).where(deliveries.c.id == delivery_id)).one()._mapping
            )
        uow.commit()
    return row


def send_one(
    uow_factory, delivery_id: str, *, resolve_address, catalogue, provider_for, settings
) -> Outcome:
    row = _lease(uow_factory, delivery_id, settings.lease)
    if row is None:
        return Outcome(delivery_id, "skipped")
    provider = provider_for(row["audience"], row["channel"])
    started = None
    try:
        address = resolve_address(row)
        if not address:
            raise NoAddress(f"no {row['channel']} address for {row['recipient']}")
        message = catalogue.render(row["template"], row["audience"], row["context"])
        window = row["reply_window_until"]
        started = time.monotonic()
        result = provider.send(
            row["id"], row["channel"], address, message,
            reply_window_open=window is not None and utcnow() < window - WINDOW_MARGIN,
        )
    except TemplateError as exc:
        return _fail(uow_factory, row, provider.name, str(exc), settings, fallback=False)
    except (PermanentProviderError, NoAddress) as exc:
        return _fail(uow_factory, row, provider.name, str(exc), settings,
                     seconds=_since(started))
    except Exception as exc:  # temporary: provider down, rate limited, RPC timeout, ...
        if isinstance(exc, TemporaryProviderError):
            log.warning("delivery %s via %s: temporary failure: %s", row["id"], provider.name, exc)
        else:
            log.exception("delivery %s: unexpected failure, will retry", row["id"])
        if row["attempts"] >= settings.max_attempts:
            return _fail(uow_factory, row, provider.name,
                         f"gave up after {row['attempts']} attempts: {exc}", settings,
                         seconds=_since(started))
        delay = backoff(row["attempts"], settings)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(timedelta(seconds=retry_after), MAX_RETRY_AFTER))
        with uow_factory() as uow:
            uow.session.execute(
                update(deliveries)
                .where(deliveries.c.id == row["id"])
                .values(
                    lease_until=None,
                    next_attempt_at=utcnow() + delay,
                    last_error=str(exc)[:1000],
                    provider=provider.name,
                )
            )
            uow.commit()
        return Outcome(row["id"], "retry", provider.name, row["audience"], row["channel"],
                       str(exc), _since(started))
    seconds = _since(started)
    now = utcnow()
    with uow_factory() as uow:
        uow.session.execute(
            update(deliveries)
            .where(deliveries.c.id == row["id"], deliveries.c.status == "pending")
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
    return Outcome(row["id"], "sent", provider.name, row["audience"], row["channel"],
                   seconds=seconds)


def _since(started: float | None) -> float | None:
    return None if started is None else time.monotonic() - started


def next_channel(settings: Settings, audience: str, channel: str) -> str | None:
    chain = settings.fallback.get(audience, ())
    if channel not in chain:
        return None
    rest = chain[chain.index(channel) + 1:]
    return rest[0] if rest else None


def _fail(uow_factory, row: dict, provider_name: str, reason: str, settings: Settings, *,
          fallback: bool = True, seconds: float | None = None) -> Outcome:
    now = utcnow()
    fallback_to = next_channel(settings, row["audience"], row["channel"]) if fallback else None
    with uow_factory() as uow:
        s = uow.session
        s.execute(
            update(deliveries)
            .where(deliveries.c.id == row["id"])
            .values(
                status="failed", lease_until=None, last_error=reason[:1000], provider=provider_name
            )
        )
        if fallback_to is not None:
            inserted = s.execute(
                dialect_insert(s, deliveries)
                .values(
                    id=delivery_id_for(row["cause_event_id"], row["audience"], row["recipient"],
                                       fallback_to),
                    cause_event_id=row["cause_event_id"],
                    complaint_id=row["complaint_id"],
                    audience=row["audience"],
                    recipient=row["recipient"],
                    channel=fallback_to,
                    template=row["template"],
                    context=row["context"],
                    status="pending",
                    attempts=0,
                    created_at=now,
                    next_attempt_at=now,
                    fallback_of=row["id"],
                )
                .on_conflict_do_nothing()
            ).rowcount
            if not inserted:
                fallback_to = None  # that channel was planned already: never two messages
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
    log.error("delivery %s failed for good: %s%s", row["id"], reason,
              f" (falling back to {fallback_to})" if fallback_to else "")
    return Outcome(row["id"], "failed", provider_name, row["audience"], row["channel"], reason,
                   seconds, fallback_to)
