"""notification's use cases: plan deliveries for an event (durably, once), then send them.

Sending is separate from planning: the AMQP message is done once its deliveries are committed;
each delivery is then sent under a short lease (so replicas never send the same one at once),
retried with exponential back-off and jitter on temporary failures (honouring Retry-After),
and parked as `failed` (with a notification_failed event) for good, falling back to the next
configured channel when there is one.
"""

import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, case, func, or_, select, update

from services.notification.db import (
    DUE_ORDER,
    PENDING,
    complaint_views,
    deliveries,
    processed_events,
)
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


@dataclass(frozen=True)
class Planned:
    """What planning one event left to send.

    ``leased``: rows already leased to this process in the planning transaction (as many as the
    caller had send slots for): send them at once, no lease round trip needed. ``pending``: ids
    of the others, left for whoever leases them (a free send slot, or the sweep).
    """

    leased: list[dict]
    pending: list[str]


_INSERT_DELIVERY: dict[str, object] = {}


def _insert_delivery_statement(s):
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id into deliveries, built once per dialect.

    Executed with every planned row at once: SQLAlchemy sends them as one multi-row INSERT
    ("insertmanyvalues"), and the ids returned are the rows that were new.
    """
    name = s.bind.dialect.name
    stmt = _INSERT_DELIVERY.get(name)
    if stmt is None:
        stmt = _INSERT_DELIVERY[name] = (
            dialect_insert(s, deliveries).on_conflict_do_nothing().returning(deliveries.c.id)
        )
    return stmt


class SendSlots(Protocol):
    def reserve(self, wanted: int) -> int:
        """Take up to `wanted` send slots without waiting (never yields); how many were taken."""

    def release(self, count: int) -> None: ...


def plan(uow_factory, event: Event, settings: Settings, *,
         slots: SendSlots | None = None) -> Planned:
    """Record the deliveries an event causes (idempotent) and say what is left to send.

    As many deliveries as ``slots`` grants (reserved once the plan is known, so a worker never
    holds slots it does not use) are inserted already leased to the caller (attempt 1, lease
    until now + lease), in the same transaction as the plan: one commit instead of a plan commit
    plus a lease commit per delivery. If the caller dies before sending them, the lease expires
    and the sweep sends them, exactly as with a lease taken separately. The caller owns the
    slots of ``Planned.leased``; slots of anything not leased are given back here.

    Raises lifecycle.NotYetRouted when the complaint_routed it follows has not been handled yet
    (the consumer retries it later through its retry queues).
    """
    return plan_batch(uow_factory, [event], settings, slots=slots)


def plan_batch(uow_factory, events: list[Event], settings: Settings, *,
               slots: SendSlots | None = None) -> Planned:
    """`plan` for several events in ONE transaction (a batch from the consumer).

    Each event is claimed on its own (a redelivered one plans nothing); the views of all their
    complaints are read in one statement (locked, in complaint order) and written back in one,
    the deliveries of all of them inserted in one. Events of the same complaint are planned in
    their order, each seeing the view the previous one left. Unit deliveries get free send slots
    first (the flow waits for them). Any error rolls the whole batch back (nothing planned,
    slots given back); the consumer then handles its events one at a time.
    """
    now = utcnow()
    with uow_factory() as uow:
        s = uow.session
        if s.get_bind().dialect.name == "postgresql":
            planned = _plan_pg(uow, events, settings, slots, now)
            uow.commit()  # (committed already: the query strings' own COMMIT)
            return planned
        fresh = _claim(uow, events, now)
        if not fresh:
            uow.commit()
            return Planned([], [])
        # Core statements on the session's connection (same transaction): the ORM's execute
        # path adds nothing for them but CPU.
        conn = s.connection()
        stored = _load_views(conn, {str(e.data["complaint_id"]) for e in fresh})
        changed, rows = _plan_rows(fresh, stored, settings, now)
        _save_views(conn, changed, stored, now)
        granted = _lease_first(rows, slots, now, settings)
        try:
            inserted = _insert_deliveries(conn, _insert_delivery_statement(s), rows)
            uow.commit()
        except BaseException:
            if granted:
                slots.release(granted)
            raise
    return _planned(rows, inserted, granted, slots)


def _once(events: list[Event]) -> list[Event]:
    """The events in their order, each once (an event twice in one batch: redelivered)."""
    once, seen = [], set()
    for e in events:
        if str(e.event_id) not in seen:
            seen.add(str(e.event_id))
            once.append(e)
    return once


def _lease_first(rows: list[dict], slots: SendSlots | None, now, settings) -> int:
    """Order the planned rows units first (stable: otherwise as planned), reserve free send
    slots for as many as possible and mark that many leading rows leased to this worker
    (attempt 1, lease until now + lease); how many slots were taken."""
    rows.sort(key=lambda r: r["audience"] != "unit")
    granted = slots.reserve(len(rows)) if slots and rows else 0
    for row in rows[:granted]:
        row["attempts"] = 1
        row["lease_until"] = now + settings.lease
    return granted


def _planned(rows: list[dict], inserted: set[str], granted: int,
             slots: SendSlots | None) -> Planned:
    """The outcome of a committed plan: the rows leased at planning that were new go to
    `leased`; the others (no slot, or the delivery existed already: whoever holds it sends it)
    are ids to lease later. Slots granted to rows that are not leased are given back."""
    leased: list[dict] = []
    pending: list[str] = []
    for row in rows:
        if row["attempts"] and row["id"] in inserted:
            leased.append(row)
        else:
            pending.append(row["id"])
    if granted > len(leased):
        slots.release(granted - len(leased))
    return Planned(leased, pending)


def _plan_rows(fresh: list[Event], stored: dict, settings, now
               ) -> tuple[dict[str, ComplaintView], list[dict]]:
    """The domain's plan of each fresh event, in order, over the complaints' stored views: the
    views that changed and the delivery rows to insert."""
    views = dict(stored)
    changed: dict[str, ComplaintView] = {}
    rows: list[dict] = []
    for event in fresh:
        complaint_id = str(event.data["complaint_id"])
        result: Plan = plan_event(event.event_type, event.data, event.event_id,
                                  views.get(complaint_id), settings.policy)
        if result.view is not None:
            views[complaint_id] = changed[complaint_id] = result.view
        rows.extend(_delivery_rows(event, complaint_id, result, now))
    return changed, rows


# PostgreSQL: the plan in THREE round trips instead of six (psycopg2's BEGIN, claim, views,
# view write, deliveries, COMMIT). The connection is in autocommit mode (UnitOfWork.autocommit)
# and the query strings open and close the transaction themselves: (1) BEGIN, the claims and
# the complaints' views, read and locked in complaint order, in one string; the domain plans;
# (2) the view writes and the deliveries' INSERT ... ON CONFLICT DO NOTHING RETURNING id in one
# string; (3) COMMIT. Rows go in as one JSON array each (json_populate_recordset): no per-row
# parameters.
_PLAN_READ_PG = (
    "BEGIN; "
    "WITH c AS (INSERT INTO processed_events (consumer, event_id, processed_at) "
    "SELECT %(consumer)s, e, %(now)s FROM unnest(%(event_ids)s::varchar[]) AS e "
    "ON CONFLICT DO NOTHING RETURNING event_id), "
    "v AS (SELECT * FROM complaint_views WHERE complaint_id = ANY(%(complaint_ids)s::varchar[]) "
    "ORDER BY complaint_id FOR UPDATE) "
    "SELECT (SELECT array_agg(event_id) FROM c) AS claimed, {} FROM (SELECT 1) AS one "
    "LEFT JOIN v ON true"
)
_VIEW_INSERT_PG = (
    "INSERT INTO complaint_views SELECT * FROM "
    "json_populate_recordset(NULL::complaint_views, %(new_views)s); "
)
_VIEW_UPDATE_PG = (
    "UPDATE complaint_views AS t SET {} FROM "
    "json_populate_recordset(NULL::complaint_views, %(changed_views)s) AS n "
    "WHERE t.complaint_id = n.complaint_id; "
)
_DELIVERIES_INSERT_PG = (
    "INSERT INTO deliveries SELECT * FROM json_populate_recordset(NULL::deliveries, %(rows)s) "
    "ON CONFLICT DO NOTHING RETURNING id"
)
_VIEW_COLUMNS = tuple(c.name for c in complaint_views.c)
_PLAN_READ_PG = _PLAN_READ_PG.format(", ".join(f"v.{name}" for name in _VIEW_COLUMNS))
_VIEW_UPDATE_PG = _VIEW_UPDATE_PG.format(", ".join(
    f"{name} = n.{name}" for name in _VIEW_COLUMNS if name != "complaint_id"))


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()  # aware: with its offset (timestamptz)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _plan_pg(uow, events, settings, slots, now) -> Planned:
    """`plan_batch` on PostgreSQL (see _PLAN_READ_PG): the read, the domain's plan, the write,
    COMMIT. On any error `uow.autocommit()` rolls the transaction back with an explicit
    ROLLBACK (psycopg2 does not know it is in one), and invalidates the connection if that
    fails; the slots taken are given back."""
    with uow.autocommit() as conn:
        granted = 0
        try:
            fresh, stored = _read_plan_pg(conn, _once(events), now)
            changed, rows = _plan_rows(fresh, stored, settings, now)
            granted = _lease_first(rows, slots, now, settings)
            sql, params = _plan_write_pg(changed, stored, rows, now)
            inserted: set[str] = set()
            if sql:
                result = conn.exec_driver_sql(sql, params)
                if rows:
                    inserted = set(result.scalars())
            conn.exec_driver_sql("COMMIT")
        except BaseException:
            if granted:
                slots.release(granted)
            raise
    return _planned(rows, inserted, granted, slots)


def _read_plan_pg(conn, events: list[Event], now
                  ) -> tuple[list[Event], dict[str, ComplaintView]]:
    """The first round trip: BEGIN, claim the events and read (locked) their complaints' views.
    The events claimed now (in their order) and the stored views of their complaints."""
    found = conn.exec_driver_sql(_PLAN_READ_PG, {
        "consumer": CONSUMER, "now": now, "event_ids": [str(e.event_id) for e in events],
        "complaint_ids": sorted({str(e.data["complaint_id"]) for e in events}),
    }).all()
    claimed = set(found[0][0] or ())
    fresh = [e for e in events if str(e.event_id) in claimed]
    fresh_ids = {str(e.data["complaint_id"]) for e in fresh}
    stored = {}
    for row in found:  # (a claim with no view: one row of NULL view columns)
        if row[1] is not None and str(row[1]) in fresh_ids:
            stored[str(row[1])] = _view_from_row(dict(zip(_VIEW_COLUMNS, row[1:], strict=True)))
    return fresh, stored


def _plan_write_pg(changed: dict[str, ComplaintView], stored: dict, rows: list[dict], now
                   ) -> tuple[str, dict]:
    """The second round trip's query string and parameters: the new views inserted, the
    stored ones that changed updated, and the deliveries inserted (RETURNING the ids that were
    new), each table's rows as one JSON array; ("", {}) when there is nothing to write."""
    sql, params = [], {}
    new = [{"complaint_id": view.complaint_id, **_view_values(view, now)}
           for cid, view in changed.items() if cid not in stored]
    if new:
        sql.append(_VIEW_INSERT_PG)
        params["new_views"] = json.dumps(new, default=_json_default)
    updated = [{"complaint_id": view.complaint_id, **_view_values(view, now)}
               for cid, view in changed.items() if cid in stored]
    if updated:
        sql.append(_VIEW_UPDATE_PG)
        params["changed_views"] = json.dumps(updated, default=_json_default)
    if rows:
        sql.append(_DELIVERIES_INSERT_PG)
        params["rows"] = json.dumps(rows, default=_json_default)
    return "".join(sql), params


