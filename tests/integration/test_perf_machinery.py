"""The speed-ups of the shared machinery keep their guarantees (real RabbitMQ and PostgreSQL):
the outbox relay's one-confirm-wait-per-batch, and pinging only idle pooled connections."""

import uuid

import pytest
from kombu import Connection, Exchange, Queue
from sqlalchemy import MetaData, text
from sqlalchemy.orm import sessionmaker
from support import amqp
from support.outbox import stage, unpublished

from shared import db as shared_db
from shared.db import make_engine, outbox_table
from shared.outbox import OutboxRelay


@pytest.fixture
def store(pg_urls):
    metadata = MetaData()
    table = outbox_table(metadata)
    engine = make_engine(pg_urls["intake"])
    yield engine, table, sessionmaker(engine)
    engine.dispose()


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
