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
from operator import add, itemgetter
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


# -- roll-ups -----------------------------------------------------------------------------------
#
# The daily cube above has one row per (day, unit, kecamatan, channel, category,
# confidentiality): with a province's 1,000 units it holds about one row per complaint, so an
# all-time question would read a million rows. The roll-ups answer every question with at most
# one filter without reading it:
#
# - `rollup_days`   (filter, day): every counter per day received -> totals, trend, backlog;
# - `rollup_months` (filter, month, dimension, value): complaints and SLA counters per value of
#   each other dimension -> "by unit", "by channel", ..., SLA per unit;
# - `rollup_durations` (filter, month, measure, working days): the histograms.
#
# "filter" is (filter_dim, filter_value): ("", "") for no filter, "channel" / "web" for one, or
# "channel+confidentiality" / "web|public" for a combination (FILTER_SETS). A contribution lands
# in 10 day rows, 36 month rows (each filter x the dimensions outside it) and 10 rows per
# duration.
# Rows without a unit or kecamatan are touched by nearly every event, so they are striped over
# SHARDS rows (a stable stripe per complaint) to keep concurrent transactions from queueing on
# one row lock; readers add the stripes up.

SHARDS = 4
# The filters with their own roll-up rows: none, each dimension alone, and every combination of
# the low-cardinality dimensions (a channel and a confidentiality level still match a quarter of
# all complaints; even all three match a few percent, whose rows lie on nearly every page of the
# cube). Combinations with a unit or a kecamatan read the cube through its indexes: they match
# few rows.
FILTER_SETS = (
    (), *((d,) for d in DIMENSIONS),
    ("channel", "confidentiality"), ("channel", "category"), ("category", "confidentiality"),
    ("channel", "category", "confidentiality"),
)
UNIT_SLA_COLUMNS = ("complaints", "sla_met", "sla_missed", "sla_warned")
_COLD = frozenset({"unit_code", "kecamatan_code"})


def filter_name(dims) -> str:
    """filter_dim of a filter set: "" (none), "channel", "channel+confidentiality", ..."""
    return "+".join(dims)


def filter_value(values) -> str:
    return "|".join(values)


def rollup_filter(filters: Mapping[str, str]) -> tuple[str, str] | None:
    """(filter_dim, filter_value) of the roll-up rows answering `filters`, or None (the cube)."""
    dims = tuple(d for d in DIMENSIONS if d in filters)
    if dims not in FILTER_SETS:
        return None
    return filter_name(dims), filter_value(filters[d] for d in dims)


def shard_of(complaint_id: str) -> int:
    """A stable stripe 0..SHARDS-1 for a complaint (same stripe for all its contributions)."""
    return sum(str(complaint_id).encode()) % SHARDS


def _stripe(shard: int, *dims) -> int:
    return 0 if _COLD.intersection(dims) else shard


def _filters(key: Key):
    values = dict(zip(DIMENSIONS, key[1:], strict=True))
    for dims in FILTER_SETS:
        yield dims, filter_name(dims), filter_value(values[d] for d in dims)


