"""The transactional outbox on real PostgreSQL/SQLite and RabbitMQ."""


import eventlet
import pytest
from kombu import Connection
from sqlalchemy import MetaData, pool, select
from sqlalchemy.orm import sessionmaker
from support import amqp
from support.outbox import stage, unpublished

from shared.db import make_engine, outbox_table, processed_events_table
from shared.outbox import OutboxRelay

CLOSED_BROKER = "amqp://guest:guest@127.0.0.1:1/"


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request, pg_urls, tmp_path):
    url = pg_urls["intake"] if request.param == "postgresql" else f"sqlite:///{tmp_path}/o.db"
    metadata = MetaData()
    table = outbox_table(metadata)
    processed_events_table(metadata)
    engine = make_engine(url, poolclass=pool.NullPool)
    if request.param == "sqlite":
        metadata.create_all(engine)
    yield engine, table, sessionmaker(engine)
    engine.dispose()


def test_events_committed_while_the_broker_is_down_wait_and_are_published_later(
    store, amqp_uri
):
    engine, table, _ = store
    ids = stage(store, 3)
    down = OutboxRelay(engine, table, CLOSED_BROKER, "intake")
    with pytest.raises(Exception):
        down.publish_batch()
    assert unpublished(store) == 3
    assert down.backlog()[0] == 3

    capture = amqp.Capture(amqp_uri, "intake.events")
    up = OutboxRelay(engine, table, amqp_uri, "intake")
    assert up.publish_batch() == 3
    up.stop()
    up._close()
    assert unpublished(store) == 0
    assert sorted(m["event_id"] for m, _ in capture.drain()) == sorted(ids)


def test_two_relays_on_postgresql_never_publish_the_same_event(pg_urls, amqp_uri):
    metadata = MetaData()
    table = outbox_table(metadata)
    engine = make_engine(pg_urls["intake"])
    store = (engine, table, sessionmaker(engine))
    ids = stage(store, 400)
    capture = amqp.Capture(amqp_uri, "intake.events")
    relays = [OutboxRelay(engine, table, amqp_uri, "intake", batch_size=25) for _ in range(2)]

    def drain(relay):
        total = 0
        while (n := relay.publish_batch()) > 0:
            total += n
        return total

    threads = [eventlet.spawn(drain, r) for r in relays]
    counts = [t.wait() for t in threads]
    for r in relays:
        r._close()
    engine.dispose()
    published = [m["event_id"] for m, _ in capture.drain()]
    assert sum(counts) == 400
    assert all(c > 0 for c in counts), "both relays took part"
    assert sorted(published) == sorted(ids)


def test_an_event_published_before_its_consumers_started_waits_in_their_queues(
    store, amqp_uri
):
    # No service has declared anything on this vhost yet: without the relay declaring the
    # subscribers' queues, the broker would drop these events as unroutable.
    engine, table, _ = store
    ids = stage(store, 2)
    relay = OutboxRelay(engine, table, amqp_uri, "intake")
    assert relay.publish_batch() == 2
    relay.stop()
    relay._close()
    for queue in ("routing.complaint_received", "reporting.complaint_received"):
        waiting = amqp.get_all(amqp_uri, queue)
        assert sorted(body["event_id"] for body, _ in waiting) == sorted(ids), queue


def test_a_published_event_is_a_persistent_json_message_carrying_its_ids(store, amqp_uri):
    engine, table, _ = store
    capture = amqp.Capture(amqp_uri, "intake.events")
    [event_id] = stage(store, 1)
    relay = OutboxRelay(engine, table, amqp_uri, "intake")
    try:
        assert relay.publish_batch() == 1
    finally:
        relay._close()
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.event_id == event_id)).one()
    with Connection(amqp_uri) as conn:
        message = conn.default_channel.basic_get(capture.name, no_ack=True)

    # the row's text (py-amqp decodes the body as its content_encoding says)
    assert message.body == row.body
    assert (message.delivery_info["exchange"], message.delivery_info["routing_key"]) == (
        "intake.events", "complaint_received")
    assert message.properties == {
        "content_type": "application/json", "content_encoding": "utf-8",
        "application_headers": {}, "delivery_mode": 2, "priority": 0,
        "message_id": event_id, "correlation_id": row.correlation_id,
    }
