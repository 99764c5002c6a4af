"""reporting's use cases: record every event once, keep the projection and its counter tables,
answer statistics from the counter tables."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import (
    and_,
    bindparam,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    union_all,
)

from services.reporting import rollups
from services.reporting.db import (
    complaints,
    daily_stats,
    duration_stats,
    events,
    rollup_days,
    rollup_durations,
    rollup_months,
)
from services.reporting.domain import aggregates
from services.reporting.domain.aggregates import (
    COUNTER_COLUMNS,
    DIMENSIONS,
    MEASURES,
    OPEN_STATUSES,
    STATUS_COLUMNS,
    UNIT_SLA_COLUMNS,
    contribution,
    shard_of,
)
from services.reporting.domain.projection import NON_COMPLAINT_EVENTS, project
from shared.catalogue import STATUSES
from shared.contracts import Event, event_schema, fastpath, load_event
from shared.db import utcnow
from shared.workdays import is_working_day, load_holidays, working_days_in


def record(uow_factory, event: Event) -> bool:
    """Store the event and apply it to the projection in one transaction; False if seen before."""
    return record_many(uow_factory, [event]) == 1


def record_many(uow_factory, batch: Sequence[Event]) -> int:
    """Store a batch of events and apply the new ones to the projection in ONE transaction;
    returns how many were new.

    Events already stored (redeliveries) and repeats within the batch are skipped. The tables
    end up exactly as if the batch's events had been recorded one by one in its order: every
    complaint's new events are applied in order to its facts in memory, and the counter changes
    of every step are summed per row (`aggregates.DeltaSum`). Round trips on PostgreSQL: one
    insert of the events, one statement locking and loading every touched complaint, one for
    the complaint updates and all counter upserts, the commit.
    """
    with uow_factory() as uow:
        conn = uow.session.connection()
        new = _insert_events(conn, batch)
        if not new:
            return 0
        _apply_many(conn, [(e.event_type, e.data) for e in new])
        uow.commit()
    return len(new)


_STATEMENTS: dict = {}
_FACT_COLUMNS = tuple(c.name for c in complaints.columns if c.name != "complaint_id")


def _statement(conn, name: str):
    """The event path's statements, built once per dialect (no per-event SQL construction)."""
    key = (conn.dialect.name, name)
    stmt = _STATEMENTS.get(key)
    if stmt is not None:
        return stmt
    if name == "events":
        # Executed with the batch's parameter list: SQLAlchemy sends one multi-row INSERT
        # ("insertmanyvalues"); RETURNING names the rows actually inserted (the new events).
        stmt = rollups.dialect_insert(conn.dialect.name, events).on_conflict_do_nothing(
        ).returning(events.c.event_id)
    elif name == "lock_complaints":
        # Create-or-lock in one statement for the whole batch (parameter list, one multi-row
        # upsert): the upsert takes the row locks (so concurrent transactions on a complaint
        # serialise on it) and returns the current facts.
        ins = rollups.dialect_insert(conn.dialect.name, complaints).values(
            complaint_id=bindparam("complaint_id"), status="received", status_seq=0)
        stmt = ins.on_conflict_do_update(
            index_elements=["complaint_id"],
            set_={"status_seq": complaints.c.status_seq},
        ).returning(*complaints.c)
    elif name == "update_complaint":
        stmt = complaints.update().where(
            complaints.c.complaint_id == bindparam("b_complaint_id")
        ).values({c: bindparam(c) for c in _FACT_COLUMNS})
    _STATEMENTS[key] = stmt
    return stmt


