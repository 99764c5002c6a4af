"""`dumas reporting ...`: rebuild the read model, write the monthly recap, load synthetic data
and measure the statistics query."""

import statistics
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine, pool
from sqlalchemy.orm import sessionmaker

from services.reporting import exports, handlers, rollups
from services.reporting.db import KEY_COLUMNS, complaints, daily_stats, duration_stats
from services.reporting.domain.aggregates import COUNTER_COLUMNS, STATUS_COLUMNS, contribution
from services.reporting.domain.generator import stories
from services.reporting.domain.projection import project
from shared.db import UnitOfWork, make_engine
from shared.workdays import load_holidays


def _factory(url):
    engine = make_engine(url, poolclass=pool.NullPool)
    return engine, sessionmaker(engine, expire_on_commit=False)


def rebuild(url: str) -> int:
    engine, factory = _factory(url)
    try:
        return handlers.rebuild(lambda: UnitOfWork(factory, None, None))
    finally:
        engine.dispose()


def monthly(url: str, month: str, out: Path, unit: str | None = None) -> dict:
    """Write "Laporan Bulanan Dumas" for `month` (YYYY-MM) to `out`; returns the statistics."""
    first = date.fromisoformat(f"{month}-01")
    last = date(first.year + (first.month == 12), first.month % 12 + 1, 1).toordinal() - 1
    query = handlers.StatsQuery(first, date.fromordinal(last),
                                {"unit_code": unit} if unit else {}, "week")
    engine, factory = _factory(url)
    try:
        with factory() as session:
            stats = handlers.stats(session, query)
    finally:
        engine.dispose()
    out.write_bytes(exports.monthly_pdf(stats, first, scope=unit or "Semua unit"))
    return stats


def load_synthetic(url: str, n: int, seed: int = 2026, days: int = 730, batch: int = 20_000,
                   progress=None) -> int:
    """Fill the projection and counter tables with `n` generated complaints (bulk inserts; the
    event store is left alone, so this is for benchmarks and demos, not for real databases)."""
    holidays = load_holidays()
    counters: dict[tuple, dict[str, int]] = {}
    durations: dict[tuple, int] = {}
    engine, factory = _factory(url)
    rows = []
    try:
        with factory() as session:
            for i, story in enumerate(stories(n, seed=seed, days=days), 1):
                facts = None
                for event_type, data in story:
                    facts = project(facts, event_type, data)
                rows.append(facts)
                part = contribution(facts, holidays)
                bucket = counters.get(part.key)
                if bucket is None:
                    bucket = counters[part.key] = dict.fromkeys(COUNTER_COLUMNS, 0)
                for column, value in part.counters.items():
                    if value:
                        bucket[column] += value
                for measure, wd in part.durations:
                    k = (*part.key, measure, wd)
                    durations[k] = durations.get(k, 0) + 1
                if len(rows) >= batch:
                    _insert_facts(session, rows)
                    rows = []
                    if progress:
                        progress(i)
            if rows:
                _insert_facts(session, rows)
            session.execute(daily_stats.insert(), [
                {**dict(zip(KEY_COLUMNS, k, strict=True)), **v} for k, v in counters.items()])
            session.execute(duration_stats.insert(), [
                {**dict(zip(KEY_COLUMNS, k[:-2], strict=True)), "measure": k[-2],
                 "working_days": k[-1], "n": v} for k, v in durations.items()])
            rollups.refresh(session.connection())
            session.commit()
    finally:
        engine.dispose()
    return len(counters)


def _insert_facts(session, rows):
    columns = {c.name for c in complaints.columns}
    session.execute(complaints.insert(), [
        {k: (str(v) if k == "complaint_id" else v) for k, v in r.items() if k in columns}
        | {c: r.get(c) for c in columns if c not in r}
        for r in rows
    ])


def _weighted(expr: str, weights: dict[str, int]) -> str:
    """SQL CASE picking a key of `weights` from `expr` (an integer 0..99)."""
    total, parts = 0, []
    for key, weight in weights.items():
        total += weight
        parts.append(f"WHEN {expr} < {total} THEN '{key}'")
    return f"(CASE {' '.join(parts[:-1])} ELSE '{key}' END)"


def _percent(salt: int) -> str:
    # hashint4 spreads consecutive numbers: independent-looking dimensions, deterministic.
    return f"((hashint4(g + {salt}) & 2147483647) % 100)"


