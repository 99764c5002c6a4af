"""Recording events in batches (`handlers.record_many`, one transaction per batch) leaves
reporting's tables exactly as recording them one by one does: the complaint facts, the events,
the daily cube and every roll-up, zero rows included; duplicates within a batch and across
batches count once. On PostgreSQL and on SQLite."""

import random
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from support import databases

from services.cli import SERVICES_DIR
from services.reporting import handlers, rollups
from services.reporting.db import complaints, events
from services.reporting.domain.generator import stories
from shared.contracts import build_event, load_event
from shared.db import UnitOfWork, make_engine
from shared.migrate import upgrade

TABLES = (complaints, events, *(table for table, _, _ in rollups.TABLES))


class Db:
    def __init__(self, url):
        self.engine = make_engine(url)
        self.factory = sessionmaker(self.engine, expire_on_commit=False)

    def uow(self):
        return UnitOfWork(self.factory, None, None)

    def tables(self) -> dict:
        """Every row of every projection and counter table (events without their
        recorded_at, the moment of recording)."""
        out = {}
        with self.engine.connect() as conn:
            for table in TABLES:
                columns = [c for c in table.c if c.name != "recorded_at"]
                rows = conn.execute(select(*columns)).all()
                out[table.name] = sorted((tuple(r) for r in rows), key=repr)
        return out


@pytest.fixture(params=["postgresql", "sqlite"])
def two_databases(request, tmp_path):
    """Two fresh reporting databases of the same kind."""
    if request.param == "postgresql":
        templates = request.getfixturevalue("pg_templates")
        urls = [databases.clone_all({"reporting": templates["reporting"]})["reporting"]
                for _ in range(2)]
    else:
        urls = [f"sqlite:///{tmp_path}/reporting{i}.sqlite3" for i in range(2)]
        for url in urls:
            upgrade(SERVICES_DIR / "reporting" / "migrations", url)
    dbs = [Db(url) for url in urls]
    yield dbs
    for db in dbs:
        db.engine.dispose()
    if request.param == "postgresql":
        databases.drop_all(urls)


def generated_events(n=90, seed=7):
    return [load_event(build_event(t, d, correlation_id=str(d["complaint_id"])))
            for story in stories(n, seed=seed, start=date(2026, 9, 20), days=70)
            for t, d in story]


def batches_of(sequence, rng, largest=60):
    i = 0
    while i < len(sequence):
        size = rng.randint(1, largest)
        yield sequence[i:i + size]
        i += size


def test_shuffled_batches_with_duplicates_leave_the_tables_of_one_by_one_recording(
        two_databases):
    one_by_one, batched = two_databases
    rng = random.Random(42)
    unique = generated_events()
    stream = list(unique)
    rng.shuffle(stream)
    # Redeliveries: some events again later (usually in another batch), some right after
    # themselves (usually the same batch).
    for event in rng.sample(unique, 40):
        stream.insert(rng.randrange(len(stream) + 1), event)
    for i in sorted(rng.sample(range(len(stream)), 25), reverse=True):
        stream.insert(i + 1, stream[i])

    new_one_by_one = sum(handlers.record(one_by_one.uow, event) for event in stream)
    new_batched = sum(handlers.record_many(batched.uow, batch)
                      for batch in batches_of(stream, rng))

    assert new_one_by_one == new_batched == len(unique)
    expected, got = one_by_one.tables(), batched.tables()
    assert len(expected["complaint_facts"]) == 90
    assert len(expected["rollup_months"]) > 100
    for table in expected:
        assert got[table] == expected[table], table


def test_several_events_of_one_complaint_in_one_batch_count_like_one_by_one(two_databases):
    one_by_one, batched = two_databases
    story = generated_events(n=6, seed=3)
    for event in story:
        handlers.record(one_by_one.uow, event)
    assert handlers.record_many(batched.uow, story) == len(story)
    assert batched.tables() == one_by_one.tables()


def test_a_batch_of_events_seen_before_changes_nothing(two_databases):
    db, _ = two_databases
    evts = generated_events(n=5, seed=9)
    assert handlers.record_many(db.uow, evts[:10]) == 10
    before = db.tables()
    assert handlers.record_many(db.uow, evts[:10] + evts[3:6]) == 0
    assert db.tables() == before
    assert handlers.record_many(db.uow, [evts[10], evts[10], evts[2]]) == 1
    assert handlers.record(db.uow, evts[10]) is False
    assert len(db.tables()["events"]) == 11