def _claim(uow, events: list[Event], now) -> list[Event]:
    """The events not handled before, each claimed (processed_events), in their order: a batch
    in ONE multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING (the ids returned are the
    claims that were new) instead of a statement per event."""
    if len(events) == 1:
        return events if uow.claim(CONSUMER, events[0].event_id) else []
    s = uow.session
    name = s.get_bind().dialect.name
    stmt = _CLAIM_MANY.get(name)
    if stmt is None:
        stmt = _CLAIM_MANY[name] = (dialect_insert(s, processed_events).on_conflict_do_nothing()
                                    .returning(processed_events.c.event_id))
    once = _once(events)  # an event twice in one batch (redelivered): claimed once
    new = set(s.connection().execute(stmt, [
        {"consumer": CONSUMER, "event_id": str(e.event_id), "processed_at": now} for e in once
    ]).scalars())
    return [e for e in once if str(e.event_id) in new]


_CLAIM_MANY: dict[str, object] = {}


def _delivery_rows(event: Event, complaint_id: str, result: Plan, now) -> list[dict]:
    return [
        {
            "id": p.delivery_id,
            "cause_event_id": str(event.event_id),
            "complaint_id": complaint_id,
            "audience": p.audience,
            "recipient": p.recipient,
            "channel": p.channel,
            "template": p.template_event,
            "context": p.context,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
            "lease_until": None,
            "reply_window_until": result.reply_windows.get(p.delivery_id),
        }
        for p in result.deliveries
    ]


