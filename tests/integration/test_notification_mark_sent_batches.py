"""Sends that finish together are marked sent in ONE transaction, each delivery with its
notification_sent event, only after its provider accepted it (issue 8); a mark that cannot commit
leaves the deliveries leased and pending, so they are sent again once the lease expires (at least
once, as when the process dies between sending and marking)."""

import json
from datetime import timedelta

import eventlet
import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import sessionmaker
from support.notification_world import Slots, new_complaint, notification_db_of, routed

from services.notification import handlers
from services.notification.batching import Batcher
from services.notification.db import deliveries, outbox
from services.notification.domain.render import TemplateCatalogue
from services.notification.providers import FileProvider
from services.notification.settings import Settings
from shared.contracts import load_event
from shared.db import UnitOfWork, utcnow


@pytest.fixture(params=["postgresql", "sqlite"])
def db(request, tmp_path):
    with notification_db_of(request, tmp_path) as engine_and_uow:
        yield engine_and_uow


def accepted_sends(uow, count, tmp_path):
    """Plan `count` routed complaints and send every delivery, keeping what the providers
    accepted instead of marking it (as the service's batcher receives them)."""
    settings = Settings.from_config({})
    events = [load_event(routed(new_complaint({"email": f"warga{i}@contoh.id"})))
              for i in range(count)]
    planned = handlers.plan_batch(uow, events, settings, slots=Slots(100))
    provider = FileProvider(tmp_path / "outbox")
    accepted = []
    for row in planned.leased:
        handlers.send_leased(uow, row, resolve_address=lambda _d: "a@contoh.id",
                             catalogue=TemplateCatalogue(), provider_for=lambda _a, _c: provider,
                             settings=settings, mark=accepted.append)
    return accepted


def statements_of(engine):
    """Statements sent (first word; "*" marks a DB-API executemany, which psycopg2 runs as one
    round trip per row, unlike SQLAlchemy's multi-row INSERT) and commits."""
    seen = {"statements": [], "commits": 0, "autocommit": []}

    def before(conn, _cur, statement, _p, ctx, _many):
        seen["statements"].append(statement.split(None, 1)[0].upper()
                                  + ("*" if ctx.execute_style.name == "EXECUTEMANY" else ""))
        seen["autocommit"].append(getattr(conn.connection.dbapi_connection, "autocommit", None))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "commit", lambda _c: seen.__setitem__("commits", seen["commits"] + 1))
    return seen


def test_deliveries_accepted_together_are_marked_sent_in_one_transaction(db, tmp_path):
    engine, uow = db
    accepted = accepted_sends(uow, 3, tmp_path)
    with engine.connect() as conn:  # accepted by the provider, not marked yet
        assert {r.status for r in conn.execute(select(deliveries))} == {"pending"}
        assert conn.execute(select(outbox)).all() == []
    seen = statements_of(engine)

    outcomes = handlers.mark_sent(uow, accepted)

    assert [o.delivery_id for o in outcomes] == [a.row["id"] for a in accepted]  # given order
    assert {o.status for o in outcomes} == {"sent"}
    # every delivery in one UPDATE, every notification_sent in one INSERT, one commit (SQLite
    # runs both as an executemany: in process, no round trips); PostgreSQL gets both as one
    # query string on a connection in autocommit mode: one round trip, one implicit
    # transaction, no BEGIN and no COMMIT of their own
    if engine.dialect.name == "sqlite":
        assert seen["statements"] == ["UPDATE*", "INSERT*"]
    else:
        assert seen["statements"] == ["UPDATE"]
        assert seen["autocommit"] == [True]
    assert seen["commits"] == 1
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(deliveries))}
        events = [json.loads(r.body) for r in conn.execute(select(outbox))]
    assert len(rows) == 6
    for a in accepted:
        row = rows[a.row["id"]]
        assert (row.status, row.provider, row.lease_until) == ("sent", "file", None)
        assert row.provider_message_id == a.message_id
        assert row.sent_at == a.sent_at  # when the provider accepted it
    assert sorted(e["data"]["delivery_id"] for e in events) == sorted(rows)
    assert {e["event_type"] for e in events} == {"notification_sent"}