def test_a_rebuild_in_batches_gives_the_tables_of_a_rebuild_one_event_at_a_time(two_databases):
    first, second = two_databases
    evts = generated_events(n=60, seed=13)
    for db in (first, second):
        handlers.record_many(db.uow, evts)
    assert handlers.rebuild(first.uow, batch=1) == len(evts)
    assert handlers.rebuild(second.uow, batch=37) == len(evts)
    assert second.tables() == first.tables()


def test_postgresql_array_statements_leave_the_tables_that_sqlite_leaves(pg_templates, tmp_path):
    # On PostgreSQL the events, the complaints and the counters travel as one array per column
    # (array literals built in Python); SQLite runs the SQLAlchemy statements row by row. The
    # same batches give the same rows, including text that needs quoting in an array literal.
    awkward = 'r "q" \\ {a,b} NULL\n\tünï'
    unique = generated_events(n=40, seed=3)
    routed = next(i for i, e in enumerate(unique) if e.event_type == "complaint_routed")
    unique[routed] = replace(unique[routed], data={**unique[routed].data, "rule": awkward,
                                                   "tracking_code": 'DMS-"\\-{x}'})
    pg_url = databases.clone_all({"reporting": pg_templates["reporting"]})["reporting"]
    sqlite_url = f"sqlite:///{tmp_path}/reporting.sqlite3"
    upgrade(SERVICES_DIR / "reporting" / "migrations", sqlite_url)
    pg, sqlite = Db(pg_url), Db(sqlite_url)
    try:
        for db in (pg, sqlite):
            rng = random.Random(5)
            for batch in batches_of(unique, rng, largest=30):
                handlers.record_many(db.uow, batch)
        expected, got = sqlite.tables(), pg.tables()
        assert any(row[complaints.c.keys().index("rule")] == awkward
                   for row in got["complaint_facts"])
        for table in expected:
            assert got[table] == expected[table], table
    finally:
        pg.engine.dispose()
        sqlite.engine.dispose()
        databases.drop_all([pg_url])


def test_batches_mixing_every_queue_leave_the_tables_of_batches_per_queue(two_databases):
    # reporting's sixteen consumers share one batch (batch_group): a batch holds events of any
    # types in arrival order, e.g. a complaint's routed before its received, or a redelivery
    # next to the first copy. Recording the arrival stream in such batches leaves what the
    # queues' own batches (one type each, recorded type after type) leave.
    per_queue, mixed = two_databases
    rng = random.Random(17)
    unique = generated_events(n=60, seed=21)
    stream = []
    for i in range(0, len(unique), 8):  # arrival order: roughly as produced, locally reordered
        window = unique[i:i + 8]
        rng.shuffle(window)
        stream += window
    for event in rng.sample(unique, 30):  # redeliveries, near and far
        stream.insert(rng.randrange(len(stream) + 1), event)

    by_type: dict[str, list] = {}
    for event in stream:
        by_type.setdefault(event.event_type, []).append(event)
    queue_batches = [batch for events_of_type in by_type.values()
                     for batch in batches_of(events_of_type, rng, largest=50)]
    mixed_batches = list(batches_of(stream, random.Random(3), largest=50))
    keys = [[(e.event_type, e.data["complaint_id"]) for e in b] for b in mixed_batches]
    both = [(k.index(("complaint_received", c)), k.index(("complaint_routed", c)))
            for k in keys for t, c in set(k)
            if t == "complaint_received" and ("complaint_routed", c) in k]
    assert any(r < o for r, o in both) and any(r > o for r, o in both), \
        "batches hold a complaint's received and its routed, in either order"

    assert sum(handlers.record_many(per_queue.uow, b) for b in queue_batches) == len(unique)
    assert sum(handlers.record_many(mixed.uow, b) for b in mixed_batches) == len(unique)
    expected, got = counted(per_queue.tables()), counted(mixed.tables())
    assert len(expected["complaint_facts"]) == 60
    assert len(expected["rollup_months"]) > 100
    for table in expected:
        assert got[table] == expected[table], table


def counted(tables: dict) -> dict:
    """The tables without counter rows that hold only zeros: a row a complaint passed through
    on its way (e.g. "unrouted" before its routing was applied) stays behind at zero, so which
    zero rows exist depends on the order the events were applied in; per-queue batches
    committing in whatever order their queues deliver leave different ones too."""
    out = dict(tables)
    for table, _, values in rollups.TABLES:
        columns = [c.name for c in table.c if c.name != "recorded_at"]
        at = [columns.index(v) for v in values]
        out[table.name] = [row for row in tables[table.name] if any(row[i] for i in at)]
    return out
