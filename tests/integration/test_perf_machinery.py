"""The speed-ups of the shared machinery keep their guarantees (real RabbitMQ and PostgreSQL):
the outbox relay's one-confirm-wait-per-batch, its gathering of commits that come close
together, its own database connection, and pinging only idle pooled connections."""

import uuid

import eventlet
import pytest
from kombu import Connection, Exchange, Queue
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from support import amqp
from support.outbox import stage, unpublished
from support.wait import wait_for

from shared import db as shared_db
from shared import outbox as shared_outbox
from shared.db import make_engine
from shared.outbox import OutboxRelay


@pytest.fixture
def store(pg_outbox_store):
    return pg_outbox_store


def test_batches_are_confirmed_as_a_whole_and_every_event_arrives_once(store, amqp_uri):
    ids = stage(store, 450)
    capture = amqp.Capture(amqp_uri, "intake.events")
    relay = OutboxRelay(store[0], store[1], amqp_uri, "intake", batch_size=200)
    try:
        assert [relay.publish_batch() for _ in range(4)] == [200, 200, 50, 0]
        # the same channel keeps counting delivery tags across batches
        assert relay._next_tag == 451 and relay._confirmed == 450
    finally:
        relay._close()
    assert unpublished(store) == 0
    received = [m["event_id"] for m, _ in capture.drain()]
    assert sorted(received) == sorted(ids)


def test_a_batch_the_broker_refuses_stays_in_the_outbox_and_is_sent_later(store, amqp_uri):
    # A queue that rejects what it has no room for makes the broker nack those publishes.
    full = Queue(
        f"full_{uuid.uuid4().hex[:8]}",
        exchange=Exchange("intake.events", type="topic", durable=True),
        routing_key="#",
        durable=False,
        queue_arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
    )
    with Connection(amqp_uri) as conn:
        full(conn.default_channel).declare()
    stage(store, 3)
    relay = OutboxRelay(store[0], store[1], amqp_uri, "intake")
    try:
        with pytest.raises(Exception, match="refused"):
            relay.publish_batch()
        assert unpublished(store) == 3  # nothing marked: the whole batch is sent again
        relay._close()

        with Connection(amqp_uri) as conn:
            full(conn.default_channel).delete()
        assert relay.publish_batch() == 3
    finally:
        relay._close()
    assert unpublished(store) == 0


def test_an_idle_pooled_connection_killed_by_the_server_is_replaced(pg_urls, monkeypatch):
    monkeypatch.setattr(shared_db, "IDLE_PING_AFTER", 0.0)
    engine = make_engine(pg_urls["routing"], pool_size=1, max_overflow=0)
    admin = make_engine(pg_urls["routing"], pool_pre_ping=False)
    try:
        with engine.connect() as conn:
            first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
        # The pooled connection is dead now; checking it out pings it and gets a new one.
        with engine.connect() as conn:
            second_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        assert second_pid != first_pid
    finally:
        engine.dispose()
        admin.dispose()


def relay_batches() -> tuple[float, float]:
    labels = {"service": "intake"}
    return (REGISTRY.get_sample_value("dumas_outbox_batch_size_count", labels) or 0,
            REGISTRY.get_sample_value("dumas_outbox_batch_size_sum", labels) or 0)


def test_events_committed_while_the_woken_relay_gathers_share_one_batch(store, amqp_uri):
    engine, table, factory = store
    capture = amqp.Capture(amqp_uri, "intake.events")
    relay = OutboxRelay(engine, table, amqp_uri, "intake", gather_ms=300)
    runner = eventlet.spawn(relay.run)
    try:
        # The relay has looked at the empty outbox and waits for a wake-up.
        wait_for(lambda: relay._db_used > 0, message="relay idle")
        before = relay_batches()
        ids = []
        for _ in range(3):  # each commit wakes the relay, as a unit of work does
            ids += stage(store, 1)
            relay.wake()
        wait_for(lambda: len(capture.drain()) == 3, message="the 3 events published")
    finally:
        relay.stop()
        runner.wait()
    assert sorted(m["event_id"] for m, _ in capture.messages) == sorted(ids)
    with engine.connect() as conn:
        marks = conn.execute(select(func.count(func.distinct(table.c.published_at)))).scalar()
    assert marks == 1, "one claim, one publish, one confirm wait for the three"
    count, size = relay_batches()
    assert (count - before[0], size - before[1]) == (1, 3), "batch size metric: one batch of 3"


def test_the_relays_own_connection_is_replaced_when_the_server_killed_it(
        store, amqp_uri, monkeypatch):
    engine, table, _ = store
    monkeypatch.setattr(shared_outbox, "IDLE_CHECK_AFTER", 0.0)
    relay = OutboxRelay(engine, table, amqp_uri, "intake")
    try:
        stage(store, 1)
        assert relay.publish_batch() == 1
        pid = relay._db.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        relay._db.rollback()
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        stage(store, 2)
        assert relay.publish_batch() == 2, "pinged, reconnected, published: no error"
        assert relay._db.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
        relay._db.rollback()
    finally:
        relay._close()
    assert unpublished(store) == 0


def test_the_relays_asynchronous_commit_ends_with_its_own_transaction(store, amqp_uri):
    engine, table, _ = store
    relay = OutboxRelay(engine, table, amqp_uri, "intake")
    try:
        stage(store, 1)
        assert relay.publish_batch() == 1
        # The setting was LOCAL to the claim's transaction: nothing a pooler could hand on.
        assert relay._db.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
        relay._db.rollback()
    finally:
        relay._close()
    # Every pooled connection (the services' units of work) still waits for the flush.
    conns = [engine.connect() for _ in range(3)]
    try:
        assert [c.execute(text("SHOW synchronous_commit")).scalar() for c in conns] == \
            ["on"] * 3
    finally:
        for c in conns:
            c.close()