def _insert_events(conn, batch: Sequence[Event]) -> list[Event]:
    """Insert the batch's events; the new ones, in batch order (first of any repeats)."""
    unique: dict[str, Event] = {}
    for event in batch:
        unique.setdefault(event.event_id, event)
    if not unique:
        return []
    recorded_at = utcnow()
    ordered = sorted(unique.values(), key=lambda e: e.event_id)  # lock order
    if conn.dialect.name == "postgresql":
        # One statement, the rows as one array per column (no per-row SQLAlchemy parameter
        # processing); the data stored as the JSON type would store it (json.dumps).
        inserted = set(conn.exec_driver_sql(_pg_sql("events"), {
            "event_id": [e.event_id for e in ordered],
            "event_type": [e.event_type for e in ordered],
            "version": [e.version for e in ordered],
            "producer": [e.producer for e in ordered],
            "correlation_id": [e.correlation_id for e in ordered],
            "occurred_at": [_aware(e.occurred_at) for e in ordered],
            "data": [json.dumps(_stored_data(e)) for e in ordered],
            "recorded_at": recorded_at,
        }).scalars())
    else:
        params = [{
            "event_id": event.event_id,
            "event_type": event.event_type,
            "version": event.version,
            "producer": event.producer,
            "correlation_id": event.correlation_id,
            "occurred_at": event.occurred_at,
            "data": _stored_data(event),
            "recorded_at": recorded_at,
        } for event in ordered]
        inserted = set(conn.execute(_statement(conn, "events"), _one_or_many(params)).scalars())
    return [event for event in unique.values() if event.event_id in inserted]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:  # as UTCDateTime refuses it
        raise ValueError("naive datetime given to a UTCDateTime column")
    return value


def _pg_sql(name: str) -> str:
    """PostgreSQL's text of the event path's first two statements, built once."""
    sql = _STATEMENTS.get(("pg-sql", name))
    if sql is not None:
        return sql
    if name == "events":
        arrays = ", ".join(f"CAST(%({c})s AS {t}[])" for c, t in (
            ("event_id", "varchar"), ("event_type", "varchar"), ("version", "integer"),
            ("producer", "varchar"), ("correlation_id", "varchar"),
            ("occurred_at", "timestamptz"), ("data", "json")))
        sql = ("INSERT INTO events (event_id, event_type, version, producer, correlation_id, "
               f"occurred_at, data, recorded_at) SELECT u.*, %(recorded_at)s FROM "
               f"unnest({arrays}) AS u ON CONFLICT DO NOTHING RETURNING event_id")
    else:  # lock_complaints: as its SQLAlchemy statement, the columns' defaults included
        defaults = {c.name: c.default.arg for c in complaints.columns
                    if c.default is not None and c.default.is_scalar}
        defaults.update(status="received", status_seq=0)
        names = ", ".join(defaults)
        values = ", ".join(str(v).lower() if isinstance(v, bool) else repr(v)
                           for v in defaults.values())
        sql = (f"INSERT INTO {complaints.name} (complaint_id, {names}) "
               f"SELECT id, {values} FROM unnest(CAST(%(ids)s AS varchar[])) AS id "
               "ON CONFLICT (complaint_id) DO UPDATE SET status_seq = "
               f"{complaints.name}.status_seq RETURNING "
               + ", ".join(c.name for c in complaints.columns))
    _STATEMENTS[("pg-sql", name)] = sql
    return sql


_DUMPERS: dict = {}


def _stored_data(event: Event) -> dict:
    """What the events table keeps of the event's data: event_schema(type).dump(data), through
    the contracts' compiled dumper (the same dict, key order included, without marshmallow's
    per-field calls) unless it hands the data back to marshmallow."""
    try:
        dumper = _DUMPERS[event.event_type]
    except KeyError:
        dumper = _DUMPERS[event.event_type] = fastpath.compile_dumper(
            event_schema(event.event_type))
    if dumper is not None:
        dumped = dumper(event.data)
        if dumped is not fastpath.BAIL:
            return dumped
    return event_schema(event.event_type).dump(event.data)


def _one_or_many(params: list[dict]):
    # One row: a plain execute (the multi-row "insertmanyvalues" path costs more Python).
    return params[0] if len(params) == 1 else params


def _apply_many(conn, changes: Sequence[tuple[str, dict]]) -> None:
    """Apply (event type, loaded data) pairs, in order, to the complaints and counter tables."""
    by_complaint: dict[str, list] = {}
    for event_type, data in changes:
        if event_type not in NON_COMPLAINT_EVENTS:
            by_complaint.setdefault(str(data["complaint_id"]), []).append((event_type, data))
    if not by_complaint:
        return
    ids = sorted(by_complaint)  # lock order
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(_pg_sql("lock_complaints"), {"ids": ids}).mappings()
    else:
        rows = conn.execute(_statement(conn, "lock_complaints"),
                            _one_or_many([{"complaint_id": i} for i in ids])).mappings()
    current = {row["complaint_id"]: dict(row) for row in rows}
    holidays = load_holidays()
    total = aggregates.DeltaSum()
    updates = []
    for complaint_id in ids:
        facts = current[complaint_id]
        shard = shard_of(complaint_id)
        before = contribution(facts, holidays)
        for event_type, data in by_complaint[complaint_id]:
            facts = project(facts, event_type, data)
            after = contribution(facts, holidays)
            total.add(before, after, shard)
            before = after
        updates.append({c: facts.get(c) for c in _FACT_COLUMNS} | {"b_complaint_id": complaint_id})
    rollups.write_batch(conn, _statement(conn, "update_complaint"), updates, total.changes())