def _insert_deliveries(conn, insert, rows) -> set[str]:
    """Insert the planned deliveries in one statement; the ids of the rows that were new."""
    if not rows:
        return set()
    return set(conn.execute(insert, rows if len(rows) > 1 else rows[0]).scalars())


# Statements of the plan, built once with bind parameters (no per-event construction).
_VIEWS_SELECT = (
    select(complaint_views)
    .where(complaint_views.c.complaint_id.in_(bindparam("b_ids", expanding=True)))
    .order_by(complaint_views.c.complaint_id)
)
# Lifecycle events of one complaint update its view in turn (row locks, taken in complaint
# order so that two batches never wait for each other crosswise; PostgreSQL only).
_VIEWS_SELECT_LOCKED = _VIEWS_SELECT.with_for_update()
_VIEW_INSERT = complaint_views.insert()
_VIEW_UPDATES: dict[tuple[str, ...], object] = {}


def _view_update(names: tuple[str, ...]):
    stmt = _VIEW_UPDATES.get(names)
    if stmt is None:
        stmt = _VIEW_UPDATES[names] = (
            update(complaint_views)
            .where(complaint_views.c.complaint_id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in names})
        )
    return stmt


def _load_views(conn, complaint_ids) -> dict[str, ComplaintView]:
    query = _VIEWS_SELECT_LOCKED if conn.dialect.name == "postgresql" else _VIEWS_SELECT
    found = conn.execute(query, {"b_ids": sorted(complaint_ids)}).all()
    return {str(row.complaint_id): _view_from_row(row._mapping) for row in found}


