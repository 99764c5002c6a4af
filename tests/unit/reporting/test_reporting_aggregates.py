"""Working days, contributions, percentiles and the JSON log formatter (pure, no database)."""

import json
import logging
from datetime import UTC, date, datetime

from services.reporting.domain.aggregates import contribution, delta, percentile
from shared.logging import JsonFormatter, correlation
from shared.workdays import WIB, working_days_between, working_days_in


def wib(*args):
    return datetime(*args, tzinfo=WIB).astimezone(UTC)


def test_working_days_skip_weekends_holidays_and_after_hours():
    assert working_days_between(wib(2026, 11, 2, 9), wib(2026, 11, 4, 10)) == 2
    assert working_days_between(wib(2026, 11, 6, 17), wib(2026, 11, 10, 9)) == 1
    assert working_days_between(wib(2026, 12, 23, 10), wib(2026, 12, 28, 9)) == 1  # Natal
    assert working_days_in(date(2026, 11, 2), date(2026, 11, 30)) == 20


def test_percentile_is_nearest_rank_over_a_histogram():
    assert percentile({1: 1, 2: 1}, 0.5) == 1
    assert percentile({1: 9, 7: 1}, 0.9) == 1
    assert percentile({1: 8, 7: 2}, 0.9) == 7
    assert percentile({}, 0.5) is None


def test_a_status_change_moves_one_complaint_between_status_counters():
    row = {"complaint_id": "x", "received_at": wib(2026, 11, 2, 9), "status": "routed",
           "unit_code": "kua-merigi", "channel": "web"}
    before = contribution(row)
    after = contribution({**row, "status": "resolved", "resolved_at": wib(2026, 11, 4, 9)})
    counters, durations = delta(before, after)
    assert counters == [(before.key, {**dict.fromkeys(before.counters, 0),
                                      "st_routed": -1, "st_resolved": 1})]
    assert durations == [(before.key, "resolution", 2, 1)]


def test_json_logs_carry_the_correlation_id():
    record = logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": "hello %s",
                                    "args": ("x",)})
    with correlation("3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10"):
        line = JsonFormatter(service="reporting").format(record)
    entry = json.loads(line)
    assert entry["message"] == "hello x" and entry["service"] == "reporting"
    assert entry["correlation_id"] == "3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10"
