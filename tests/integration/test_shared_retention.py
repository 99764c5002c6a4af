"""The shared retention sweep on real PostgreSQL and SQLite: outbox rows published long ago and
old processed_events records go, unpublished rows never do, recent rows stay, batches and the
per-sweep cap hold, the outbox walk stops where rows become too new, a row locked elsewhere is
skipped, and every service's Database provider runs the sweep on its own timer."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import sessionmaker
from support.databases import execute, rows, rows_locked
from support.wait import wait_for

from services.cli import SERVICES_DIR
from services.intake.db import outbox, processed_events
from services.routing.service import RoutingService
from shared import metrics, retention
from shared.db import UnitOfWork, make_engine
from shared.migrate import upgrade
from shared.nameko_ext import Database

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)


@pytest.fixture
def db_url(intake_db_url):
    return intake_db_url




def outbox_row(name, created_ago, published_ago=None, now=NOW):
    """An outbox row named by its event id; published `published_ago` before `now`, or not."""
    return outbox.insert().values(
        event_id=name, exchange="intake.events", routing_key="complaint_received",
        correlation_id=str(uuid.uuid4()), body="{}", created_at=now - created_ago,
        published_at=None if published_ago is None else now - published_ago)


def processed_row(name, age, now=NOW, consumer="intake.complaint_routed"):
    return processed_events.insert().values(consumer=consumer, event_id=name,
                                            processed_at=now - age)


def outbox_ids(url):
    return sorted(r.event_id for r in rows(url, select(outbox.c.event_id)))


def processed_ids(url):
    return sorted(r.event_id for r in rows(url, select(processed_events.c.event_id)))


def sweep(url, windows=retention.Windows(), now=NOW, statements=None, **engine_options):
    engine = make_engine(url, **engine_options)
    if statements is not None:
        event.listen(engine, "before_cursor_execute",
                     lambda _c, _cur, sql, *_: statements.append(sql))
    factory = sessionmaker(engine, expire_on_commit=False)
    try:
        return retention.sweep(lambda: UnitOfWork(factory, None, None), outbox,
                               processed_events, windows, "test", now=now)
    finally:
        engine.dispose()


# -- what goes and what stays ---------------------------------------------------------------------


def test_outbox_rows_published_before_the_window_go_and_unpublished_ones_never(db_url):
    execute(
        db_url,
        # The oldest row was never published (broker down, a stuck row): it stays, however old.
        outbox_row("unpublished-old", 60 * D),
        outbox_row("published-old", 9 * D, published_ago=8 * D),
        # Created long ago but published late (relay down): its window runs from publication.
        outbox_row("published-late", 9 * D, published_ago=6 * D),
        outbox_row("published-edge", 8 * D, published_ago=7 * D - H),
        outbox_row("published-fresh", H, published_ago=H),
        outbox_row("unpublished-fresh", H),
    )

    deleted = sweep(db_url)

    assert deleted == {"outbox": 1, "processed_events": 0}
    assert outbox_ids(db_url) == ["published-edge", "published-fresh", "published-late",
                                  "unpublished-fresh", "unpublished-old"]


def test_processed_events_records_older_than_the_window_go(db_url):
    execute(db_url, processed_row("old", 31 * D), processed_row("older", 90 * D),
            processed_row("inside", 29 * D), processed_row("fresh", H))

    deleted = sweep(db_url)

    assert deleted == {"outbox": 0, "processed_events": 2}
    assert processed_ids(db_url) == ["fresh", "inside"]


def test_configured_windows_are_honoured(db_url):
    execute(db_url, outbox_row("a", 3 * H, published_ago=3 * H),
            outbox_row("b", H, published_ago=H),
            processed_row("x", 11 * D), processed_row("y", 9 * D))
    windows = retention.windows_from({"OUTBOX_RETENTION_HOURS": "2",
                                      "PROCESSED_EVENTS_RETENTION_DAYS": 10})

    sweep(db_url, windows)

    assert (outbox_ids(db_url), processed_ids(db_url)) == (["b"], ["y"])


# -- batches, the per-sweep cap and bounded reads -------------------------------------------------


def test_one_sweep_deletes_at_most_its_batches_and_the_next_one_goes_on(db_url):
    execute(db_url, *(outbox_row(f"o{i:02}", 9 * D, published_ago=8 * D) for i in range(23)),
            *(processed_row(f"p{i:02}", 40 * D) for i in range(23)))
    windows = retention.Windows(batch_size=5, max_batches=2)

    outcomes = [sweep(db_url, windows) for _ in range(3)]

    assert outcomes == [{"outbox": 10, "processed_events": 10}] * 2 + [
        {"outbox": 3, "processed_events": 3}]
    assert (outbox_ids(db_url), processed_ids(db_url)) == ([], [])


def test_the_outbox_walk_stops_at_rows_created_after_the_cutoff(db_url):
    # Three old published rows, then many recent ones: the sweep reads two pages of two rows,
    # not the whole table (no index on published_at; the primary key is walked from the lowest).
    execute(db_url, *(outbox_row(f"old{i}", 9 * D, published_ago=8 * D) for i in range(3)),
            *(outbox_row(f"new{i:02}", H, published_ago=H) for i in range(30)))
    statements = []

    deleted = sweep(db_url, retention.Windows(batch_size=2), statements=statements)

    pages = [s for s in statements if s.lstrip().upper().startswith("SELECT")
             and "FROM outbox" in s and "ORDER BY outbox.id" in s]
    assert deleted["outbox"] == 3
    assert len(pages) == 2
    assert len(outbox_ids(db_url)) == 30


def test_a_row_locked_elsewhere_is_skipped_not_waited_for_on_postgresql(pg_urls):
    url = pg_urls["intake"]
    execute(url, *(outbox_row(f"o{i}", 9 * D, published_ago=8 * D) for i in range(5)),
            *(processed_row(f"p{i}", 40 * D) for i in range(5)))
    with rows_locked(url, "SELECT 1 FROM outbox WHERE event_id = 'o3' FOR UPDATE",
                     "SELECT 1 FROM processed_events WHERE event_id = 'p1' FOR UPDATE"):
        # Without SKIP LOCKED the sweep would wait here; lock_timeout turns that wait into
        # an error instead of a hung test.
        deleted = sweep(url, retention.Windows(batch_size=2),
                        connect_args={"options": "-c lock_timeout=3000"})

    assert deleted == {"outbox": 4, "processed_events": 4}
    assert (outbox_ids(url), processed_ids(url)) == (["o3"], ["p1"])
    assert sweep(url) == {"outbox": 1, "processed_events": 1}


# -- wired into every service's Database provider -------------------------------------------------


def database_provider(container):
    return next(d for d in container.dependencies if isinstance(d, Database))


def test_a_started_service_sweeps_on_its_timer_and_stops_it_with_the_container(
        start_service, pg_urls):
    url = pg_urls["routing"]
    now = datetime.now(UTC)
    execute(url, outbox_row("routing-old", 9 * D, published_ago=8 * D, now=now),
            outbox_row("routing-unpublished", 9 * D, now=now),
            processed_row("routing-old", 31 * D, now=now, consumer="routing.complaint_received"),
            processed_row("routing-fresh", H, now=now, consumer="routing.complaint_received"))
    deleted = metrics.RETENTION_DELETED.labels("routing", "outbox")
    before = deleted._value.get()

    running = start_service(RoutingService, EVENT_RETRY_DELAYS_MS=[100, 200],
                            OUTBOX_RETENTION_SWEEP_SECONDS=0.05)
    wait_for(lambda: outbox_ids(url) == ["routing-unpublished"]
             and processed_ids(url) == ["routing-fresh"], timeout=20,
             message="routing's retention sweep deleted the old rows")

    assert deleted._value.get() >= before + 1
    provider = database_provider(running.container)
    running.container.stop()
    assert provider._retention_thread.dead


def test_a_processed_events_window_below_the_redelivery_horizon_is_refused(tmp_path, caplog):
    from types import SimpleNamespace

    url = f"sqlite:///{tmp_path}/intake.sqlite3"
    upgrade(SERVICES_DIR / "intake" / "migrations", url)
    execute(url, processed_row("p", 400 * D, now=datetime.now(UTC)),
            outbox_row("o", 400 * D, published_ago=400 * D, now=datetime.now(UTC)))
    provider = Database(outbox.metadata)
    provider.container = SimpleNamespace(service_name="intake", config={
        "DATABASE_URL": url, "AMQP_URI": "memory://", "PROCESSED_EVENTS_RETENTION_DAYS": "7"})
    provider.setup()
    try:
        assert provider.sweep_retention() is None
    finally:
        provider.engine.dispose()

    assert "retention sweep refused, nothing deleted" in caplog.text
    assert "PROCESSED_EVENTS_RETENTION_DAYS=7 is below the safe minimum 8" in caplog.text
    assert (outbox_ids(url), processed_ids(url)) == (["o"], ["p"])