def _view_from_row(m) -> ComplaintView:
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


def _view_values(view: ComplaintView, now) -> dict:
    return {
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


def _save_views(conn, changed: dict[str, ComplaintView], stored: dict, now) -> None:
    """Insert the new views and update the stored ones that changed (one statement each)."""
    new = [{"complaint_id": view.complaint_id, **_view_values(view, now)}
           for cid, view in changed.items() if cid not in stored]
    if new:
        conn.execute(_VIEW_INSERT, new if len(new) > 1 else new[0])
    updates = [{"b_id": view.complaint_id,
                **{f"b_{k}": v for k, v in _view_values(view, now).items()}}
               for cid, view in changed.items() if cid in stored]
    if updates:
        conn.execute(_view_update(tuple(k[2:] for k in updates[0] if k != "b_id")),
                     updates if len(updates) > 1 else updates[0])


# -- what is due ----------------------------------------------------------------------------


# Units first, then oldest first: when sends queue (slots busy, e.g. complainant sends waiting
# for intake's contact lookup during a burst), the unit that must act on a complaint is told
# before complainants are told that it was passed on; nothing is skipped, only ordered. The
# order and the pending test are ix_deliveries_due's (db.DUE_ORDER, db.PENDING): the query
# reads that index's first entries instead of sorting every pending delivery.
_DUE = (
    select(deliveries.c.id)
    .where(
        PENDING,
        deliveries.c.next_attempt_at <= bindparam("now", type_=deliveries.c.next_attempt_at.type),
        or_(deliveries.c.lease_until.is_(None),
            deliveries.c.lease_until < bindparam("now", type_=deliveries.c.lease_until.type)),
    )
    .order_by(*DUE_ORDER)
    .limit(bindparam("limit"))
)


def due_deliveries(session, limit: int = 100) -> list[str]:
    return list(session.execute(_DUE, {"now": utcnow(), "limit": limit}).scalars())


def lease_due(uow_factory, limit: int, lease: timedelta) -> list[dict]:
    """Lease up to `limit` due deliveries (units first, then oldest, as `due_deliveries`) and
    read them back: ONE statement for all of them (the drainer leases as many as it has free
    send slots) instead of a query for the ids and a lease transaction per delivery.

    On PostgreSQL the statement runs in `UnitOfWork.autocommit` (a single UPDATE is atomic:
    one round trip, no BEGIN and COMMIT of their own), and rows another transaction
    holds (being marked, or leased by another replica) are skipped, not waited for.
    """
    now = utcnow()
    with uow_factory() as uow:
        params = {"b_now": now, "b_until": now + lease, "b_limit": limit}
        if uow.session.get_bind().dialect.name == "postgresql":
            with uow.autocommit() as conn:
                rows = [dict(zip(_DELIVERY_COLUMNS, r, strict=True))
                        for r in conn.exec_driver_sql(_LEASE_DUE_PG, params)]
        else:
            rows = [dict(r._mapping) for r in uow.session.connection().execute(_LEASE_DUE, params)]
        uow.commit()
    rows.sort(key=lambda r: (r["audience"] != "unit", r["next_attempt_at"]))
    return rows


# When the earliest pending delivery is due: its next attempt, or its lease's end if later.
_NEXT_DUE = select(func.min(case(
    (deliveries.c.lease_until > deliveries.c.next_attempt_at, deliveries.c.lease_until),
    else_=deliveries.c.next_attempt_at,
))).where(deliveries.c.status == "pending")


def next_due_in(session) -> float | None:
    """Seconds until the earliest pending delivery is due (0 or less: due now); None when no
    delivery is pending. One read on the pending rows (ix_deliveries_pending)."""
    due = session.execute(_NEXT_DUE).scalar()
    if due is None:
        return None
    if isinstance(due, str):  # SQLite: an expression's value bypasses the column type
        due = datetime.fromisoformat(due)
    if due.tzinfo is None:
        due = due.replace(tzinfo=UTC)
    return (due - utcnow()).total_seconds()


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


# Lease a due delivery and read it back in one statement (UPDATE ... RETURNING: PostgreSQL, and
# SQLite >= 3.35), built once with bind parameters.
_LEASE = (
    update(deliveries)
    .where(
        deliveries.c.id == bindparam("b_id"),
        deliveries.c.status == "pending",
        deliveries.c.next_attempt_at <= bindparam("b_now"),
        or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < bindparam("b_now")),
    )
    .values(lease_until=bindparam("b_until"), attempts=deliveries.c.attempts + 1)
    .returning(*deliveries.c)
)


