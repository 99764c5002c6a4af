"""Retention of intake's bookkeeping tables: idempotency records and WhatsApp media downloads.

Both tables exist only to answer retries and to drive downloads; neither is the complaint. Kept
forever they grow without bound and keep personal traces (message ids, phone-keyed outcomes,
answer bodies with tracking codes) longer than any purpose needs (data minimisation). The sweep
deletes what is past its window, per scope, in small batches, each its own short transaction:

- PostgreSQL: ``SELECT pk ... LIMIT n FOR UPDATE SKIP LOCKED`` then ``DELETE ... WHERE pk IN
  (...)`` in one transaction, so two intake replicas sweeping at once take different rows and
  neither waits on the other (nor on a request that holds one of the rows).
- SQLite: the same single statement without row locks (SQLite has one writer at a time); small
  batches keep each write lock short. One statement per batch also avoids SQLite's "read first,
  write later" snapshot conflict in WAL mode.

Windows, and why (docs/operations.md, "Retention"; docs/channels.md):

- ``whatsapp`` (WhatsApp message ids, status ids): Meta retries an unacknowledged webhook for up
  to 7 days, so a record must outlive that: default 8 days, and less than 8 is refused.
- ``api:*`` / ``ip:*`` (partner API Idempotency-Key): clients retry within minutes or hours; the
  API promises 72 hours (``IDEMPOTENCY_RETENTION_HOURS``), never less than 24.
- ``amqp:*`` (AMQP ``complaint_submitted`` message ids): a redelivery after a crash comes at once,
  but a copy parked in a dead-letter queue can be requeued by an operator days later; default 30
  days, never less than 8.
- any other scope: the longest of the three (an unknown scope is never cut short).
- ``media_downloads``: ``done`` rows after ``MEDIA_DOWNLOADS_RETENTION_DAYS`` (default 30);
  ``failed`` and ``refused`` rows after the same window *and* only once their complaint is resolved
  or closed: until then the row is the record that the complainant sent a file we could not
  attach (it was reported by ``dumas_intake_whatsapp_media_downloads_total`` when it failed).
  ``pending`` and ``running`` rows are never deleted. The age is taken from ``next_at`` (the last
  attempt), which the ``(state, next_at)`` index already serves.

No nameko here: the intake timer and ``dumas intake prune`` both call :func:`sweep`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import and_, exists, func, not_, or_, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from services.intake.db import complaints, idempotency, media_downloads
from services.intake.handlers import CLOSED
from shared.db import UnitOfWork, make_engine
from shared.retention import RetentionConfigError, Setting, delete_in_batches, setting_value

log = logging.getLogger(__name__)

DELETED = Counter(
    "dumas_intake_retention_deleted_total",
    "Rows deleted by intake's retention sweep, by table (idempotency, media_downloads).",
    ["table"],
)

META_RETRY_HORIZON = timedelta(days=7)  # Meta retries an unacknowledged webhook up to 7 days


SETTINGS = {
    "api": Setting("IDEMPOTENCY_RETENTION_HOURS", 72, timedelta(hours=1), 24),
    "whatsapp": Setting("WHATSAPP_IDEMPOTENCY_RETENTION_DAYS", 8, timedelta(days=1),
                        META_RETRY_HORIZON.days + 1),
    "amqp": Setting("AMQP_IDEMPOTENCY_RETENTION_DAYS", 30, timedelta(days=1), 8),
    "media": Setting("MEDIA_DOWNLOADS_RETENTION_DAYS", 30, timedelta(days=1), 1),
}
BATCH_SIZE = Setting("RETENTION_BATCH_SIZE", 500, timedelta(0), 1)


@dataclass(frozen=True)
class Windows:
    """How long each kind of record is kept, and how much one sweep deletes at a time."""

    api: timedelta = timedelta(hours=72)
    whatsapp: timedelta = timedelta(days=8)
    amqp: timedelta = timedelta(days=30)
    media: timedelta = timedelta(days=30)
    batch_size: int = 500
    max_batches: int = 200  # per rule and sweep; the rest waits for the next sweep


def windows_from(settings: Mapping) -> Windows:
    """Windows from the service config or the environment (same names; absent or empty: the
    default). Raises RetentionConfigError for a value that is not a number or too small."""
    return Windows(**{
        field: setting_value(
            settings, setting,
            "WhatsApp/Meta retries webhooks for up to 7 days" if field == "whatsapp" else "")
        for field, setting in {**SETTINGS, "batch_size": BATCH_SIZE}.items()})


@dataclass(frozen=True)
class Rule:
    """One kind of record: its table, which rows, and how long they are kept."""

    table: str
    name: str
    window: timedelta
    key: tuple
    condition: Callable[[datetime], object]


def rules(windows: Windows) -> list[Rule]:
    idem = idempotency.c
    longest = max(windows.api, windows.whatsapp, windows.amqp)
    api = or_(idem.scope.like("api:%"), idem.scope.like("ip:%"))
    amqp = idem.scope.like("amqp:%")
    whatsapp = idem.scope == "whatsapp"
    media = media_downloads.c
    complaint_over = exists().where(complaints.c.id == media.complaint_id,
                                    complaints.c.status.in_(CLOSED))
    idem_key = (idem.scope, idem.key)
    return [
        Rule("idempotency", "whatsapp", windows.whatsapp, idem_key,
             lambda cutoff: and_(whatsapp, idem.created_at < cutoff)),
        Rule("idempotency", "api", windows.api, idem_key,
             lambda cutoff: and_(api, idem.created_at < cutoff)),
        Rule("idempotency", "amqp", windows.amqp, idem_key,
             lambda cutoff: and_(amqp, idem.created_at < cutoff)),
        Rule("idempotency", "other", longest, idem_key,
             lambda cutoff: and_(not_(or_(whatsapp, api, amqp)), idem.created_at < cutoff)),
        Rule("media_downloads", "done", windows.media, (media.message_id,),
             lambda cutoff: and_(media.state == "done", media.next_at < cutoff)),
        Rule("media_downloads", "failed", windows.media, (media.message_id,),
             lambda cutoff: and_(media.state.in_(("failed", "refused")), media.next_at < cutoff,
                                 complaint_over)),
    ]


@dataclass(frozen=True)
class Outcome:
    """What one sweep deleted (or, dry run, would delete): ``(table, rule, window, rows)``."""

    dry_run: bool
    rows: list[tuple[str, str, timedelta, int]]

    @property
    def by_table(self) -> dict[str, int]:
        totals = {"idempotency": 0, "media_downloads": 0}
        for table, _, _, n in self.rows:
            totals[table] += n
        return totals

    @property
    def total(self) -> int:
        return sum(n for *_, n in self.rows)


def _pause() -> None:
    time.sleep(0)  # under eventlet: let other greenthreads run between batches


def sweep(uow_factory, windows: Windows, now: datetime | None = None, dry_run: bool = False,
          pause: Callable[[], None] = _pause) -> Outcome:
    """Delete (or count, ``dry_run``) every record past its window; one log line per sweep."""
    now = now or datetime.now(UTC)
    rows = []
    for rule in rules(windows):
        cutoff = now - rule.window
        n = (_count(uow_factory, rule, cutoff) if dry_run
             else _delete(uow_factory, rule, cutoff, windows, pause))
        rows.append((rule.table, rule.name, rule.window, n))
    outcome = Outcome(dry_run, rows)
    if not dry_run:
        for table, n in outcome.by_table.items():
            DELETED.labels(table).inc(n)
    log.info(
        "retention sweep%s: %s", " (dry run, nothing deleted)" if dry_run else "",
        ", ".join(f"{table}.{name}={n}" for table, name, _, n in rows),
        extra={**{f"deleted_{t}": n for t, n in outcome.by_table.items()}, "dry_run": dry_run},
    )
    return outcome


def prune(database_url: str, windows: Windows, now: datetime | None = None,
          dry_run: bool = False) -> Outcome:
    """:func:`sweep` on a database of its own (``dumas intake prune``)."""
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        factory = sessionmaker(engine, expire_on_commit=False)
        return sweep(lambda: UnitOfWork(factory, None, None), windows, now, dry_run)
    finally:
        engine.dispose()


def describe(window: timedelta) -> str:
    """``72 hours``, ``8 days``: a window as the settings state it."""
    hours = window / timedelta(hours=1)
    if hours % 24 or hours < 24 * 7:
        return f"{hours:g} hours"
    return f"{hours / 24:g} days"


def _table(rule: Rule):
    return rule.key[0].table


def _count(uow_factory, rule: Rule, cutoff: datetime) -> int:
    with uow_factory() as uow:
        return uow.session.execute(
            select(func.count()).select_from(_table(rule)).where(rule.condition(cutoff))
        ).scalar_one()


def _delete(uow_factory, rule: Rule, cutoff: datetime, windows: Windows, pause) -> int:
    return delete_in_batches(uow_factory, rule.key, rule.condition(cutoff), windows.batch_size,
                             windows.max_batches, pause)

__all__ = ["DELETED", "Outcome", "RetentionConfigError", "Windows", "describe", "prune", "sweep",
           "windows_from"]
