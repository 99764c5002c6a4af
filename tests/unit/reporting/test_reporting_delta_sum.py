"""Summing the counter changes of a batch (aggregates.DeltaSum): per row, in lock order, equal
to writing each step on its own, rows that cancel out kept as the zero rows those writes leave
(pure, no database)."""

import random
from datetime import UTC, datetime

from services.reporting.domain.aggregates import (
    COUNTER_COLUMNS,
    DeltaSum,
    contribution,
    delta,
    rollup_delta,
    shard_of,
)
from services.reporting.domain.generator import stories
from services.reporting.domain.projection import project

ROW = {"complaint_id": "c-1", "received_at": datetime(2026, 11, 2, 3, tzinfo=UTC),
       "status": "routed", "unit_code": "kua-merigi", "kecamatan_code": "17.08.05",
       "channel": "web", "category": "nikah_rujuk", "confidentiality": "public"}


def one_by_one(steps):
    """What writing every step in its own transaction adds to each table, per row."""
    tables = [{} for _ in range(5)]
    for before, after, shard in steps:
        counters, durations = delta(before, after)
        days, months, rollup_durations = rollup_delta(before, after, shard)
        rows = (
            [(k, [c[col] for col in COUNTER_COLUMNS]) for k, c in counters],
            [((*k, m, wd), [n]) for k, m, wd, n in durations],
            days, months, [(k, [n]) for k, n in rollup_durations],
        )
        for table, changes in zip(tables, rows, strict=True):
            for key, values in changes:
                row = table.setdefault(key, [0] * len(values))
                for i, v in enumerate(values):
                    row[i] += v
    return tables


def test_one_step_gives_exactly_the_rows_of_delta_and_rollup_delta_in_key_order():
    total = DeltaSum()
    total.add(None, contribution(ROW), 2)
    cube, durations, days, months, rollup_durations = total.changes()
    new_days, new_months, _ = rollup_delta(None, contribution(ROW), 2)
    assert days == new_days and months == new_months
    assert [k for k, _ in cube] == [k for k, _ in delta(None, contribution(ROW))[0]]
    assert durations == rollup_durations == []


def test_steps_of_several_complaints_sum_per_row_and_keep_the_rows_that_cancel_out():
    other = {**ROW, "complaint_id": "c-2", "unit_code": "", "channel": "qr"}
    routed = contribution({**other, "unit_code": "kua-ujan-mas"})
    resolved = contribution({**ROW, "status": "resolved",
                             "first_response_at": datetime(2026, 11, 4, 3, tzinfo=UTC),
                             "resolved_at": datetime(2026, 11, 5, 3, tzinfo=UTC)})
    steps = [
        (None, contribution(ROW), 1),
        (None, contribution(other), 3),
        (contribution(ROW), resolved, 1),
        (contribution(other), routed, 3),  # the unit-less row goes back to zero
        (resolved, resolved, 1),  # no change at all
    ]
    total = DeltaSum()
    for step in steps:
        total.add(*step)
    changes = total.changes()
    expected = one_by_one(steps)
    for table, rows in zip(expected, changes, strict=True):
        assert dict(rows) == table
        assert [k for k, _ in rows] == sorted(
            table, key=lambda k: tuple(x.isoformat() if hasattr(x, "isoformat") else x
                                       for x in k))
    zero_rows = [k for k, v in changes[0] if not any(v)]
    assert zero_rows and all(k[1] == "" for k in zero_rows)


def test_generated_histories_in_any_order_sum_exactly_as_written_step_by_step():
    # Many complaints' histories, each shuffled (a notification or the routing before the
    # complaint itself, re-routes moving it between rows), summed in one DeltaSum, then compared
    # row by row, zero rows included, with each step's own delta and rollup_delta.
    rng = random.Random(8)
    steps = []
    for story in stories(80, seed=5):
        rng.shuffle(story)
        facts, shard = None, shard_of(story[0][1]["complaint_id"])
        for event_type, data in story:
            after = project(facts, event_type, data)
            steps.append((contribution(facts), contribution(after), shard))
            facts = after
    assert any(b is not None and a is not None and b.key != a.key for b, a, _ in steps)
    total = DeltaSum()
    for step in steps:
        total.add(*step)
    for table, rows in zip(one_by_one(steps), total.changes(), strict=True):
        assert dict(rows) == table
        assert [k for k, _ in rows] == sorted(
            table, key=lambda k: tuple(x.isoformat() if hasattr(x, "isoformat") else x
                                       for x in k))