# Lease the due deliveries a drainer has send slots for (see lease_due), built once. The due
# rows in a CTE, evaluated once: as an IN (subquery) PostgreSQL may run the locking subquery
# again for later rows, and rows this very statement just leased no longer qualify then, so it
# would lease more than `limit`. They are found by ix_deliveries_due (see _DUE): the lease reads
# the entries of the rows it leases, not every pending delivery.
_LEASE_DUE_ROWS = (
    select(deliveries.c.id)
    .where(
        PENDING,
        deliveries.c.next_attempt_at <= bindparam("b_now"),
        or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < bindparam("b_now")),
    )
    .order_by(*DUE_ORDER)
    .limit(bindparam("b_limit"))
    .cte("due")
)
_LEASE_DUE = (
    update(deliveries)
    .where(
        deliveries.c.id == _LEASE_DUE_ROWS.c.id,
        deliveries.c.status == "pending",
        deliveries.c.next_attempt_at <= bindparam("b_now"),
        or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < bindparam("b_now")),
    )
    .values(lease_until=bindparam("b_until"), attempts=deliveries.c.attempts + 1)
    .returning(*deliveries.c)
)
# PostgreSQL: the same lease, locking the due rows it finds and skipping those another
# transaction holds, as one query string (lease_due runs it in autocommit mode: PostgreSQL runs
# the string as one implicit transaction, which SET LOCAL lasts for). It walks ix_deliveries_due
# by an Index Scan, whatever the table's statistics say: on a table not analyzed yet (a fresh
# database) the planner would read every pending row by a bitmap scan on ix_deliveries_pending
# and sort them, and a bitmap scan never marks the index entries of rows sent since the last
# VACUUM dead, as an Index Scan does when it steps over them (see shared.outbox._CLAIM_PLAN).
# The UPDATE joins the due rows by id only: they are locked, and were checked due in their
# latest version when they were locked (with the conditions repeated, the planner may walk
# every pending row to join them).
_DELIVERY_COLUMNS = tuple(c.name for c in deliveries.c)
_LEASE_DUE_PG = (
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; "
    "WITH due AS MATERIALIZED (SELECT id FROM deliveries "
    "WHERE status = 'pending' AND next_attempt_at <= %(b_now)s "
    "AND (lease_until IS NULL OR lease_until < %(b_now)s) "
    "ORDER BY audience <> 'unit', next_attempt_at LIMIT %(b_limit)s FOR UPDATE SKIP LOCKED) "
    "UPDATE deliveries SET lease_until = %(b_until)s, attempts = deliveries.attempts + 1 "
    "FROM due WHERE deliveries.id = due.id "
    "RETURNING " + ", ".join(f"deliveries.{name}" for name in _DELIVERY_COLUMNS)
)