def rebuild(uow_factory, batch: int = 1000) -> int:
    """Drop the projections and replay every stored event in the order they happened, `batch`
    events at a time (record_many's path, without storing the events again)."""
    with uow_factory() as uow:
        s = uow.session
        for table in (complaints, *(t for t, _, _ in rollups.TABLES)):
            s.execute(delete(table))
        conn = s.connection()
        count = 0
        chunk: list = []
        result = s.execute(select(events).order_by(events.c.occurred_at, events.c.event_id))
        for row in result.yield_per(batch):
            event = load_event({
                "event_id": row.event_id,
                "event_type": row.event_type,
                "version": row.version,
                "occurred_at": row.occurred_at.isoformat(),
                "correlation_id": row.correlation_id,
                "producer": row.producer,
                "data": row.data,
            })
            chunk.append((event.event_type, event.data))
            if len(chunk) >= batch:
                _apply_many(conn, chunk)
                count += len(chunk)
                chunk = []
        _apply_many(conn, chunk)
        count += len(chunk)
        uow.commit()
    return count


# -- statistics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatsQuery:
    """A period (days received, WIB, inclusive) and filters; None means "all"."""

    date_from: date | None = None
    date_to: date | None = None
    filters: dict[str, str] = field(default_factory=dict)  # DIMENSIONS -> value
    trend: str = "month"  # week | month


def _label(value: str) -> str:
    return value if value else "unrouted"


@dataclass
class Cube:
    """What every statistic is computed from, whichever tables it was read from."""

    days: dict  # day -> [COUNTER_COLUMNS sums]
    dims: dict  # dimension -> value -> [UNIT_SLA_COLUMNS sums]
    histograms: dict  # measure -> working days -> complaints

    @classmethod
    def empty(cls) -> "Cube":
        return cls({}, {d: {} for d in DIMENSIONS}, {m: {} for m in MEASURES})

    def add_dim(self, dim: str, value: str, sums) -> None:
        row = self.dims[dim].get(value)
        if row is None:
            self.dims[dim][value] = [int(v or 0) for v in sums]
        else:
            for i, v in enumerate(sums):
                row[i] += int(v or 0)

    def add_histogram(self, measure: str, days: int, n) -> None:
        h = self.histograms[measure]
        h[int(days)] = h.get(int(days), 0) + int(n or 0)


def _months_and_ends(query: StatsQuery):
    """Split the period into whole months (read from the monthly roll-ups) and the days of the
    partial months at its ends (read from the daily cube): (first month, last month or None
    when there is no whole month, [(first day, last day)])."""
    lo, hi = query.date_from, query.date_to
    first = None if lo is None else (lo if lo.day == 1 else aggregates.next_month(lo))
    last_day = None if hi is None else (
        hi if aggregates.next_month(hi) == hi + timedelta(days=1)
        else aggregates.month_of(hi) - timedelta(days=1))
    if first is not None and last_day is not None and first > last_day:
        return None, None, [(lo, hi)]
    ends = []
    if first is not None and lo < first:
        ends.append((lo, first - timedelta(days=1)))
    if last_day is not None and hi > last_day:
        ends.append((last_day + timedelta(days=1), hi))
    return first, None if last_day is None else aggregates.month_of(last_day), ends