def test_a_mark_that_cannot_commit_leaves_the_deliveries_to_be_sent_again_after_their_lease(
        db, tmp_path, monkeypatch):
    engine, uow = db
    accepted = accepted_sends(uow, 2, tmp_path)

    def broken_commit(self):
        raise RuntimeError("database went away")

    with monkeypatch.context() as m:
        if engine.dialect.name == "postgresql":
            # One query string, committed by the server as a whole: a statement failing after
            # the UPDATE and the INSERT ran must leave neither.
            m.setattr(handlers, "_MARK_SENT_PG", handlers._MARK_SENT_PG + "; SELECT 1 / 0")
        else:
            m.setattr(UnitOfWork, "commit", broken_commit)
        with pytest.raises(Exception, match="database went away|division by zero"):
            handlers.mark_sent(uow, accepted)

    with engine.connect() as conn:
        rows = conn.execute(select(deliveries)).all()
        assert conn.execute(select(outbox)).all() == []
    assert {r.status for r in rows} == {"pending"}
    assert all(r.lease_until > utcnow() for r in rows)  # nobody resends before the lease ends
    with sessionmaker(engine)() as session:
        assert handlers.due_deliveries(session) == []
    # The lease runs out: every delivery is due again and is sent again.
    with engine.begin() as conn:
        conn.execute(update(deliveries).values(lease_until=utcnow() - timedelta(seconds=1)))
    with sessionmaker(engine)() as session:
        assert sorted(handlers.due_deliveries(session)) == sorted(r.id for r in rows)


def test_a_delivery_no_longer_pending_is_not_marked_again(db, tmp_path):
    engine, uow = db
    accepted = accepted_sends(uow, 1, tmp_path)
    handlers.mark_sent(uow, accepted[:1])
    with engine.connect() as conn:
        first = conn.execute(select(deliveries.c.sent_at).where(
            deliveries.c.id == accepted[0].row["id"])).scalar_one()

    handlers.mark_sent(uow, accepted)

    with engine.connect() as conn:
        again = conn.execute(select(deliveries.c.sent_at).where(
            deliveries.c.id == accepted[0].row["id"])).scalar_one()
        others = conn.execute(select(deliveries.c.status).where(
            deliveries.c.id == accepted[1].row["id"])).scalar_one()
    assert again == first
    assert others == "sent"


# -- the batcher ---------------------------------------------------------------------------


def test_what_is_handed_in_while_a_batch_is_handled_forms_the_next_batch():
    batches = []

    def flush(items):
        batches.append(list(items))
        eventlet.sleep(0.01)  # a transaction under way: the others queue meanwhile
        return [item * 10 for item in items]

    batcher = Batcher(flush, max_size=50)
    pool = eventlet.GreenPool()
    results = list(pool.imap(batcher.submit, range(6)))

    assert results == [0, 10, 20, 30, 40, 50]
    # the six greenthreads ran before the flusher: all in one batch, nobody waited
    assert batches == [[0, 1, 2, 3, 4, 5]]

    first = pool.spawn(batcher.submit, 100)
    eventlet.sleep(0)  # its batch is being handled now
    later = [pool.spawn(batcher.submit, n) for n in (101, 102)]
    assert [first.wait()] + [g.wait() for g in later] == [1000, 1010, 1020]
    assert batches[1:] == [[100], [101, 102]]


def test_the_first_item_waits_for_the_others_on_their_way_but_no_longer_than_max_wait():
    batches = []
    running = {"sends": 2}
    batcher = Batcher(lambda items: batches.append(items) or items, max_size=50, max_wait=5.0,
                      ready=lambda waiting: waiting >= running["sends"])

    def send(n, delay):
        eventlet.sleep(delay)
        return batcher.submit(n)

    pool = eventlet.GreenPool()
    a, b = pool.spawn(send, "unit", 0), pool.spawn(send, "complainant", 0.02)
    assert (a.wait(), b.wait()) == ("unit", "complainant")
    assert batches == [["unit", "complainant"]]  # the first waited for the second

    running["sends"] = 1  # alone: nothing else is on its way, no wait at all
    with eventlet.Timeout(1):
        assert batcher.submit("alone") == "alone"

    running["sends"] = 3  # one of them never comes: the wait ends at max_wait
    batcher.max_wait = 0.05
    started = eventlet.hubs.get_hub().clock()
    assert batcher.submit("waited") == "waited"
    assert 0.04 < eventlet.hubs.get_hub().clock() - started < 1.0


def test_every_caller_of_a_batch_that_fails_gets_its_error():
    def flush(items):
        raise RuntimeError("database went away")

    batcher = Batcher(flush, max_size=50)
    pool = eventlet.GreenPool()

    def submit(n):
        try:
            return batcher.submit(n)
        except RuntimeError as exc:
            return str(exc)

    assert list(pool.imap(submit, range(3))) == ["database went away"] * 3
