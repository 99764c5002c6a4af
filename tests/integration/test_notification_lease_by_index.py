"""The drainer's lease on PostgreSQL reads only the deliveries it leases, however many wait.

At full load thousands of complainant deliveries are pending behind the units' (by design: units
first). The lease walks ix_deliveries_due in its own order (units first, then oldest) and stops
after `limit` rows, instead of reading and sorting every pending delivery on every lease. By an
Index Scan, which also marks the entries of rows sent since the last VACUUM dead as it walks
over them (a bitmap scan never does), so those stay cheap too (docs/performance.md, "Session 8:
notification lease by index")."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event as event_api
from sqlalchemy import insert
from support.notification_world import notification_db

from services.notification import handlers
from services.notification.db import deliveries
from shared.db import utcnow

PENDING_COMPLAINANTS = 3000
LIMIT = 10


@pytest.fixture
def db(pg_urls):
    with notification_db(pg_urls["notification"]) as engine_and_uow:
        yield engine_and_uow


def stage(engine, audience: str, count: int, *, age: timedelta) -> None:
    """`count` pending deliveries to `audience`, due since `age` ago (the oldest first)."""
    now = utcnow()
    rows = [{
        "id": str(uuid.uuid4()), "cause_event_id": str(uuid.uuid4()),
        "complaint_id": str(uuid.uuid4()), "audience": audience,
        "recipient": "kua-merigi" if audience == "unit" else f"warga{i}@contoh.id",
        "channel": "email",
        "template": "unit_new_complaint" if audience == "unit" else "complaint_routed",
        "context": {"tracking_code": "DMS-7Q4K-2P9M", "unit_name": "KUA Kecamatan Merigi",
                    "category": "layanan_nikah", "due_at": now.isoformat()},
        "status": "pending", "attempts": 0, "created_at": now - age,
        "next_attempt_at": now - age + timedelta(milliseconds=i),
    } for i in range(count)]
    with engine.begin() as conn:
        conn.execute(insert(deliveries), rows)


def lease_plan(engine, uow, limit: int) -> dict:
    """The plan and buffers of the drainer's lease with `limit`, the statement and parameters
    exactly as lease_due sends them (seen on a lease of nothing), run by EXPLAIN ANALYZE and
    rolled back."""
    sent = []

    def seen(_conn, _cursor, statement, parameters, *_):
        sent.append((statement, parameters))

    event_api.listen(engine, "before_cursor_execute", seen)
    try:
        assert handlers.lease_due(uow, 0, timedelta(minutes=5)) == []
    finally:
        event_api.remove(engine, "before_cursor_execute", seen)
    [(statement, parameters)] = [s for s in sent if "UPDATE deliveries" in s[0]]
    # EXPLAIN before the lease's own statement, after whatever the query string sets first.
    head, sep, tail = statement.partition("WITH due")
    explain = head + "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sep + tail
    with engine.connect() as conn:
        try:
            return conn.exec_driver_sql(explain, {**parameters, "b_limit": limit}).scalar()[0]
        finally:
            conn.rollback()


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def test_the_lease_reads_the_units_and_the_oldest_complainants_only(db):
    """On a table never analyzed (autovacuum off), with thousands of complainant deliveries
    pending behind a few units'."""
    engine, uow = db
    with engine.connect() as conn:
        conn.exec_driver_sql("ALTER TABLE deliveries SET (autovacuum_enabled = off)")
        conn.commit()
    stage(engine, "complainant", PENDING_COMPLAINANTS, age=timedelta(minutes=10))
    stage(engine, "unit", 3, age=timedelta(seconds=1))

    plan = lease_plan(engine, uow, LIMIT)

    scans = sorted((n["Node Type"], n.get("Index Name")) for n in nodes(plan["Plan"])
                   if "Scan" in n["Node Type"] and "CTE Name" not in n)
    # The CTE walks the due index in lease order; the UPDATE fetches the rows by id.
    assert scans == [("Index Scan", "deliveries_pkey"), ("Index Scan", "ix_deliveries_due")]
    assert not [n for n in nodes(plan["Plan"]) if n["Node Type"] == "Sort"]
    assert plan["Plan"]["Actual Rows"] == LIMIT
    # 3,000 pending deliveries fill ~100 table pages; finding and locking the 10 due rows reads
    # a few index and table pages (the UPDATE then writes the rows' new versions).
    [due] = [n for n in nodes(plan["Plan"]) if n.get("Subplan Name") == "CTE due"]
    read = due["Shared Hit Blocks"] + due["Shared Read Blocks"]
    assert read < 40, read

    leased = handlers.lease_due(uow, LIMIT, timedelta(minutes=5))
    assert [r["audience"] for r in leased] == ["unit"] * 3 + ["complainant"] * (LIMIT - 3)
    oldest = sorted(r["next_attempt_at"] for r in leased[3:])
    assert [r["next_attempt_at"] for r in leased[3:]] == oldest