def month_of(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def rollup_delta(before: Contribution | None, after: Contribution | None, shard: int):
    """Changes to the roll-up tables, merged per row and sorted (lock order):
    (days: [(key, [COUNTER_COLUMNS changes])], months: [(key, [UNIT_SLA_COLUMNS changes])],
     durations: [(key, change)]) with keys as in `ROLLUP_KEYS` (db.py) order."""
    days, months, durations = _rollup_rows(before, after, shard)
    return (
        sorted(((k, v) for k, v in days.items() if any(v)), key=_rollup_sort),
        sorted(((k, v) for k, v in months.items() if any(v)), key=_rollup_sort),
        sorted(((k, v[0]) for k, v in durations.items() if v[0]), key=_rollup_sort),
    )


def _rollup_rows(before: Contribution | None, after: Contribution | None, shard: int):
    """rollup_delta's rows, unsorted, zero rows included: ({key: [changes]}, ... durations
    {key: [change]})."""
    days: dict[tuple, list[int]] = {}
    months: dict[tuple, list[int]] = {}
    durations: dict[tuple, list[int]] = {}
    for sign, part in ((-1, before), (1, after)):
        if part is None:
            continue
        day = part.key[0]
        month = month_of(day)
        values = dict(zip(DIMENSIONS, part.key[1:], strict=True))
        counters = [sign * part.counters[c] for c in COUNTER_COLUMNS]
        narrow = [sign * part.counters[c] for c in UNIT_SLA_COLUMNS]
        for fdims, fdim, fvalue in _filters(part.key):
            _add_into(days, (fdim, fvalue, day, _stripe(shard, *fdims)), counters)
            for dim in DIMENSIONS:
                if dim not in fdims:
                    _add_into(months, (fdim, fvalue, month, dim, values[dim],
                                       _stripe(shard, *fdims, dim)), narrow)
            for measure, wd in part.durations:
                _add_into(durations, (fdim, fvalue, month, measure, wd, _stripe(shard, *fdims)),
                          [sign])
    return days, months, durations


def _add_into(rows: dict, key: tuple, values: list[int]) -> None:
    row = rows.get(key)
    rows[key] = list(values) if row is None else list(map(add, row, values))


def _add_each(rows: dict, keys, values: list[int]) -> None:
    """`_add_into` for every key of `keys` (one call for all the rows of a step)."""
    get = rows.get
    for key in keys:
        row = get(key)
        rows[key] = list(values) if row is None else list(map(add, row, values))


def _add_pairs(rows: dict, old_keys, new_keys, old: list[int], new: list[int]) -> None:
    """A moved step's rows, the old part's keys and the new part's paired by position: one
    row (old + new, kept only if not all zeros) where they are equal, else each its part."""
    net = list(map(add, old, new))
    changed, old_any, new_any = any(net), any(old), any(new)
    for old_key, new_key in zip(old_keys, new_keys, strict=True):
        if old_key == new_key:
            if changed:
                _add_into(rows, new_key, net)
            continue
        if old_any:
            _add_into(rows, old_key, old)
        if new_any:
            _add_into(rows, new_key, new)


def _rollup_sort(item):
    return tuple(x.isoformat() if isinstance(x, date) else x for x in item[0])


# The roll-up row keys one cube key touches, per stripe: (days, months with the index of the
# dimension whose value they carry, duration key prefixes). A complaint's later events touch the
# same rows, so they are built once and kept (bounded: cleared when full).
_ROW_KEYS: dict[tuple, tuple] = {}
_ROW_KEYS_MAX = 8192


# Per filter set, what `_row_keys` needs of a cube key, worked out once: (filter_dim, the key
# positions of its values, whether its rows are unstriped, [(dimension, key position, whether
# that month row is unstriped)] for the dimensions outside the filter).
_ROW_PLAN = tuple(
    (filter_name(fdims), tuple(1 + DIMENSIONS.index(d) for d in fdims),
     bool(_COLD.intersection(fdims)),
     tuple((dim, 1 + DIMENSIONS.index(dim), bool(_COLD.intersection((*fdims, dim))))
           for dim in DIMENSIONS if dim not in fdims))
    for fdims in FILTER_SETS
)


def _row_keys(key: Key, shard: int) -> tuple[tuple, tuple, tuple]:
    cached = _ROW_KEYS.get((key, shard))
    if cached is not None:
        return cached
    # The keys `_rollup_rows` builds (filters from `_filters`, stripes from `_stripe`), in
    # the same order.
    day = key[0]
    month = month_of(day)
    days, months, durations = [], [], []
    for fdim, positions, cold, month_dims in _ROW_PLAN:
        fvalue = "|".join([key[i] for i in positions])
        stripe = 0 if cold else shard
        days.append((fdim, fvalue, day, stripe))
        months.extend((fdim, fvalue, month, dim, key[i], 0 if unstriped else shard)
                      for dim, i, unstriped in month_dims)
        durations.append((fdim, fvalue, month, stripe))
    if len(_ROW_KEYS) >= _ROW_KEYS_MAX:
        _ROW_KEYS.clear()
    cached = _ROW_KEYS[(key, shard)] = (tuple(days), tuple(months), tuple(durations))
    return cached


_NARROW = tuple(COUNTER_COLUMNS.index(c) for c in UNIT_SLA_COLUMNS)


class DeltaSum:
    """The changes of many complaint steps (a batch recorded in one transaction), summed per row
    of each counter table: the cube, its duration histogram and the three roll-ups.

    `add(before, after, shard)` takes one step of one complaint, as `delta` and `rollup_delta`
    do. `changes()` gives, per table in `rollups.TABLES` order, [(key, [changes])] sorted in
    key order (concurrent transactions lock rows in the same order). A row touched by any step
    stays in the result even when the steps cancel out (+1 then -1): writing it creates the same
    zero row that recording the steps one transaction at a time leaves behind, so the tables
    are identical either way, not only their sums.
    """

    def __init__(self):
        self._cube: dict[Key, list[int]] = {}
        self._durations: dict[tuple, list[int]] = {}
        self._days: dict[tuple, list[int]] = {}
        self._months: dict[tuple, list[int]] = {}
        self._rollup_durations: dict[tuple, list[int]] = {}

    def add(self, before: Contribution | None, after: Contribution | None, shard: int) -> None:
        if before == after:
            return  # nothing moves (delta and rollup_delta would give no rows)
        if before is not None and after is not None and before.key != after.key:
            self._add_moved(before, after, shard)
            return
        # One row key for the whole step (a new complaint, or a step that keeps the complaint's
        # day and dimensions: nearly all of them): every row it touches changes by after -
        # before, computed once; a row is written only if that is not all zeros, as `delta`
        # and `rollup_delta` would write it.
        if before is None:
            key = after.key
            counters = [after.counters[c] for c in COUNTER_COLUMNS]
            durations = {d: 1 for d in after.durations}
        elif after is None:
            key = before.key
            counters = [-before.counters[c] for c in COUNTER_COLUMNS]
            durations = {d: -1 for d in before.durations}
        else:
            key = after.key
            old, new = before.counters, after.counters
            counters = [new[c] - old[c] for c in COUNTER_COLUMNS]
            durations = dict.fromkeys(after.durations, 1)
            for d in before.durations:
                durations[d] = durations.get(d, 0) - 1
        day_keys, month_keys, duration_keys = _row_keys(key, shard)
        if any(counters):
            _add_into(self._cube, key, counters)
            _add_each(self._days, day_keys, counters)
            narrow = [counters[i] for i in _NARROW]
            if any(narrow):
                _add_each(self._months, month_keys, narrow)
        for (measure, wd), n in durations.items():
            if n:
                _add_into(self._durations, (*key, measure, wd), [n])
                for fdim, fvalue, month, stripe in duration_keys:
                    _add_into(self._rollup_durations,
                              (fdim, fvalue, month, measure, wd, stripe), [n])

    def _add_moved(self, before: Contribution, after: Contribution, shard: int) -> None:
        """A step that moves the complaint to another cube row (routed to another unit, ...):
        a row both parts touch gets their sum, written only if it changes; the others get
        their part. The same rows as `delta` + `_rollup_rows` give, from the cached row keys
        of both cube keys (every routing of a new complaint takes this path: its unit was not
        known before)."""
        old = [-before.counters[c] for c in COUNTER_COLUMNS]
        new = [after.counters[c] for c in COUNTER_COLUMNS]
        # The cube: two different keys, nothing to net (as `delta` gives them).
        for key, counters, sign, part in ((before.key, old, -1, before),
                                          (after.key, new, 1, after)):
            if any(counters):
                _add_into(self._cube, key, counters)
            for measure, wd in part.durations:
                _add_into(self._durations, (*key, measure, wd), [sign])
        old_days, old_months, old_durations = _row_keys(before.key, shard)
        new_days, new_months, new_durations = _row_keys(after.key, shard)
        # `_row_keys` lists the rows of both keys in the same order (filter by filter,
        # dimension by dimension), and a row key holds its filter (and dimension), so two parts
        # can share a row only at the same position.
        _add_pairs(self._days, old_days, new_days, old, new)
        _add_pairs(self._months, old_months, new_months, [old[i] for i in _NARROW],
                   [new[i] for i in _NARROW])
        if before.durations or after.durations:
            durations: dict[tuple, list[int]] = {}
            for prefixes, sign, part in ((old_durations, -1, before),
                                         (new_durations, 1, after)):
                for measure, wd in part.durations:
                    for fdim, fvalue, month, stripe in prefixes:
                        _add_into(durations, (fdim, fvalue, month, measure, wd, stripe), [sign])
            for key, values in durations.items():
                if any(values):
                    _add_into(self._rollup_durations, key, values)

    def changes(self) -> tuple[list, list, list, list, list]:
        # Key order: the keys' dates compare as their ISO dates do (`_rollup_sort`), and no two
        # keys of a table are equal, so plain tuple order is the same order, without a key
        # function per row.
        return tuple(
            sorted(rows.items(), key=itemgetter(0))
            for rows in (self._cube, self._durations, self._days, self._months,
                         self._rollup_durations)
        )
