"""Retention of the shared machinery's bookkeeping: published outbox rows and processed_events.

Every service with an outbox marks a row ``published_at`` once the broker confirmed it, and
every consumer records each handled event id in ``processed_events``; kept forever both grow
without bound (disk, and indexes that every insert maintains). The sweep deletes what is past its
window in small batches, each its own short transaction, like intake's own sweep
(services/intake/retention.py, docs/operations.md "Retention"):

- ``outbox``: rows published more than ``OUTBOX_RETENTION_HOURS`` ago (default 168, 7 days).
  An unpublished row is never deleted, however old (``published_at < cutoff`` is never true for
  NULL). The outbox has no index on ``published_at``; instead the sweep walks the primary key
  from the lowest id, one page of ``batch_size`` rows per batch (published rows are the oldest
  ids), and stops at the first page that reaches rows *created* after the cutoff: such a row and
  every later one cannot have been published before it. Each batch reads one page through the
  primary key, never the whole table, and no index is added to the hot insert/publish path. A
  row inside the page that is not deletable (unpublished, or published late) is passed over;
  a long run of old unpublished rows (a broker outage) uses up the per-sweep cap, so published
  rows behind it wait until the relay has caught up.
- ``processed_events``: rows older than ``PROCESSED_EVENTS_RETENTION_DAYS`` (default 30) by
  ``processed_at``, oldest first, through the ``ix_processed_events_processed_at`` index (its
  primary key, ``(consumer, event_id)``, is in random order). The window must outlive any
  redelivery: a message parked in a dead-letter queue can be requeued by an operator days later,
  and once its record is gone it would be handled again. Less than 8 days is refused.

PostgreSQL: each batch locks its rows with ``FOR UPDATE SKIP LOCKED`` before deleting them, so
replicas sweeping at once take different rows and wait on nobody. SQLite: each batch is one
``DELETE`` (one writer at a time; a read then a write in one transaction can fail on a stale WAL
snapshot). At most ``max_batches`` batches per table and sweep; the rest goes with the next one.

``OUTBOX_DELETE_PUBLISHED`` (default off) makes the relay delete a row once the broker confirmed
it instead of marking it (cheaper for the database; shared/outbox.py): the outbox then keeps no
record of published events and this sweep finds none to delete there.

No nameko here: shared/nameko_ext.py's ``Database`` provider runs :func:`sweep` on a timer,
``dumas <service> prune`` runs :func:`prune` once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, delete, func, select, tuple_
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from shared import metrics
from shared.db import UnitOfWork, make_engine

log = logging.getLogger(__name__)

SWEEP_SECONDS = "OUTBOX_RETENTION_SWEEP_SECONDS"
DELETE_PUBLISHED = "OUTBOX_DELETE_PUBLISHED"
DEFAULT_SWEEP_SECONDS = 3600.0
REDELIVERY_HORIZON_DAYS = 8  # as intake's AMQP idempotency records (dead letters requeued later)


class RetentionConfigError(ValueError):
    """A retention setting that is not a number (or a boolean) or is out of its safe range."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: float
    unit: timedelta
    minimum: float


SETTINGS = {
    "outbox": Setting("OUTBOX_RETENTION_HOURS", 168, timedelta(hours=1), 1),
    "processed_events": Setting("PROCESSED_EVENTS_RETENTION_DAYS", 30, timedelta(days=1),
                                REDELIVERY_HORIZON_DAYS),
    "batch_size": Setting("RETENTION_BATCH_SIZE", 500, timedelta(0), 1),
}


@dataclass(frozen=True)
class Windows:
    """How long each table's rows are kept, and how much one sweep deletes at a time."""

    outbox: timedelta = timedelta(hours=168)
    processed_events: timedelta = timedelta(days=30)
    batch_size: int = 500
    max_batches: int = 200  # per table and sweep; the rest waits for the next sweep


def setting_value(settings: Mapping, setting: Setting, hint: str = "",
                  largest: float = 10_000):
    """`setting`'s value in `settings` (absent or empty: its default) in its unit: a timedelta,
    or an int when the unit is zero (a count). Raises RetentionConfigError for a value that is
    not a number, is below the setting's minimum (`hint` says why that minimum) or above
    `largest` times it ("keep forever" is not a retention)."""
    raw = settings.get(setting.name)
    try:
        number = setting.default if raw in (None, "") else float(raw)
    except (TypeError, ValueError):
        raise RetentionConfigError(f"{setting.name} must be a number, got {raw!r}") from None
    if not number >= setting.minimum:  # also refuses NaN
        raise RetentionConfigError(
            f"{setting.name}={raw} is below the safe minimum {setting.minimum:g}"
            + (f" ({hint})" if hint else ""))
    if number > setting.minimum * largest:  # also refuses infinity
        raise RetentionConfigError(f"{setting.name}={raw} is implausibly large")
    return int(number) if not setting.unit else number * setting.unit


