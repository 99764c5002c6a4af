"""The outbox relay: publishes committed events to RabbitMQ with publisher confirms.

Rows are written by `UnitOfWork.publish` in the same transaction as the state change that causes
them; the relay is the only place that talks to the broker for events. A crash between the broker's
confirmation and the `published_at` update re-publishes the same event id later: consumers are
idempotent, so at-least-once is enough.
"""

import contextlib
import logging
import struct
import threading
import time
from collections import namedtuple
from datetime import UTC, datetime

from amqp.exceptions import MessageNacked, RecoverableConnectionError
from kombu import Connection, Exchange, Queue
from sqlalchemy import Connection as DbConnection
from sqlalchemy import Engine, Table, bindparam, delete, func, select, update

from shared import metrics
from shared.db import prepared_statements
from shared.messaging import (
    SUBSCRIPTIONS,
    consumer_queue_name,
    events_exchange,
    queue_type_arguments,
)

log = logging.getLogger(__name__)

_PING = "SELECT 1"
# A relay connection unused for this long is checked before its next batch (as the pool does).
IDLE_CHECK_AFTER = 5.0

# Milliseconds the relay waits, once woken by a commit, for more commits to join the batch
# (config OUTBOX_RELAY_GATHER_MS; 0 = publish at once). docs/performance.md has the figures.
DEFAULT_GATHER_MS = 2.0

# PostgreSQL: milliseconds a confirmed batch's transaction may stay open, waiting to be committed
# in the same round trip as the next claim, before the relay commits it on its own (docs/
# performance.md, "Session 5: outbox relay"). Its rows stay locked (other replicas skip them)
# and count as unpublished until then; a crash before the commit publishes them again.
DEFAULT_FLUSH_MS = 50.0

# The relay's claim statement, PREPAREd on its own connection (PostgreSQL).
_CLAIM_STATEMENT = "dumas_outbox_claim"

# PostgreSQL: the claim must walk the partial index `ix_outbox_unpublished` in id order. A plain
# index scan marks the entries of rows it finds dead (published, so no longer in the index's
# predicate, until VACUUM removes them) as killed, so the next claim steps over them without
# visiting the table. A bitmap heap scan (with a sort) or a sequential scan, which the planner
# picks on a young table whose statistics still say most rows are unpublished, kills nothing:
# every claim then visits every row published since the last VACUUM (at 200 complaints/s, ~1,000
# table pages per claim, most of the relays' database CPU; docs/performance.md, "Session 8").
# Both cost switches only penalise those plans, so the claim still runs if the index is missing.
_CLAIM_PLAN = ("enable_seqscan", "enable_bitmapscan")

# A claimed row as the relay's PostgreSQL cursor returns it (the claim's RETURNING list).
_Row = namedtuple("_Row", "id event_id exchange routing_key correlation_id body")


def declare_subscriber_queues(channel, exchange_name: str) -> None:
    """Declare (idempotently) every consumer queue subscribed to `exchange_name` in
    shared.messaging.SUBSCRIPTIONS, bound as its consumer binds it.

    A consumer declares its own queue when it starts; until then the broker would drop an event
    published to the exchange as unroutable. Declaring the subscribers' queues here first means
    an event published before a consumer service has started (or while it is still connecting)
    waits in its queue instead of being lost. Only the main queue is declared, with exactly the
    arguments its consumer uses; its retry and parking queues are the consumer's own business.
    """
    for consumer, producer, event_type in SUBSCRIPTIONS:
        exchange = events_exchange(producer)
        if exchange.name != exchange_name:
            continue
        Queue(
            consumer_queue_name(consumer, event_type),
            exchange=exchange,
            routing_key=event_type,
            durable=True,
            queue_arguments=queue_type_arguments() or None,
        )(channel).declare()


# -- the wire form of a published event (AMQP 0-9-1, section 4.2.3; frames of type 1 method,
# 2 content header, 3 body: type, channel, payload size, payload, frame end) -------------------
_FRAME_END = b"\xce"
_FRAME_HEAD = struct.Struct(">BHI")
# basic.publish (class 60, method 40): reserved short, exchange, routing key, then the bits
# mandatory and immediate, both off (an event no queue is bound for is dropped, as before; the
# relay declares the subscribers' queues first, `declare_subscriber_queues`).
_PUBLISH_METHOD = struct.pack(">HHH", 60, 40, 0)
_NO_FLAGS = b"\x00"
_CONTENT_HEADER = struct.Struct(">HHQ")  # class 60, weight 0, body size


