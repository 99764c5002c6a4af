"""The outbox relay's deferred commit and planned-once claim on PostgreSQL (real RabbitMQ): a
confirmed batch's transaction is committed in the round trip of the next claim, or by a flush
timer, or when the relay stops; until then its rows are neither forgotten nor given to another
relay, and a crash publishes them again (docs/performance.md, "Session 5: outbox relay")."""

import eventlet
import pytest
from sqlalchemy import text
from support import amqp
from support.outbox import stage, unpublished
from support.wait import wait_for

from shared.outbox import OutboxRelay


@pytest.fixture
def store(pg_outbox_store):
    return pg_outbox_store


def event_ids(capture) -> list[str]:
    return [m["event_id"] for m, _ in capture.drain()]


class CountingCursor:
    """The relay's DBAPI cursor, counting the round trips (execute calls) made through it."""

    def __init__(self, cursor):
        self._cursor, self.sent = cursor, []

    def execute(self, sql, params=None):
        self.sent.append(sql)
        return self._cursor.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


@pytest.mark.parametrize("delete", [False, True], ids=["mark", "delete"])
def test_a_crash_after_the_confirm_but_before_the_commit_publishes_the_batch_again(
        store, amqp_uri, delete):
    capture = amqp.Capture(amqp_uri, "intake.events")
    ids = stage(store, 2)
    relay = OutboxRelay(store[0], store[1], amqp_uri, "intake", flush_ms=60_000,
                        delete_published=delete)
    other = OutboxRelay(store[0], store[1], amqp_uri, "intake", delete_published=delete)
    try:
        assert relay._next_batch() == 2  # published and confirmed; its transaction left open
        assert sorted(event_ids(capture)) == sorted(ids)
        assert unpublished(store) == 2, "not marked before its commit"
        assert other.publish_batch() == 0, "its rows stay locked: no other relay takes them"
        # The process dies: its connection goes away without a COMMIT.
        relay._cursor.connection.close()
        relay._db = relay._cursor = relay._open_since = None
        wait_for(lambda: unpublished(store) == 2 and other.publish_batch() == 2,
                 message="the server rolled the open batch back; published again")
    finally:
        relay._close()
        other._close()
    assert sorted(event_ids(capture)) == sorted(ids + ids), "at least once: twice here"
    assert unpublished(store) == 0


def test_the_next_claim_commits_the_previous_batch_in_the_same_round_trip(store, amqp_uri):
    relay = OutboxRelay(store[0], store[1], amqp_uri, "intake", flush_ms=60_000)
    try:
        stage(store, 1)
        assert relay._next_batch() == 1
        cursor = relay._cursor = CountingCursor(relay._cursor)
        stage(store, 3)
        assert relay._next_batch() == 3
        assert len(cursor.sent) == 1, "one round trip: the COMMIT travels with the claim"
        assert cursor.sent[0].startswith("COMMIT; BEGIN; ")
        assert unpublished(store) == 3, "the first batch is marked, the second still open"
    finally:
        relay._close()
    assert unpublished(store) == 0, "stopping commits the confirmed batch"


def test_the_flush_timer_marks_the_last_batch_when_no_claim_follows(store, amqp_uri):
    capture = amqp.Capture(amqp_uri, "intake.events")
    # No idle poll for a minute: only the flush timer can commit the batch.
    relay = OutboxRelay(store[0], store[1], amqp_uri, "intake", idle_interval=60,
                        gather_ms=0, flush_ms=50)
    runner = eventlet.spawn(relay.run)
    try:
        wait_for(lambda: relay._db_used > 0, message="relay idle")
        ids = stage(store, 1)
        relay.wake()
        wait_for(lambda: event_ids(capture) == ids, message="published")
        wait_for(lambda: unpublished(store) == 0, timeout=5, message="marked by the timer")
        assert relay._open_since is None
        # The relay's transaction (with its SET LOCAL) is over: the connection is back to on.
        assert relay._db.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    finally:
        relay.stop()
        runner.wait()


