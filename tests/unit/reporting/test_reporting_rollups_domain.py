"""Where one complaint's contribution lands in the roll-ups, which plan a question takes, and how
a period splits into whole months and partial ends (pure, no database)."""

from datetime import UTC, date, datetime

from services.reporting.domain.aggregates import (
    FILTER_SETS,
    SHARDS,
    contribution,
    rollup_delta,
    rollup_filter,
    shard_of,
)
from services.reporting.handlers import StatsQuery, _months_and_ends, plan

ROW = {"complaint_id": "c-1", "received_at": datetime(2026, 11, 2, 3, tzinfo=UTC),
       "status": "routed", "unit_code": "kua-merigi", "kecamatan_code": "17.08.05",
       "channel": "web", "category": "nikah_rujuk", "confidentiality": "public"}


def test_a_new_complaint_lands_once_per_filter_set_and_dimension_outside_it():
    days, months, durations = rollup_delta(None, contribution(ROW), shard=3)

    assert len(days) == len(FILTER_SETS) == 10
    assert len(months) == sum(5 - len(f) for f in FILTER_SETS) == 36
    assert durations == []
    assert (("channel+confidentiality", "web|public", date(2026, 11, 2), 3)
            in [key for key, _ in days])
    # Rows naming a unit or a kecamatan are not striped; the busy ones take the stripe.
    assert ("unit_code", "kua-merigi", date(2026, 11, 2), 0) in [key for key, _ in days]
    assert ("", "", date(2026, 11, 1), "unit_code", "kua-merigi", 0) in [k for k, _ in months]
    assert ("", "", date(2026, 11, 1), "channel", "web", 3) in [k for k, _ in months]


def test_a_status_change_touches_only_the_day_rows_and_a_resolution_adds_a_duration():
    before = contribution(ROW)
    acknowledged = contribution({**ROW, "status": "acknowledged"})
    days, months, durations = rollup_delta(before, acknowledged, shard=1)
    assert len(days) == 10 and months == [] and durations == []

    resolved = contribution({**ROW, "status": "resolved",
                             "resolved_at": datetime(2026, 11, 4, 3, tzinfo=UTC)})
    _, _, durations = rollup_delta(acknowledged, resolved, shard=1)
    assert len(durations) == 10
    assert all(key[3:5] == ("resolution", 2) and n == 1 for key, n in durations)


def test_a_re_route_moves_the_unit_rows_and_leaves_the_unit_free_totals_alone():
    before = contribution(ROW)
    after = contribution({**ROW, "unit_code": "kankemenag-kepahiang"})
    days, months, _ = rollup_delta(before, after, shard=0)
    assert {key[:2] for key, _ in days} == {("unit_code", "kua-merigi"),
                                            ("unit_code", "kankemenag-kepahiang")}
    assert all(key[0] != "" or key[3] == "unit_code" for key, _ in months)


def test_filters_choose_roll_ups_when_they_have_rows_and_the_cube_otherwise():
    assert rollup_filter({}) == ("", "")
    assert rollup_filter({"confidentiality": "public", "channel": "qr"}) == (
        "channel+confidentiality", "qr|public")
    assert plan(StatsQuery(filters={"unit_code": "kua-merigi"})) == "rollups"
    assert plan(StatsQuery(filters={"unit_code": "kua-merigi", "channel": "qr"})) == "cube"
    assert plan(StatsQuery(filters={"kecamatan_code": "17.08.05", "channel": "qr"})) == "cube"
    assert plan(StatsQuery(filters={"channel": "qr", "category": "wakaf",
                                    "confidentiality": "public"})) == "rollups"


def test_a_period_splits_into_whole_months_and_partial_ends():
    def split(lo, hi):
        return _months_and_ends(StatsQuery(lo, hi))

    assert split(None, None) == (None, None, [])
    assert split(date(2026, 1, 1), date(2026, 12, 31)) == (date(2026, 1, 1), date(2026, 12, 1),
                                                           [])
    assert split(date(2026, 1, 15), date(2026, 3, 10)) == (
        date(2026, 2, 1), date(2026, 2, 1),
        [(date(2026, 1, 15), date(2026, 1, 31)), (date(2026, 3, 1), date(2026, 3, 10))])
    assert split(date(2026, 2, 3), date(2026, 2, 20)) == (
        None, None, [(date(2026, 2, 3), date(2026, 2, 20))])
    assert split(None, date(2026, 2, 20)) == (None, date(2026, 1, 1),
                                              [(date(2026, 2, 1), date(2026, 2, 20))])
    assert split(date(2025, 12, 2), None) == (date(2026, 1, 1), None,
                                              [(date(2025, 12, 2), date(2025, 12, 31))])


def test_stripes_are_stable_per_complaint():
    assert shard_of("c-1") == shard_of("c-1")
    assert {shard_of(f"c-{i}") for i in range(50)} == set(range(SHARDS))