def generate(url: str, n: int, units: int = 1000, days: int = 730, facts: bool = True) -> dict:
    """Fill an empty, migrated PostgreSQL reporting database with `n` complaints, server-side
    (INSERT ... SELECT generate_series): complaints over `units` units and the last `days` days,
    with the office's channel / category / confidentiality mix drawn independently per complaint
    (so the daily cube holds about one row per complaint, the hard case); the daily cube with one
    GROUP BY per table, then the roll-ups (`rollups.refresh`), then VACUUM ANALYZE.

    `facts=False` skips the complaint_facts rows (statistics never read them; the cube is then
    aggregated from the generated complaints directly), which halves the load time.
    For benchmarks and demos only: the event store is left empty, working days are approximated
    by 5/7 of calendar days.
    """
    from sqlalchemy import text

    from services.reporting.domain.generator import (
        CATEGORY_WEIGHTS,
        CHANNEL_WEIGHTS,
        CONFIDENTIALITY_WEIGHTS,
    )

    statuses = {"routed": 8, "acknowledged": 10, "in_progress": 5, "info_requested": 2,
                "responded": 10, "resolved": 45, "closed": 20}
    received = f"(date_trunc('day', now()) - ((hashint4(g) & 2147483647) % {days * 1440}) " \
               "* interval '1 minute')"
    wait = "(1 + (hashint4(g + 5) & 2147483647) % 12)"
    values = {
        "complaint_id": "md5(g::text)",
        "tracking_code": "'DMS-' || lpad(g::text, 12, '0')",
        "channel": _weighted(_percent(1), CHANNEL_WEIGHTS),
        "category": _weighted(_percent(2), CATEGORY_WEIGHTS),
        "kecamatan_code": f"'17.' || lpad(((g % {units}) / 10)::text, 3, '0') || '.01'",
        "confidentiality": _weighted(_percent(3), CONFIDENTIALITY_WEIGHTS),
        "status": _weighted(_percent(4), statuses),
        "status_seq": "3",
        "unit_code": f"'unit-' || (g % {units})",
        "rule": "'generated'",
        "received_at": received,
        "routed_at": f"{received} + interval '1 second'",
        "last_routed_at": f"{received} + interval '1 second'",
        "due_at": f"{received} + interval '7 days'",
        "first_response_at": f"CASE WHEN {_percent(4)} >= 8 THEN {received} + {wait} * "
                             "interval '1 day' END",
        "resolved_at": f"CASE WHEN {_percent(4)} >= 35 THEN {received} + ({wait} + "
                       f"{_percent(6)} % 20) * interval '1 day' END",
        "unit_notified_at": f"{received} + interval '2 second'",
        "notifications_sent": "2",
        "notifications_failed": "(g % 50 = 0)::int",
        "returned_count": f"({_percent(7)} < 5)::int",
        "reroute_count": f"({_percent(7)} < 5)::int",
        "rating": f"CASE WHEN {_percent(4)} >= 35 AND {_percent(8)} < 40 THEN "
                  f"1 + {_percent(9)} % 5 END",
    }
    started = time.perf_counter()
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            generated = (f"SELECT {', '.join(f'{v} AS {k}' for k, v in values.items())} "
                         f"FROM generate_series(1, {n}) AS g")
            if facts:
                conn.execute(text(f"INSERT INTO complaint_facts ({', '.join(values)}) "
                                  f"{generated}"))
                source = "complaint_facts"
            else:
                conn.execute(text(f"CREATE TEMPORARY TABLE generated ON COMMIT DROP AS "
                                  f"{generated}"))
                source = "generated"
            day = "(received_at AT TIME ZONE 'Asia/Jakarta')::date"
            keys = ", ".join(KEY_COLUMNS[1:])
            counters = dict.fromkeys(COUNTER_COLUMNS, "0")
            counters["complaints"] = "count(*)"
            for status, column in STATUS_COLUMNS.items():
                counters[column] = f"count(*) FILTER (WHERE status = '{status}')"
            counters["sla_met"] = "count(*) FILTER (WHERE first_response_at <= due_at)"
            counters["sla_missed"] = "count(*) FILTER (WHERE first_response_at > due_at)"
            counters["returned"] = "sum(returned_count)"
            counters["rerouted"] = "sum(reroute_count)"
            counters["rated"] = "count(rating)"
            counters["rating_sum"] = "coalesce(sum(rating), 0)"
            for r in range(1, 6):
                counters[f"rating_{r}"] = f"count(*) FILTER (WHERE rating = {r})"
            counters["notifications_sent"] = "sum(notifications_sent)"
            counters["notifications_failed"] = "sum(notifications_failed)"
            conn.execute(text(
                f"INSERT INTO daily_stats (day, {keys}, {', '.join(counters)}) "
                f"SELECT {day}, {keys}, {', '.join(counters.values())} FROM {source} "
                f"GROUP BY {day}, {keys}"))
            for measure, end in (("first_response", "first_response_at"),
                                 ("resolution", "resolved_at")):
                conn.execute(text(
                    f"INSERT INTO duration_stats (day, {keys}, measure, working_days, n) "
                    f"SELECT {day}, {keys}, '{measure}', "
                    f"(({end}::date - received_at::date) * 5 / 7), count(*) "
                    f"FROM {source} WHERE {end} IS NOT NULL "
                    f"GROUP BY {day}, {keys}, 8"))
            loaded = time.perf_counter()
            rollups.refresh(conn)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            rows = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                    for t in ("daily_stats", "duration_stats", "rollup_days", "rollup_months",
                              "rollup_durations")}
    finally:
        engine.dispose()
    return {"complaints": n, "facts": facts, "rows": rows,
            "load_seconds": round(loaded - started, 1),
            "rollup_seconds": round(time.perf_counter() - loaded, 1)}