def _widen_to_data(session, query: StatsQuery, first, last, ends):
    """A partial month with no complaints outside the period counts as whole: "the last 365
    days" up to today reads this month from the monthly roll-ups, not from the cube. The first
    and last days with any row bound the data (one index probe each)."""
    rd = rollup_days
    lo_data, hi_data = session.execute(
        select(func.min(rd.c.day), func.max(rd.c.day)).where(rd.c.filter_dim == "",
                                                             rd.c.filter_value == "")).one()
    if lo_data is None:
        return first, last, []
    kept = []
    no_months = first is None and last is None and None not in (query.date_from, query.date_to)
    for lo, hi in ends:
        month = aggregates.month_of(lo)
        whole = (month == aggregates.month_of(hi)
                 and (lo.day == 1 or lo <= lo_data)
                 and (aggregates.next_month(hi) == hi + timedelta(days=1) or hi >= hi_data))
        if not whole:
            kept.append((lo, hi))
        elif no_months:
            first = last = month
            no_months = False
        elif lo == query.date_from:
            first = month  # the month just before the whole months
        else:
            last = month  # the month just after them
    return first, last, kept


def _period(column, lo, hi):
    clauses = []
    if lo is not None:
        clauses.append(column >= lo)
    if hi is not None:
        clauses.append(column <= hi)
    return clauses


def _filters(table, filters):
    return [table.c[dim] == value for dim, value in filters.items()]


def _by_each_dimension(session, where) -> list:
    """Per value of each dimension, the UNIT_SLA_COLUMNS sums over daily_stats rows matching
    `where`: one pass with GROUPING SETS on PostgreSQL, a UNION ALL elsewhere (SQLite). Each
    row has exactly one dimension set (key columns are never NULL, so NULL marks the others)."""
    sums = [func.sum(daily_stats.c[c]).label(c) for c in UNIT_SLA_COLUMNS]
    if session.get_bind().dialect.name == "postgresql":
        dims = [daily_stats.c[d] for d in DIMENSIONS]
        return session.execute(
            select(*dims, *sums).where(*where)
            .group_by(func.grouping_sets(*(tuple_(d) for d in dims)))
        ).all()
    parts = [
        select(*(daily_stats.c[d] if d == dim else literal_column("NULL").label(d)
                 for d in DIMENSIONS), *sums).where(*where).group_by(daily_stats.c[dim])
        for dim in DIMENSIONS
    ]
    return session.execute(union_all(*parts)).all()


def _add_fine_dims(cube: Cube, rows) -> None:
    for row in rows:
        for i, dim in enumerate(DIMENSIONS):
            if row[i] is not None:
                cube.add_dim(dim, row[i], row[len(DIMENSIONS):])
                break


def _read_rollups(session, query: StatsQuery, cube: Cube) -> None:
    """The roll-ups of the query's filter set, plus the daily cube for the partial months at
    the ends of the period."""
    fdim, fvalue = aggregates.rollup_filter(query.filters)
    first, last, ends = _months_and_ends(query)
    if ends:
        first, last, ends = _widen_to_data(session, query, first, last, ends)
    # Totals, trend and backlog: per day received, exact for any period.
    for day, *sums in session.execute(
        select(rollup_days.c.day, *(func.sum(rollup_days.c[c]) for c in COUNTER_COLUMNS))
        .where(rollup_days.c.filter_dim == fdim, rollup_days.c.filter_value == fvalue,
               *_period(rollup_days.c.day, query.date_from, query.date_to))
        .group_by(rollup_days.c.day)
    ):
        cube.days[day] = [int(v or 0) for v in sums]
    if first is not None or last is not None or not ends:
        months = (rollup_months.c.filter_dim == fdim, rollup_months.c.filter_value == fvalue,
                  *_period(rollup_months.c.month, first, last))
        for dim, value, *sums in session.execute(
            select(rollup_months.c.dim, rollup_months.c.value,
                   *(func.sum(rollup_months.c[c]) for c in UNIT_SLA_COLUMNS))
            .where(*months).group_by(rollup_months.c.dim, rollup_months.c.value)
        ):
            cube.add_dim(dim, value, sums)
        rd = rollup_durations
        for measure, days, n in session.execute(
            select(rd.c.measure, rd.c.working_days, func.sum(rd.c.n))
            .where(rd.c.filter_dim == fdim, rd.c.filter_value == fvalue,
                   *_period(rd.c.month, first, last))
            .group_by(rd.c.measure, rd.c.working_days)
        ):
            cube.add_histogram(measure, days, n)
    if ends:
        filters = _filters(daily_stats, query.filters)
        in_ends = or_(*(and_(*_period(daily_stats.c.day, lo, hi)) for lo, hi in ends))
        _add_fine_dims(cube, _by_each_dimension(session, [in_ends, *filters]))
        ds = duration_stats
        in_ends = or_(*(and_(*_period(ds.c.day, lo, hi)) for lo, hi in ends))
        for measure, days, n in session.execute(
            select(ds.c.measure, ds.c.working_days, func.sum(ds.c.n))
            .where(in_ends, *_filters(ds, query.filters))
            .group_by(ds.c.measure, ds.c.working_days)
        ):
            cube.add_histogram(measure, days, n)
    # The filter's own dimensions have no roll-up rows: they are the filter values, with the
    # totals.
    if query.filters:
        total = [sum(day[COUNTER_COLUMNS.index(c)] for day in cube.days.values())
                 for c in UNIT_SLA_COLUMNS]
        for dim, value in query.filters.items():
            cube.dims[dim] = {value: list(total)}


