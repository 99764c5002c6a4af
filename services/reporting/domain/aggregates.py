"""Pre-aggregated statistics: what one complaint contributes to the counter tables.

Statistics never scan complaints. Each complaint contributes to one row of a daily "cube" keyed
by (day received in WIB, unit, kecamatan, channel, category, confidentiality): one complaint, its
status, SLA outcome, returns, re-routes, rating, notifications. Its working-day durations (to
first response, to resolution) go to a histogram keyed the same way plus (measure, working days).

When an event changes a complaint's facts, the projection subtracts the old contribution and adds
the new one (`delta`), in the same transaction: the tables always equal the sum over complaints,
whatever order events arrive in, and a rebuild reproduces them exactly.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.catalogue import STATUSES
from shared.workdays import Holidays, load_holidays, local_date, working_days_between

DIMENSIONS = ("unit_code", "kecamatan_code", "channel", "category", "confidentiality")
UNKNOWN = ""  # dimension value not known (yet); key columns are never NULL
OPEN_STATUSES = tuple(s for s in STATUSES if s not in ("resolved", "closed"))
STATUS_COLUMNS = {status: f"st_{status}" for status in STATUSES}
MEASURES = ("first_response", "resolution")
COUNTER_COLUMNS = (
    "complaints",
    *STATUS_COLUMNS.values(),
    "sla_met",
    "sla_missed",
    "sla_warned",
    "returned",
    "rerouted",
    "reopened",
    "rated",
    "rating_sum",
    *(f"rating_{n}" for n in range(1, 6)),
    "notifications_sent",
    "notifications_failed",
)

Key = tuple  # (day, *DIMENSIONS)


@dataclass(frozen=True)
class Contribution:
    key: Key
    counters: dict[str, int]
    durations: tuple[tuple[str, int], ...]  # (measure, working days)


def sla_outcome(row: Mapping[str, Any]) -> str | None:
    """'met', 'missed', or None while the clock is still running (or there is no deadline)."""
    if row.get("sla_breached"):
        return "missed"
    due, first = row.get("due_at"), row.get("first_response_at")
    if due is None or first is None:
        return None
    return "met" if first <= due else "missed"


def contribution(
    row: Mapping[str, Any] | None, holidays: Holidays | None = None
) -> Contribution | None:
    """What a complaint's facts add to the counter tables (None: not countable yet)."""
    if row is None:
        return None
    anchor = row.get("received_at") or row.get("routed_at")
    if anchor is None:
        return None  # only notifications seen so far: counted once the complaint is known
    calendar = holidays if holidays is not None else load_holidays()
    key = (local_date(anchor), *(row.get(d) or UNKNOWN for d in DIMENSIONS))
    counters = dict.fromkeys(COUNTER_COLUMNS, 0)
    counters["complaints"] = 1
    counters[STATUS_COLUMNS[row.get("status") or "received"]] = 1
    outcome = sla_outcome(row)
    if outcome:
        counters[f"sla_{outcome}"] = 1
    counters["sla_warned"] = int(bool(row.get("sla_warned")))
    counters["returned"] = row.get("returned_count") or 0
    counters["rerouted"] = row.get("reroute_count") or 0
    counters["reopened"] = row.get("reopened_count") or 0
    rating = row.get("rating")
    if rating:
        counters["rated"] = 1
        counters["rating_sum"] = rating
        counters[f"rating_{rating}"] = 1
    counters["notifications_sent"] = row.get("notifications_sent") or 0
    counters["notifications_failed"] = row.get("notifications_failed") or 0
    durations = []
    start = row.get("received_at")
    if start is not None:
        for measure, end in (("first_response", row.get("first_response_at")),
                             ("resolution", row.get("resolved_at"))):
            if end is not None:
                durations.append((measure, max(0, working_days_between(start, end, calendar))))
    return Contribution(key, counters, tuple(durations))


def delta(before: Contribution | None, after: Contribution | None):
    """Changes to apply to the tables: ([(key, {column: change})], [(key, measure, days, change)]).

    Rows are listed in key order so concurrent transactions lock them in the same order.
    """
    counters: dict[Key, dict[str, int]] = {}
    durations: dict[tuple, int] = {}
    for sign, part in ((-1, before), (1, after)):
        if part is None:
            continue
        bucket = counters.setdefault(part.key, dict.fromkeys(COUNTER_COLUMNS, 0))
        for column, value in part.counters.items():
            bucket[column] += sign * value
        for measure, days in part.durations:
            k = (part.key, measure, days)
            durations[k] = durations.get(k, 0) + sign * 1
    counter_changes = [
        (key, changes) for key, changes in sorted(counters.items(), key=_sort_key)
        if any(changes.values())
    ]
    duration_changes = [
        (key, measure, days, change)
        for (key, measure, days), change in sorted(durations.items(), key=lambda kv: (
            _sort_key((kv[0][0], None)), kv[0][1], kv[0][2]))
        if change
    ]
    return counter_changes, duration_changes


def _sort_key(item):
    key = item[0]
    return (key[0].isoformat(), *key[1:])


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0..1) of a histogram {value: count}, nearest-rank (None when empty).

    Nearest rank keeps the answer a real number of working days that some complaint took.
    """
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, -(-int(q * total * 1_000_000) // 1_000_000))  # ceil(q * total), exact
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def week_start(day: date) -> date:
    return date.fromordinal(day.toordinal() - day.weekday())


def bucket_of(day: date, period: str) -> str:
    """Trend bucket label: ISO week start ('2026-11-02') or month ('2026-11')."""
    return week_start(day).isoformat() if period == "week" else day.strftime("%Y-%m")


def sum_rows(rows: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(COUNTER_COLUMNS, 0)
    for row in rows:
        for column in COUNTER_COLUMNS:
            total[column] += int(row[column] or 0)
    return total
