"""The roll-ups answer exactly what the daily cube answers: for every filter set with roll-up
rows, periods with partial months at either end, after live recording in any order, after
recomputing them from the cube, and after a rebuild; on PostgreSQL and on SQLite (the embedded
default, no GROUPING SETS)."""

from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from services.cli import SERVICES_DIR
from services.reporting import handlers, rollups
from services.reporting.db import rollup_days, rollup_months
from services.reporting.domain.generator import stories
from shared.contracts import build_event, load_event
from shared.db import UnitOfWork, make_engine
from shared.migrate import upgrade

Q = handlers.StatsQuery
TODAY = date(2026, 12, 15)
QUERIES = [
    Q(),
    Q(date(2026, 10, 1), date(2026, 10, 31), {}, "week"),  # one whole month
    Q(date(2026, 9, 25), date(2026, 11, 10)),  # partial months at both ends
    Q(date(2026, 10, 5), date(2026, 10, 20)),  # inside one month: only the cube
    Q(date(2026, 10, 1), None),  # open end
    Q(None, date(2026, 10, 15)),  # open start, partial end
    Q(filters={"unit_code": "kankemenag-kepahiang"}),
    Q(date(2026, 9, 25), date(2026, 11, 10), {"kecamatan_code": "17.08.03"}),
    Q(date(2026, 10, 3), date(2026, 11, 30), {"channel": "web"}),
    Q(filters={"category": "nikah_rujuk"}),
    Q(date(2026, 9, 1), date(2026, 11, 4), {"confidentiality": "public"}),
    Q(date(2026, 9, 25), date(2026, 11, 10), {"channel": "qr", "confidentiality": "public"}),
    Q(filters={"channel": "web", "category": "nikah_rujuk"}),
    Q(date(2026, 10, 2), None, {"category": "wakaf", "confidentiality": "public"}),
    # Ends reaching past the data (20 Sep - 28 Nov) count as whole months.
    Q(date(2026, 9, 10), date(2026, 12, 20)),
    Q(date(2026, 9, 18), date(2026, 9, 30), {"channel": "qr"}),
    Q(None, date(2026, 12, 10), {"category": "nikah_rujuk", "confidentiality": "public"}),
    Q(date(2026, 9, 5), None, {"unit_code": "kankemenag-kepahiang"}),
    Q(filters={"channel": "web", "category": "nikah_rujuk", "confidentiality": "public"}),
]


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request, tmp_path):
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_urls")["reporting"]
    else:
        url = f"sqlite:///{tmp_path}/reporting.sqlite3"
        upgrade(SERVICES_DIR / "reporting" / "migrations", url)
    engine = make_engine(url)
    factory = sessionmaker(engine, expire_on_commit=False)
    yield engine, factory, (lambda: UnitOfWork(factory, None, None))
    engine.dispose()


def record_generated(uow_factory, reverse=False):
    for story in stories(120, seed=5, start=date(2026, 9, 20), days=70):
        for event_type, data in (reversed(story) if reverse else story):
            envelope = build_event(event_type, data, correlation_id=str(data["complaint_id"]))
            handlers.record(uow_factory, load_event(envelope))


def answers(factory, source=None):
    with factory() as session:
        return [handlers.stats(session, q, today=TODAY, source=source) for q in QUERIES]


def test_roll_ups_give_the_cube_s_answers_for_every_filter_set_and_period(database):
    engine, factory, uow = database
    record_generated(uow, reverse=True)

    from_cube = answers(factory, source="cube")
    assert all(handlers.plan(q) == "rollups" for q in QUERIES)
    assert answers(factory) == from_cube
    assert from_cube[0]["total"] == 120
    assert 0 < from_cube[2]["total"] < 120 and from_cube[11]["total"] > 0
    assert from_cube[-1]["by_unit"]  # three filters still break down by unit
    assert from_cube[14]["total"] == 120  # a period around all the data: everything
    with factory() as session:
        query = QUERIES[14]
        assert handlers._widen_to_data(session, query, *handlers._months_and_ends(query)) == (
            date(2026, 9, 1), date(2026, 12, 1), [])  # no cube read left

    # Recomputed from the cube (what the migration and the bulk loaders do): same answers.
    with engine.begin() as conn:
        rollups.refresh(conn)
    assert answers(factory) == from_cube


def test_a_unit_with_other_filters_reads_the_cube_and_agrees_with_the_unit_alone(database):
    _, factory, uow = database
    record_generated(uow)
    unit, unit_and_channel = (Q(filters={"unit_code": "kankemenag-kepahiang"}),
                              Q(filters={"unit_code": "kankemenag-kepahiang", "channel": "web"}))
    assert handlers.plan(unit) == "rollups" and handlers.plan(unit_and_channel) == "cube"
    with factory() as session:
        alone = handlers.stats(session, unit, today=TODAY)
        both = handlers.stats(session, unit_and_channel, today=TODAY)
    assert both["total"] == alone["by_channel"]["web"]
    assert both["by_unit"] == {"kankemenag-kepahiang": both["total"]}


def test_busy_roll_up_rows_are_striped_and_a_rebuild_keeps_the_answers(pg_urls):
    url = pg_urls["reporting"]
    engine = make_engine(url)
    factory = sessionmaker(engine, expire_on_commit=False)
    record_generated(lambda: UnitOfWork(factory, None, None))
    live = answers(factory)
    with factory() as session:
        stripes = session.execute(select(func.count(func.distinct(rollup_days.c.shard))).where(
            rollup_days.c.filter_dim == "")).scalar_one()
        unit_stripes = session.execute(select(func.max(rollup_months.c.shard)).where(
            rollup_months.c.dim == "unit_code")).scalar_one()
    assert stripes > 1  # complaints spread over the stripes of the unfiltered rows
    assert unit_stripes == 0  # per-unit rows are not busy: one row each

    assert handlers.rebuild(lambda: UnitOfWork(factory, None, None)) > 0
    assert answers(factory) == live
    engine.dispose()