def _read_cube(session, query: StatsQuery, cube: Cube) -> None:
    """Filters with no roll-up (a unit or a kecamatan with other filters): the daily cube
    itself, through its unit or kecamatan index, so only that unit's or kecamatan's rows."""
    if session.get_bind().dialect.name == "postgresql":
        # Larger scans cross jit_above_cost; compiling would cost more than it saves.
        session.execute(text("SET LOCAL jit = off"))
    where = [*_period(daily_stats.c.day, query.date_from, query.date_to),
             *_filters(daily_stats, query.filters)]
    for day, *sums in session.execute(
        select(daily_stats.c.day, *(func.sum(daily_stats.c[c]) for c in COUNTER_COLUMNS))
        .where(*where).group_by(daily_stats.c.day)
    ):
        cube.days[day] = [int(v or 0) for v in sums]
    _add_fine_dims(cube, _by_each_dimension(session, where))
    ds = duration_stats
    for measure, days, n in session.execute(
        select(ds.c.measure, ds.c.working_days, func.sum(ds.c.n))
        .where(*_period(ds.c.day, query.date_from, query.date_to), *_filters(ds, query.filters))
        .group_by(ds.c.measure, ds.c.working_days)
    ):
        cube.add_histogram(measure, days, n)


def plan(query: StatsQuery) -> str:
    """'rollups' (no filter, one, or a combination with roll-up rows) or 'cube'."""
    return "cube" if aggregates.rollup_filter(query.filters) is None else "rollups"


def stats(session, query: StatsQuery | None = None, today: date | None = None,
          source: str | None = None) -> dict:
    """Statistics for a period and filters from the counter tables (never the complaints).

    `source` forces a plan ('rollups' or 'cube'; tests compare them)."""
    query = query or StatsQuery()
    cube = Cube.empty()
    if (source or plan(query)) == "rollups":
        _read_rollups(session, query, cube)
    else:
        _read_cube(session, query, cube)
    return summarise(cube, query, today or date.today())