def windows_from(settings: Mapping) -> Windows:
    """Windows from the service config (absent or empty: the default). Raises
    RetentionConfigError for a value that is not a number or is too small or too large."""
    return Windows(**{
        field: setting_value(
            settings, setting,
            "a parked message can be requeued from its dead-letter queue days later"
            if field == "processed_events" else "", largest=100_000)
        for field, setting in SETTINGS.items()})


def sweep_interval(settings: Mapping) -> float:
    """Seconds between sweeps (``OUTBOX_RETENTION_SWEEP_SECONDS``); 0 or less: no sweep.
    Raises RetentionConfigError for a value that is not a finite number."""
    raw = settings.get(SWEEP_SECONDS)
    if raw in (None, ""):
        return DEFAULT_SWEEP_SECONDS
    try:
        if isinstance(raw, bool):  # `true` in config.yaml: not a number of seconds
            raise TypeError
        seconds = float(raw)
    except (TypeError, ValueError):
        raise RetentionConfigError(f"{SWEEP_SECONDS} must be a number, got {raw!r}") from None
    if not math.isfinite(seconds):  # NaN would silently mean "never", infinity likewise
        raise RetentionConfigError(f"{SWEEP_SECONDS}={raw} is not a finite number of seconds "
                                   "(0 turns the sweep off)")
    return seconds


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def delete_published(settings: Mapping) -> bool:
    """``OUTBOX_DELETE_PUBLISHED``: whether the outbox relay deletes a confirmed row instead of
    marking it published (absent or empty: False, the rows are kept for OUTBOX_RETENTION_HOURS).
    Raises RetentionConfigError for anything but a boolean (true/false, yes/no, on/off, 1/0): a
    typo must not decide whether the record of published events is kept."""
    raw = settings.get(DELETE_PUBLISHED)
    if raw in (None, ""):
        return False
    if isinstance(raw, bool):  # config.yaml: nameko reads `true` / `yes` / `off` as booleans
        return raw
    word = str(raw).strip().lower() if isinstance(raw, str | int) else None
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise RetentionConfigError(
        f"{DELETE_PUBLISHED} must be a boolean (true or false), got {raw!r}")


def _pause() -> None:
    time.sleep(0)  # under eventlet: let other greenthreads run between batches


def sweep(uow_factory, outbox: Table | None, processed: Table | None, windows: Windows,
          service: str, now: datetime | None = None, pause: Callable[[], None] = _pause,
          keep_going: Callable[[], bool] = lambda: True) -> dict[str, int]:
    """Delete what is past its window in the tables given (None: the service has none); one
    log line per sweep. Returns {table: rows deleted}. ``keep_going`` is asked before every
    batch (False: the service is stopping, the rest waits for the next sweep)."""
    now = now or datetime.now(UTC)
    deleted = {}
    if outbox is not None:
        deleted["outbox"] = _sweep_outbox(uow_factory, outbox, now - windows.outbox, windows,
                                          pause, keep_going)
    if processed is not None:
        deleted["processed_events"] = _sweep_processed(
            uow_factory, processed, now - windows.processed_events, windows, pause, keep_going)
    for table, n in deleted.items():
        metrics.RETENTION_DELETED.labels(service, table).inc(n)
    log.info("retention sweep: %s", ", ".join(f"{t}={n}" for t, n in deleted.items()),
             extra={f"deleted_{t}": n for t, n in deleted.items()})
    return deleted


def count(uow_factory, outbox: Table | None, processed: Table | None, windows: Windows,
          now: datetime | None = None) -> dict[str, int]:
    """What :func:`sweep` would delete, without deleting (``dumas <service> prune --dry-run``),
    as {table: rows}. Not capped by ``max_batches``; the outbox count reads the whole table
    (it has no index on ``published_at``), fine for an operator's question, not for a timer."""
    now = now or datetime.now(UTC)
    found = {}
    with uow_factory() as uow:
        if outbox is not None:
            found["outbox"] = uow.session.execute(
                select(func.count()).select_from(outbox)
                .where(outbox.c.published_at < now - windows.outbox)).scalar_one()
        if processed is not None:
            found["processed_events"] = uow.session.execute(
                select(func.count()).select_from(processed)
                .where(processed.c.processed_at < now - windows.processed_events)).scalar_one()
    return found