def _shortstr(value: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > 255:
        raise ValueError(f"AMQP short string over 255 bytes: {value[:40]!r}...")
    return bytes((len(data),)) + data


# Every event's properties but its ids, serialised once: the property flags (content_type,
# content_encoding, application_headers, delivery_mode, priority, correlation_id, message_id),
# then JSON in UTF-8, no headers (an empty table), persistent (2), priority 0. The message
# kombu's Producer.publish built; tests/integration/test_outbox_frames.py checks the bytes
# against py-amqp's own basic_publish.
_PROPERTIES_HEAD = (struct.pack(">H", 0xFC80) + _shortstr("application/json")
                    + _shortstr("utf-8") + struct.pack(">IBB", 0, 2, 0))


def _method_frame(channel_id: int, exchange: str, routing_key: str) -> bytes:
    payload = _PUBLISH_METHOD + _shortstr(exchange) + _shortstr(routing_key) + _NO_FLAGS
    return _FRAME_HEAD.pack(1, channel_id, len(payload)) + payload + _FRAME_END


def _content_frames(channel_id: int, frame_max: int, row, out: list) -> None:
    """Append the content header and body frames of `row`'s message to `out`: the body (the
    row's JSON, UTF-8) in frames of at most `frame_max` bytes."""
    body = row.body.encode("utf-8")
    header = b"".join((_CONTENT_HEADER.pack(60, 0, len(body)), _PROPERTIES_HEAD,
                       _shortstr(row.correlation_id), _shortstr(row.event_id)))
    out += (_FRAME_HEAD.pack(2, channel_id, len(header)), header, _FRAME_END)
    chunk = frame_max - 8  # the frame's own 8 bytes (head and end) count against frame_max
    for start in range(0, len(body), chunk):
        part = body[start:start + chunk]
        out += (_FRAME_HEAD.pack(3, channel_id, len(part)), part, _FRAME_END)


class OutboxRelay:
    def __init__(
        self,
        engine: Engine,
        table: Table,
        amqp_uri: str,
        service: str,
        *,
        batch_size: int = 200,
        idle_interval: float = 0.5,
        confirm_timeout: float = 30.0,
        gather_ms: float = DEFAULT_GATHER_MS,
        flush_ms: float = DEFAULT_FLUSH_MS,
        prepared: bool | None = None,
        delete_published: bool = False,
    ):
        self.engine = engine
        self.table = table
        self.amqp_uri = amqp_uri
        self.service = service
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self.confirm_timeout = confirm_timeout
        self.gather = max(0.0, float(gather_ms)) / 1000
        self.flush_after = max(0.0, float(flush_ms)) / 1000
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._connection: Connection | None = None
        self._channel = None  # the confirm-mode channel events are published on
        self._published: dict = {}  # routing key -> its OUTBOX_PUBLISHED child
        self._declared: set[str] = set()
        self._method_frames: dict = {}  # (exchange, routing key) -> its basic.publish frame
        self._next_tag = 1
        self._confirmed = 0
        self._singles: set[int] = set()
        self._nacked: set[int] = set()
        self._broker_down_since: float | None = None
        self._skip_locked = engine.dialect.name == "postgresql"
        self._db: DbConnection | None = None  # PostgreSQL: the relay's own connection
        self._cursor = None  # its DBAPI cursor (autocommit: the relay sends BEGIN/COMMIT)
        self._db_used = 0.0
        # PostgreSQL: a confirmed batch's transaction not committed yet (monotonic time it
        # became committable), or None. Only ever open after every message of it was confirmed.
        self._open_since: float | None = None
        metrics.OUTBOX_BACKLOG.labels(service)
        metrics.OUTBOX_OLDEST_AGE.labels(service)
        self._batch_sizes = metrics.OUTBOX_BATCH_SIZE.labels(service)
        # Statements built once, executed with parameters.
        t = table
        columns = (t.c.id, t.c.event_id, t.c.exchange, t.c.routing_key, t.c.correlation_id,
                   t.c.body)
        self._pending = (
            select(*columns).where(t.c.published_at.is_(None)).order_by(t.c.id)
            .limit(batch_size)
        )
        # SQLite's relay (no claim statement): mark, or delete (`delete_published`, below).
        confirmed = t.c.id.in_(bindparam("ids", expanding=True))
        self._mark = (delete(t).where(confirmed) if delete_published
                      else update(t).where(confirmed).values(published_at=bindparam("at")))
        # PostgreSQL: claim and mark in one statement, sent in the same round trip as the
        # transaction's `BEGIN` and `SET LOCAL` (the relay's connection is in autocommit mode, so
        # the driver sends no `BEGIN` of its own), and, when the previous batch's transaction is
        # still open, its `COMMIT` too (`_commit_first`). Marking rows published need not wait
        # for the WAL flush: if a crash loses that commit, the rows are published again, which
        # consumers absorb (they are idempotent). Saves one disk flush per batch, the scarcest
        # resource of the flow (every service's commits share the server's WAL). LOCAL: the
        # setting ends with the transaction, also behind a transaction-mode pooler (PgBouncer).
        #
        # The claim is planned once per connection (PREPAREd when the relay's connection opens):
        # planning it took the server more CPU than running it (EXPLAIN: planning 0.13-0.24 ms,
        # execution 0.07-0.15 ms for a batch of one). Behind a transaction-mode pooler
        # (DUMAS_PG_PREPARED_STATEMENTS=0, shared.db.prepared_statements) the statement is sent
        # as text. `id = ANY(ARRAY(SELECT ...))` rather than `id IN (SELECT ...)`: the same rows
        # (the sub-select runs once, locking what it returns), cheaper to plan (no semi-join).
        name = engine.dialect.identifier_preparer.quote(t.name)
        claimed = (f"id = ANY(ARRAY(SELECT id FROM {name} WHERE published_at IS NULL ORDER BY id "
                   f"LIMIT {int(batch_size)} FOR UPDATE SKIP LOCKED)) "
                   "RETURNING id, event_id, exchange, routing_key, correlation_id, body")
        self._prepared = prepared_statements() if prepared is None else prepared
        # `delete_published` (config OUTBOX_DELETE_PUBLISHED, off by default): a confirmed row is
        # deleted instead of marked, in the same transaction and with the same guarantees.
        # Measured cheaper for the server (no new row version, no index entries; docs/
        # performance.md, "Session 5: outbox relay"), but the outbox then keeps no record of
        # published events (and the retention sweep has none to delete).
        if delete_published:
            mark, args = f"DELETE FROM {name} WHERE {claimed}", ("", "", "")
        else:
            mark = f"UPDATE {name} SET published_at = {{at}} WHERE {claimed}"
            args = (" (timestamptz)", "$1", " (%(at)s)")
        # The plan switches (`_CLAIM_PLAN`): for the session on the relay's own connection when
        # the claim is PREPAREd there (it is planned, and replanned, on that connection only);
        # per transaction when it is sent as text (a transaction-mode pooler may hand each
        # transaction another server connection).
        self._prepare = "".join(f"SET {g} = off; " for g in _CLAIM_PLAN) + (
            f"PREPARE {_CLAIM_STATEMENT}{args[0]} AS " + mark.format(at=args[1]))
        self._claim = "BEGIN; SET LOCAL synchronous_commit = off; " + (
            f"EXECUTE {_CLAIM_STATEMENT}{args[2]}" if self._prepared
            else "".join(f"SET LOCAL {g} = off; " for g in _CLAIM_PLAN)
            + mark.format(at="%(at)s"))
        self._commit_first = "COMMIT; " + self._claim

    # -- lifecycle -------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def run(self) -> None:
        """Loop until stopped: drain the outbox, then wait for a wake-up or the idle interval.

        On PostgreSQL a confirmed batch's transaction is left open and committed in the round
        trip of the next claim; if no claim comes within `flush_after`, it is committed alone.
        """
        backoff = self.idle_interval
        while not self._stopped.is_set():
            try:
                published = self._next_batch()
                backoff = self.idle_interval
            except Exception as exc:  # broker or database down: keep the rows, retry later
                metrics.OUTBOX_PUBLISH_ERRORS.labels(self.service).inc()
                self._on_failure(exc)
                published = 0
                backoff = min(max(backoff * 2, 1.0), 10.0)
            if published >= self.batch_size:
                continue
            if self._wait(backoff) and self.gather and not self._stopped.is_set():
                # Woken by a commit: let the commits of the next few milliseconds join it, so
                # events committed close together share one claim, publish and confirm wait.
                # Their wake-ups, set before the clear below, are answered by this batch (each
                # commit is done before its wake-up), so none is missed.
                time.sleep(self.gather)
            self._wake.clear()
        self._close()

    def _wait(self, timeout: float) -> bool:
        """Wait up to `timeout` for a wake-up (True); meanwhile commit an open batch
        transaction once it has waited `flush_after` for a next claim to carry its COMMIT."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if self._open_since is not None:
                flush_in = self._open_since + self.flush_after - now
                if flush_in <= 0:
                    self._flush()
                    continue
                if remaining <= 0:
                    return False
                if self._wake.wait(min(remaining, flush_in)):
                    return True
                continue
            if remaining <= 0:
                return False
            return self._wake.wait(remaining)

    def _flush(self) -> None:
        """Commit the open batch transaction on its own (its rows were all confirmed)."""
        try:
            self._cursor.execute("COMMIT")
            self._open_since = None
            self._db_used = time.monotonic()
        except Exception as exc:  # the rows stay unpublished and are published again
            metrics.OUTBOX_PUBLISH_ERRORS.labels(self.service).inc()
            log.warning("outbox relay: could not mark a published batch (%s); "
                        "its events will be published again", exc)
            self._close_db()

    # -- one batch -----------------------------------------------------------------------
    def publish_batch(self) -> int:
        """Publish one batch; on return its rows are marked published (committed)."""
        if self._skip_locked:
            return self._publish_batch_locked(commit=True)
        return self._publish_batch_sqlite()

    def _next_batch(self) -> int:
        """`publish_batch` for the run loop: on PostgreSQL the batch's transaction stays open
        for the next claim (or `_wait`'s flush) to commit."""
        if self._skip_locked:
            return self._publish_batch_locked(commit=False)
        return self._publish_batch_sqlite()

    def _publish_batch_sqlite(self) -> int:
        # SQLite: one process owns the file; never yield inside a write transaction.
        with self.engine.connect() as conn:
            rows = conn.execute(self._pending).all()
            conn.rollback()
        if rows:
            self._publish(rows)
            with self.engine.begin() as conn:
                conn.execute(self._mark, {"ids": [r.id for r in rows], "at": datetime.now(UTC)})
        return len(rows)

    def _publish_batch_locked(self, commit: bool) -> int:
        """PostgreSQL: claim and mark the batch in one statement, publish, then commit.

        `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING` locks the rows
        (replicas claim disjoint ones) and marks them published inside a transaction that
        commits only after the broker confirmed every message; if publishing fails, the
        connection is closed, the transaction rolls back and the rows stay unpublished.

        One round trip per batch when the previous batch's transaction is still open (`COMMIT;
        BEGIN; SET LOCAL ...; UPDATE ... RETURNING`), else two (the same without the COMMIT,
        then a COMMIT: at once with `commit`, otherwise by the next claim or after
        `flush_after`).
        """
        cursor = self._claim_cursor()
        try:
            sql = self._claim if self._open_since is None else self._commit_first
            self._open_since = None
            cursor.execute(sql, {"at": datetime.now(UTC)})
            rows = [_Row._make(r) for r in cursor.fetchall()]
            if rows:
                rows.sort()  # by id (unique, first): RETURNING has no order; publish in order
                self._publish(rows)
            if commit:
                cursor.execute("COMMIT")
            else:
                self._open_since = time.monotonic()
        except BaseException:
            self._close_db()  # rolled back, or its state is unknown: start afresh next time
            raise
        self._db_used = time.monotonic()
        return len(rows)

    def _claim_cursor(self):
        """A cursor of the relay's own database connection, kept between batches outside the
        pool, in autocommit mode (the relay's statements carry their BEGIN and COMMIT).

        Per batch this saves the pool's checkout and checkin; detached, it leaves the pool's
        connections to the workers. Unused for IDLE_CHECK_AFTER seconds (and no transaction
        open on it), it is pinged first and replaced if dead.
        """
        conn = self._db
        if (conn is not None and self._open_since is None
                and time.monotonic() - self._db_used > IDLE_CHECK_AFTER):
            try:
                self._cursor.execute(_PING)
            except Exception as exc:
                log.info("outbox relay: database connection lost (%s); reconnecting", exc)
                self._close_db()
                conn = None
        if conn is None:
            conn = self.engine.connect()
            conn.detach()  # closed, never returned to the pool, when the relay is done
            dbapi = conn.connection.dbapi_connection
            dbapi.rollback()  # a connect hook may have left a transaction open
            dbapi.autocommit = True
            cursor = dbapi.cursor()
            if self._prepared:
                try:
                    cursor.execute(self._prepare)
                except BaseException:
                    with contextlib.suppress(Exception):
                        conn.close()
                    raise
            self._db, self._cursor, self._db_used = conn, cursor, time.monotonic()
        return self._cursor

    def _close_db(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):  # a dead connection may fail to close
                self._db.close()
        self._db = self._cursor = None
        self._open_since = None

    def _publish(self, rows) -> None:
        """Publish every row, then wait once for the broker to confirm them all.

        The channel is in confirm mode: the broker acks (or nacks) each message once it has
        taken responsibility for it (persisted). Publishing the whole batch before waiting costs
        one round trip per batch instead of one per event. A nack or a missing confirm fails the
        batch: its rows stay unpublished and are sent again (consumers are idempotent).
        """
        channel = self._ensure_channel()
        for row in rows:
            if row.exchange not in self._declared:
                Exchange(row.exchange, type="topic", durable=True)(channel).declare()
                declare_subscriber_queues(channel, row.exchange)
                self._declared.add(row.exchange)
        connection = channel.connection  # py-amqp's; None once the channel is closed
        if connection is None:
            raise RecoverableConnectionError("the relay's channel is closed")
        # The batch's frames in one socket write: the frames py-amqp's basic_publish writes for
        # each message (one write each, after a poll of the socket for a connection.blocked
        # notice: acks and notices are read by the confirm wait below), built here with the
        # constant parts serialised once (docs/performance.md, "Session 8: relay frames").
        # Each message takes the next delivery tag, in order. A write that fails leaves the
        # batch unconfirmed: the caller rolls back and its rows stay unpublished.
        channel_id, frame_max = channel.channel_id, connection.frame_max
        methods = self._method_frames
        frames: list = []
        for row in rows:
            key = (row.exchange, row.routing_key)
            method = methods.get(key)
            if method is None:
                method = methods[key] = _method_frame(channel_id, *key)
            frames.append(method)
            _content_frames(channel_id, frame_max, row, frames)
        first = self._next_tag
        connection.transport.write(b"".join(frames))
        connection.bytes_sent += 1
        self._next_tag += len(rows)
        self._wait_for_confirms(first, self._next_tag)
        self._batch_sizes.observe(len(rows))
        for row in rows:
            counter = self._published.get(row.routing_key)
            if counter is None:
                counter = self._published[row.routing_key] = metrics.OUTBOX_PUBLISHED.labels(
                    self.service, row.routing_key)
            counter.inc()
        if self._broker_down_since is not None:
            log.info("outbox relay: broker reachable again, publishing resumed")
            self._broker_down_since = None

    def _wait_for_confirms(self, first: int, end: int) -> None:
        """Block until the broker has acked delivery tags [first, end); raise otherwise."""
        deadline = time.monotonic() + self.confirm_timeout
        while not self._all_confirmed(end) and not self._nacked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no publisher confirm within {self.confirm_timeout} s")
            self._connection.drain_events(timeout=remaining)
        if self._nacked:
            raise MessageNacked(f"the broker refused {len(self._nacked)} event(s)")

    def _all_confirmed(self, end: int) -> bool:
        # An ack with `multiple` confirms every tag up to its own; one without, just its own.
        while self._confirmed + 1 in self._singles:
            self._confirmed += 1
            self._singles.discard(self._confirmed)
        return self._confirmed >= end - 1

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._confirmed = max(self._confirmed, delivery_tag)
            self._singles = {t for t in self._singles if t > delivery_tag}
        else:
            self._singles.add(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked.add(delivery_tag)

    def _ensure_channel(self):
        if self._channel is None:
            self._connection = Connection(self.amqp_uri, connect_timeout=5, heartbeat=0)
            self._connection.ensure_connection(max_retries=1)
            channel = self._connection.channel()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.confirm_select()
            # A fresh channel in confirm mode numbers its messages from 1.
            self._next_tag = 1
            self._confirmed = 0
            self._singles = set()
            self._nacked = set()
            self._channel = channel
            self._declared.clear()
            self._method_frames.clear()  # they carry the channel's id
        return self._channel

    def _on_failure(self, exc: Exception) -> None:
        if self._broker_down_since is None:
            self._broker_down_since = time.monotonic()
            log.warning("outbox relay: cannot publish yet (%s); events stay in the outbox", exc)
        self._close()

    def _close(self) -> None:
        if self._open_since is not None:
            self._flush()  # its rows were confirmed: mark them before leaving
        self._close_db()
        if self._connection is not None:
            # Closing a dead connection may fail; there is nothing more to do then.
            with contextlib.suppress(Exception):
                self._connection.release()
        self._connection = None
        self._channel = None

    # -- observability -----------------------------------------------------------------
    def backlog(self) -> tuple[int, float]:
        """(unpublished events, age in seconds of the oldest one)."""
        t = self.table
        with self.engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(t.c.created_at)).where(t.c.published_at.is_(None))
            ).one()
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        return count, max(age, 0.0)

    def refresh_metrics(self) -> None:
        count, age = self.backlog()
        metrics.OUTBOX_BACKLOG.labels(self.service).set(count)
        metrics.OUTBOX_OLDEST_AGE.labels(self.service).set(age)
