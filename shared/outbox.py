"""The outbox relay: publishes committed events to RabbitMQ with publisher confirms.

Rows are written by `UnitOfWork.publish` in the same transaction as the state change that causes
them; the relay is the only place that talks to the broker for events. A crash between the broker's
confirmation and the `published_at` update re-publishes the same event id later: consumers are
idempotent, so at-least-once is enough.
"""

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime

from kombu import Connection, Exchange, Producer
from sqlalchemy import Engine, Table, func, select, update

from shared import metrics

log = logging.getLogger(__name__)


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
    ):
        self.engine = engine
        self.table = table
        self.amqp_uri = amqp_uri
        self.service = service
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._declared: set[str] = set()
        self._broker_down_since: float | None = None
        self._skip_locked = engine.dialect.name == "postgresql"
        metrics.OUTBOX_BACKLOG.labels(service)
        metrics.OUTBOX_OLDEST_AGE.labels(service)

    # -- lifecycle -------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def run(self) -> None:
        """Loop until stopped: drain the outbox, then wait for a wake-up or the idle interval."""
        backoff = self.idle_interval
        while not self._stopped.is_set():
            try:
                published = self.publish_batch()
                backoff = self.idle_interval
            except Exception as exc:  # broker or database down: keep the rows, retry later
                metrics.OUTBOX_PUBLISH_ERRORS.labels(self.service).inc()
                self._on_failure(exc)
                published = 0
                backoff = min(max(backoff * 2, 1.0), 10.0)
            if published >= self.batch_size:
                continue
            self._wake.wait(backoff)
            self._wake.clear()
        self._close()

    # -- one batch -----------------------------------------------------------------------
    def publish_batch(self) -> int:
        t = self.table
        query = (
            select(
                t.c.id, t.c.event_id, t.c.exchange, t.c.routing_key, t.c.correlation_id, t.c.body
            )
            .where(t.c.published_at.is_(None))
            .order_by(t.c.id)
            .limit(self.batch_size)
        )
        if self._skip_locked:
            # Replicas claim disjoint rows; the lock is held while publishing (PostgreSQL only).
            with self.engine.begin() as conn:
                rows = conn.execute(query.with_for_update(skip_locked=True)).all()
                if rows:
                    self._publish(rows)
                    conn.execute(
                        update(t).where(t.c.id.in_([r.id for r in rows])).values(
                            published_at=datetime.now(UTC)
                        )
                    )
            return len(rows)
        # SQLite: one process owns the file; never yield inside a write transaction.
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            conn.rollback()
        if rows:
            self._publish(rows)
            with self.engine.begin() as conn:
                conn.execute(
                    update(t).where(t.c.id.in_([r.id for r in rows])).values(
                        published_at=datetime.now(UTC)
                    )
                )
        return len(rows)

    def _publish(self, rows) -> None:
        producer = self._ensure_producer()
        for row in rows:
            if row.exchange not in self._declared:
                Exchange(row.exchange, type="topic", durable=True)(producer.channel).declare()
                self._declared.add(row.exchange)
            producer.publish(
                row.body,
                exchange=row.exchange,
                routing_key=row.routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=row.event_id,
                correlation_id=row.correlation_id,
                retry=False,
            )
            metrics.OUTBOX_PUBLISHED.labels(self.service, row.routing_key).inc()
        if self._broker_down_since is not None:
            log.info("outbox relay: broker reachable again, publishing resumed")
            self._broker_down_since = None

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            self._connection = Connection(
                self.amqp_uri,
                transport_options={"confirm_publish": True},
                connect_timeout=5,
                heartbeat=0,
            )
            self._connection.ensure_connection(max_retries=1)
            self._producer = Producer(self._connection.channel())
            self._declared.clear()
        return self._producer

    def _on_failure(self, exc: Exception) -> None:
        if self._broker_down_since is None:
            self._broker_down_since = time.monotonic()
            log.warning("outbox relay: cannot publish yet (%s); events stay in the outbox", exc)
        self._close()

    def _close(self) -> None:
        if self._connection is not None:
            # Closing a dead connection may fail; there is nothing more to do then.
            with contextlib.suppress(Exception):
                self._connection.release()
        self._connection = None
        self._producer = None

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