_MARK_SENT = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"), deliveries.c.status == "pending")
    .values(status="sent", sent_at=bindparam("b_now"), lease_until=None,
            provider=bindparam("b_provider"), provider_message_id=bindparam("b_message_id"),
            last_error=None)
)
# PostgreSQL: every delivery of a batch marked sent and its notification_sent staged in ONE round
# trip: the UPDATE (columns as arrays, one element per delivery: psycopg2 would run an
# executemany UPDATE as one round trip per row) and the outbox INSERT sent as one query string in
# `UnitOfWork.autocommit` (psycopg2's autocommit mode). PostgreSQL runs the statements of one
# query string as one implicit transaction (both commit, or neither), so neither psycopg2's BEGIN
# nor a COMMIT needs a round trip of its own: 1 instead of 4. Values are bound by psycopg2 (aware
# datetimes are sent with their offset; the columns are timestamptz).
_MARK_SENT_PG = (
    "UPDATE deliveries SET status = 'sent', sent_at = v.sent_at, lease_until = NULL, "
    "provider = v.provider, provider_message_id = v.message_id, last_error = NULL "
    "FROM unnest(%(ids)s::varchar[], %(ats)s::timestamptz[], %(providers)s::varchar[], "
    "%(message_ids)s::varchar[]) AS v(id, sent_at, provider, message_id) "
    "WHERE deliveries.id = v.id AND deliveries.status = 'pending'; "
    "INSERT INTO outbox (event_id, exchange, routing_key, correlation_id, body, created_at) "
    "SELECT * FROM unnest(%(o_event_id)s::varchar[], %(o_exchange)s::varchar[], "
    "%(o_routing_key)s::varchar[], %(o_correlation_id)s::varchar[], %(o_body)s::text[], "
    "%(o_created_at)s::timestamptz[])"
)
_OUTBOX_COLUMNS = ("event_id", "exchange", "routing_key", "correlation_id", "body", "created_at")


@dataclass(frozen=True)
class Accepted:
    """A message its provider accepted, not yet marked sent (see `mark_sent`)."""

    row: dict
    provider: str
    message_id: str
    sent_at: datetime  # when the provider accepted it
    seconds: float | None  # time spent in the provider call