def summarise(cube: Cube, query: StatsQuery, today: date) -> dict:
    by_day = sorted((day, sums) for day, sums in cube.days.items() if any(sums))
    total = dict.fromkeys(COUNTER_COLUMNS, 0)
    for _day, sums in by_day:
        for column, v in zip(COUNTER_COLUMNS, sums, strict=True):
            total[column] += v
    result: dict = {
        "period": {
            "from": query.date_from.isoformat() if query.date_from else None,
            "to": query.date_to.isoformat() if query.date_to else None,
        },
        "filters": dict(query.filters),
        "total": total["complaints"],
        "by_status": {
            s: total[STATUS_COLUMNS[s]] for s in STATUSES if total[STATUS_COLUMNS[s]]
        },
    }
    units = {}
    for value, sums in cube.dims["unit_code"].items():
        if sums[0]:
            label = _label(value)
            c = units.setdefault(label, dict.fromkeys(UNIT_SLA_COLUMNS, 0))
            for column, v in zip(UNIT_SLA_COLUMNS, sums, strict=True):
                c[column] += v
    for name, dim in (("by_unit", "unit_code"), ("by_kecamatan", "kecamatan_code"),
                      ("by_channel", "channel"), ("by_category", "category"),
                      ("by_confidentiality", "confidentiality")):
        counts: dict[str, int] = {}
        for value, sums in cube.dims[dim].items():
            if sums[0]:
                label = _label(value) if dim == "unit_code" else (value or "unknown")
                counts[label] = counts.get(label, 0) + sums[0]
        result[name] = dict(sorted(counts.items()))

    # Backlog: open complaints and how long they have waited (working days since received).
    holidays = load_holidays()
    open_columns = [COUNTER_COLUMNS.index(STATUS_COLUMNS[s]) for s in OPEN_STATUSES]
    done_columns = [COUNTER_COLUMNS.index(c) for c in ("st_resolved", "st_closed")]
    ages = {}
    trend: dict[str, dict] = {}
    age_of = _ages([day for day, _ in by_day], today, holidays)
    for day, sums in by_day:
        open_n = sum(sums[i] for i in open_columns)
        if open_n:
            age = max(0, age_of[day])
            ages[age] = ages.get(age, 0) + open_n
        bucket = trend.setdefault(
            aggregates.bucket_of(day, query.trend), {"received": 0, "open": 0, "done": 0}
        )
        bucket["received"] += sums[0]
        bucket["open"] += open_n
        bucket["done"] += sum(sums[i] for i in done_columns)
    result["backlog"] = {
        "open": sum(ages.values()),
        "median_age_working_days": aggregates.percentile(ages, 0.5),
        "p90_age_working_days": aggregates.percentile(ages, 0.9),
        "oldest_age_working_days": max(ages) if ages else None,
        "over_5_working_days": sum(n for age, n in ages.items() if age > 5),
    }
    histograms = {m: {d: n for d, n in h.items() if n} for m, h in cube.histograms.items()}
    result["working_days"] = {
        m: {
            "count": sum(h.values()),
            "median": aggregates.percentile(h, 0.5),
            "p90": aggregates.percentile(h, 0.9),
        }
        for m, h in histograms.items()
    }

    result["sla"] = _sla(total)
    result["sla_by_unit"] = {
        unit: {"complaints": c["complaints"], **_sla(c)} for unit, c in sorted(units.items())
    }
    result["returned"] = total["returned"]
    result["rerouted"] = total["rerouted"]
    result["reopened"] = total["reopened"]
    rated = total["rated"]
    result["satisfaction"] = {
        "rated": rated,
        "average": round(total["rating_sum"] / rated, 2) if rated else None,
        "by_rating": {str(n): total[f"rating_{n}"] for n in range(1, 6)},
    }
    result["notifications"] = {
        "sent": total["notifications_sent"], "failed": total["notifications_failed"],
    }
    result["trend"] = {"period": query.trend, "buckets": trend}
    return result


def _ages(days: list[date], today: date, holidays) -> dict[date, int]:
    """working_days_in(day, today) for sorted `days`: one calendar walk instead of one count per
    day (two years of days: ~730 counts)."""
    if not days:
        return {}
    ages, day = {}, days[0]
    age = working_days_in(day, today, holidays)
    wanted = set(days)
    while True:
        if day in wanted:
            ages[day] = age
        if day >= days[-1]:
            return ages
        day += timedelta(days=1)
        if is_working_day(day, holidays):
            age -= 1


def _sla(c: dict) -> dict:
    decided = c["sla_met"] + c["sla_missed"]
    return {
        "met": c["sla_met"],
        "missed": c["sla_missed"],
        "warned": c["sla_warned"],
        "compliance": round(c["sla_met"] / decided, 4) if decided else None,
    }


def open_complaints(session, query: StatsQuery, limit: int = 50) -> list[dict]:
    """The oldest open complaints in scope (staff dashboard; no complaint text, no names)."""
    stmt = select(
        complaints.c.tracking_code, complaints.c.unit_code, complaints.c.category,
        complaints.c.channel, complaints.c.status, complaints.c.received_at, complaints.c.due_at,
        complaints.c.sla_breached,
    ).where(complaints.c.status.in_(OPEN_STATUSES), complaints.c.received_at.is_not(None))
    for dim, value in query.filters.items():
        stmt = stmt.where(complaints.c[dim] == value)
    if query.date_from is not None:
        stmt = stmt.where(complaints.c.received_at >= _day_start(query.date_from))
    return [dict(r) for r in session.execute(
        stmt.order_by(complaints.c.received_at).limit(limit)).mappings()]


def _day_start(day: date) -> datetime:
    from shared.workdays import WIB

    return datetime.combine(day, datetime.min.time(), tzinfo=WIB)