def prune(database_url: str, outbox: Table | None, processed: Table | None, windows: Windows,
          service: str, now: datetime | None = None, dry_run: bool = False) -> dict[str, int]:
    """One :func:`sweep` (or, ``dry_run``, :func:`count`) on a database of its own, for the
    command line (``dumas <service> prune``); {table: rows deleted (or to delete)}."""
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        factory = sessionmaker(engine, expire_on_commit=False)

        def uow():
            return UnitOfWork(factory, None, None)

        if dry_run:
            return count(uow, outbox, processed, windows, now)
        return sweep(uow, outbox, processed, windows, service, now=now)
    finally:
        engine.dispose()


def _sweep_outbox(uow_factory, t: Table, cutoff: datetime, windows: Windows, pause,
                  keep_going) -> int:
    deleted, after = 0, None
    deletable = t.c.published_at < cutoff  # NULL (unpublished) is never < cutoff
    for _ in range(windows.max_batches):
        if not keep_going():
            break
        with uow_factory() as uow:
            session = uow.session
            page = select(t.c.id, t.c.created_at, t.c.published_at).order_by(t.c.id)
            if after is not None:
                page = page.where(t.c.id > after)
            rows = session.execute(page.limit(windows.batch_size)).all()
            if not rows:
                break
            picked = [r.id for r in rows if r.published_at is not None and r.published_at < cutoff]
            n = 0
            if picked:
                if session.get_bind().dialect.name == "postgresql":
                    # The condition again, under the lock: skip rows another replica holds.
                    locked = session.execute(
                        select(t.c.id).where(t.c.id.in_(picked), deletable)
                        .with_for_update(skip_locked=True)).scalars().all()
                    if locked:
                        n = session.execute(delete(t).where(t.c.id.in_(locked))).rowcount
                else:
                    n = session.execute(delete(t).where(t.c.id.in_(picked), deletable)).rowcount
                uow.commit()
        deleted += n
        after = rows[-1].id
        # Past the cutoff by creation time: no later row can have been published before it.
        if len(rows) < windows.batch_size or any(r.created_at >= cutoff for r in rows):
            break
        pause()
    return deleted


def _sweep_processed(uow_factory, t: Table, cutoff: datetime, windows: Windows, pause,
                     keep_going) -> int:
    return delete_in_batches(uow_factory, (t.c.consumer, t.c.event_id), t.c.processed_at < cutoff,
                             windows.batch_size, windows.max_batches, pause, keep_going,
                             order_by=t.c.processed_at)


def delete_in_batches(uow_factory, key: tuple, condition, batch_size: int, max_batches: int,
                      pause: Callable[[], None], keep_going: Callable[[], bool] = lambda: True,
                      order_by=None) -> int:
    """Delete the rows of `key`'s table (`key`: its primary-key columns) that match
    `condition`, `batch_size` at a time, each batch its own short transaction, at most
    `max_batches` of them (the rest waits for the next sweep); `pause` between batches,
    `keep_going` asked before each. How many were deleted. Shared by this module's sweep and
    intake's retention of personal data."""
    table = key[0].table
    target = tuple_(*key) if len(key) > 1 else key[0]
    batch = select(*key).where(condition)
    if order_by is not None:
        batch = batch.order_by(order_by)
    batch = batch.limit(batch_size)
    deleted = 0
    for _ in range(max_batches):
        if not keep_going():
            break
        with uow_factory() as uow:
            session = uow.session
            if session.get_bind().dialect.name == "postgresql":
                # Lock the batch first, skipping rows another replica (or a request) holds;
                # they are left for the next sweep. A `key IN (SELECT ... LIMIT n)` subquery is
                # not reliably evaluated once by PostgreSQL (one statement deleted past its
                # LIMIT in intake's sweep), so the keys are read, then deleted.
                found = session.execute(batch.with_for_update(skip_locked=True, of=table)).all()
                if not found:
                    break
                picked = [tuple(r) for r in found] if len(key) > 1 else [r[0] for r in found]
                n = session.execute(delete(table).where(target.in_(picked))).rowcount
            else:
                # One statement: it takes SQLite's write lock at once (a read followed by a
                # write can fail with a stale WAL snapshot when another process wrote between).
                n = session.execute(delete(table).where(target.in_(batch), condition)).rowcount
            uow.commit()
        deleted += n
        if n < batch_size:
            break
        pause()
    return deleted


__all__ = ["RetentionConfigError", "Windows", "count", "delete_in_batches", "delete_published",
           "prune", "sweep", "sweep_interval", "windows_from"]