def mark_sent(uow_factory, accepted: list[Accepted]) -> list[Outcome]:
    """Mark deliveries sent, each with its notification_sent event, in ONE transaction.

    The sends that finish together share it (service.py's mark-sent batcher): on PostgreSQL one
    UPDATE for every delivery and one INSERT for their events, sent together in one round trip
    (`_MARK_SENT_PG`), instead of a transaction of two statements each. Called only after the
    providers accepted the messages; if it fails, nothing is marked: the leases expire and the
    deliveries are sent again (at least once, as when a process dies between sending and
    marking).
    """
    if not accepted:
        return []
    ordered = sorted(accepted, key=lambda a: a.row["id"])  # rows locked in one order
    with uow_factory() as uow:
        if uow.session.get_bind().dialect.name == "postgresql":
            outbox_rows = [uow.outbox_row(_sent_event(a)) for a in ordered]
            params = {f"o_{column}": [row[column] for row in outbox_rows]
                      for column in _OUTBOX_COLUMNS}
            params.update(ids=[a.row["id"] for a in ordered],
                          ats=[a.sent_at for a in ordered],
                          providers=[a.provider for a in ordered],
                          message_ids=[a.message_id[:200] for a in ordered])
            with uow.autocommit() as conn:
                conn.exec_driver_sql(_MARK_SENT_PG, params)
        else:
            params = [{"b_id": a.row["id"], "b_now": a.sent_at, "b_provider": a.provider,
                       "b_message_id": a.message_id[:200]} for a in ordered]
            conn = uow.session.connection()
            conn.execute(_MARK_SENT, params if len(params) > 1 else params[0])
            uow.publish_many([_sent_event(a) for a in ordered])
        uow.commit()  # (PostgreSQL: committed already; wakes the outbox relay)
    # One line per batch: the deliveries can be traced by id (the providers log each one at
    # DEBUG); metrics count them (dumas_notifications_total).
    log.info("marked sent: %s", ", ".join(
        f"{a.row['id']} ({a.row['audience']}, {a.provider}/{a.row['channel']})"
        for a in ordered))
    return [Outcome(a.row["id"], "sent", a.provider, a.row["audience"], a.row["channel"],
                    seconds=a.seconds) for a in accepted]  # in the order given


def _sent_event(a: Accepted) -> dict:
    row = a.row
    return build_event(
        "notification_sent",
        {
            "complaint_id": row["complaint_id"],
            "delivery_id": row["id"],
            "cause_event_id": row["cause_event_id"],
            "audience": row["audience"],
            "channel": row["channel"],
            "provider": a.provider,
            "template": row["template"],
            "sent_at": a.sent_at,
        },
        correlation_id=row["complaint_id"],
        occurred_at=a.sent_at,
    )


def _mark_alone(uow_factory, accepted: Accepted) -> Outcome:
    return mark_sent(uow_factory, [accepted])[0]


def _lease(uow_factory, delivery_id: str, lease: timedelta) -> dict | None:
    now = utcnow()
    with uow_factory() as uow:
        found = uow.session.connection().execute(
            _LEASE, {"b_id": delivery_id, "b_now": now, "b_until": now + lease}
        ).one_or_none()
        row = dict(found._mapping) if found is not None else None
        uow.commit()
    return row


def send_one(
    uow_factory, delivery_id: str, *, resolve_address, catalogue, provider_for, settings,
    mark=None,
) -> Outcome:
    """Lease one delivery and send it (skipped when someone else holds it or it is done)."""
    row = _lease(uow_factory, delivery_id, settings.lease)
    if row is None:
        return Outcome(delivery_id, "skipped")
    return send_leased(uow_factory, row, resolve_address=resolve_address, catalogue=catalogue,
                       provider_for=provider_for, settings=settings, mark=mark)


def send_leased(
    uow_factory, row: dict, *, resolve_address, catalogue, provider_for, settings,
    mark: Callable[[Accepted], Outcome] | None = None,
) -> Outcome:
    """Send a delivery this process holds the lease of (``row``: its columns, attempts counted).

    Once the provider accepted the message, ``mark`` marks it sent (returns when committed):
    by default in a transaction of its own; the service passes its batcher, which marks the
    sends that finish together in one (`mark_sent`).
    """
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
    accepted = Accepted(row, provider.name, result.provider_message_id, utcnow(),
                        _since(started))
    if mark is None:
        return _mark_alone(uow_factory, accepted)
    return mark(accepted)


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