def generate_into_empty(url: str, n: int) -> dict:
    """`generate`, refusing a database that already holds statistics or is not PostgreSQL."""
    from sqlalchemy import text

    if not url.startswith("postgresql"):
        raise ValueError("--generate needs a PostgreSQL reporting database")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            if conn.execute(text("SELECT EXISTS (SELECT 1 FROM daily_stats)")).scalar():
                raise ValueError("the reporting database is not empty; use a fresh one")
    finally:
        engine.dispose()
    return generate(url, n, facts=True)


def bench_cases(today: date, units: int = 1000) -> dict[str, handlers.StatsQuery]:
    """Typical questions over the generated data (`generate`): periods and filters."""
    Q = handlers.StatsQuery
    month = today.replace(day=1)
    prev_first = (month - timedelta(days=1)).replace(day=1)
    year = date(today.year - 1, 1, 1)
    unit = f"unit-{units // 2 + 7}"
    return {
        "all time, no filter": Q(),
        "last calendar year": Q(year, date(today.year - 1, 12, 31)),
        "last full month": Q(prev_first, month - timedelta(days=1), {}, "week"),
        "365 days to today (partial months)": Q(today - timedelta(days=365), today),
        "all time, unit": Q(filters={"unit_code": unit}),
        "all time, kecamatan": Q(filters={"kecamatan_code": "17.050.01"}),
        "all time, channel": Q(filters={"channel": "web"}),
        "all time, category": Q(filters={"category": "nikah_rujuk"}),
        "all time, confidentiality": Q(filters={"confidentiality": "public"}),
        "365 days, channel (partial months)": Q(today - timedelta(days=365), today,
                                                {"channel": "whatsapp"}),
        "unit + category, last 30 days": Q(today - timedelta(days=30), today,
                                           {"unit_code": unit, "category": "nikah_rujuk"}),
        "channel + confidentiality": Q(filters={"channel": "web",
                                                "confidentiality": "public"}),
        "channel + category + confidentiality": Q(filters={
            "channel": "qr", "category": "nikah_rujuk", "confidentiality": "public"}),
        "kecamatan + channel, last full month": Q(prev_first, month - timedelta(days=1), {
            "kecamatan_code": "17.050.01", "channel": "web"}),
        "all five filters": Q(filters={"unit_code": unit, "kecamatan_code": "17.050.01",
                                       "channel": "web", "category": "nikah_rujuk",
                                       "confidentiality": "public"}),
    }


def bench(url: str, repeat: int = 15, cases: dict | None = None) -> dict[str, dict]:
    """Milliseconds of `handlers.stats` per case: cold (first call, on a new connection, with
    PostgreSQL's buffers as the load left them) and warm p50 / p95 over `repeat` calls."""
    engine, factory = _factory(url)
    today = date.today()
    out = {}
    try:
        for name, query in (cases or bench_cases(today)).items():
            with factory() as session:
                started = time.perf_counter()
                result = handlers.stats(session, query, today=today)
                cold = (time.perf_counter() - started) * 1000
                session.rollback()
                timings = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    handlers.stats(session, query, today=today)
                    timings.append((time.perf_counter() - started) * 1000)
                    session.rollback()
            timings.sort()
            out[name] = {
                "plan": handlers.plan(query),
                "cold_ms": round(cold, 1),
                "p50_ms": round(statistics.median(timings), 1),
                "p95_ms": round(timings[min(len(timings) - 1, int(0.95 * len(timings)))], 1),
                "total": result["total"],
            }
    finally:
        engine.dispose()
    return out