def test_a_claim_the_server_no_longer_has_prepared_is_prepared_again(store, amqp_uri):
    relay = OutboxRelay(store[0], store[1], amqp_uri, "intake", prepared=True)
    try:
        stage(store, 1)
        assert relay.publish_batch() == 1
        relay._cursor.execute("DEALLOCATE ALL")  # as a pooler's session reset would
        stage(store, 2)
        with pytest.raises(Exception, match="dumas_outbox_claim"):
            relay.publish_batch()
        assert unpublished(store) == 2
        assert relay.publish_batch() == 2, "a new connection, its claim prepared again"
    finally:
        relay._close()
    assert unpublished(store) == 0


@pytest.mark.parametrize("delete", [False, True], ids=["mark", "delete"])
@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "text"])
def test_every_claim_form_publishes_in_order_and_marks_every_row(
        store, amqp_uri, prepared, delete):
    capture = amqp.Capture(amqp_uri, "intake.events")
    ids = stage(store, 30)
    relay = OutboxRelay(store[0], store[1], amqp_uri, "intake", batch_size=7,
                        prepared=prepared, delete_published=delete)
    try:
        assert [relay._next_batch() for _ in range(6)] == [7, 7, 7, 7, 2, 0]
        statements = relay._db.exec_driver_sql(
            "SELECT count(*) FROM pg_prepared_statements").scalar()
    finally:
        relay._close()
    assert statements == (1 if prepared else 0)
    assert event_ids(capture) == ids, "in commit order"
    assert unpublished(store) == 0
    with store[0].connect() as conn:
        left, batches = conn.execute(
            text("SELECT count(*), count(DISTINCT published_at) FROM outbox")).one()
    assert (left, batches) == ((0, 0) if delete else (30, 5))


def _claim_plan(relay) -> dict:
    """The plan and buffers of the relay's next claim, run on its own connection by EXPLAIN
    ANALYZE in the claim's own form (its BEGIN and SET LOCALs), then rolled back."""
    sql = relay._claim.replace("EXECUTE ", "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE ")
    if sql == relay._claim:  # sent as text
        sql = sql.replace("UPDATE ", "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) UPDATE ", 1)
    cursor = relay._claim_cursor()
    try:
        cursor.execute(sql, {"at": "2026-01-01T00:00:00+00:00"})
        return cursor.fetchone()[0][0]
    finally:
        cursor.execute("ROLLBACK")


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "text"])
def test_a_claim_steps_over_published_rows_by_the_partial_index(store, amqp_uri, prepared):
    """On a table never analyzed (a freshly migrated database, until autovacuum's first
    ANALYZE) the planner prefers a bitmap scan and a sort, which visits every row published since
    the last VACUUM on every claim. The claim walks ix_outbox_unpublished instead, in id order,
    and its reads stay small however many rows were published before it."""
    engine = store[0]
    with engine.connect() as conn:  # no autovacuum, so no ANALYZE, during the test
        conn.exec_driver_sql("ALTER TABLE outbox SET (autovacuum_enabled = off)")
        conn.commit()
    stage(store, 1500)
    relay = OutboxRelay(engine, store[1], amqp_uri, "intake", prepared=prepared)
    try:
        while relay.publish_batch():
            pass
        assert unpublished(store) == 0
        stage(store, 3)
        plan = _claim_plan(relay)
    finally:
        relay._close()
    scans = sorted((n["Node Type"], n.get("Index Name")) for n in _nodes(plan["Plan"])
                   if "Scan" in n["Node Type"])
    # The sub-select finds the rows by the partial index; the UPDATE fetches them by id.
    assert scans == [("Index Scan", "ix_outbox_unpublished"), ("Index Scan", "outbox_pkey")]
    assert plan["Plan"]["Actual Rows"] == 3
    # 1,500 published rows fill ~150 table pages; the claim reads a few index and table pages.
    assert plan["Plan"]["Shared Hit Blocks"] < 100, plan["Plan"]["Shared Hit Blocks"]
