"""`dumas reporting ...`: rebuild the read model, write the monthly recap, load synthetic data
and measure the statistics query."""

import statistics
import time
from datetime import date
from pathlib import Path

from sqlalchemy import pool
from sqlalchemy.orm import sessionmaker

from services.reporting import exports, handlers
from services.reporting.db import KEY_COLUMNS, complaints, daily_stats, duration_stats
from services.reporting.domain.aggregates import COUNTER_COLUMNS, contribution
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


def bench(url: str, repeat: int = 7) -> dict[str, float]:
    """Median milliseconds of the statistics query: whole history, one year, one unit-month."""
    engine, factory = _factory(url)
    cases = {
        "all_time": handlers.StatsQuery(),
        "one_year": handlers.StatsQuery(date(2026, 1, 1), date(2026, 12, 31)),
        "unit_month": handlers.StatsQuery(date(2026, 11, 1), date(2026, 11, 30),
                                          {"unit_code": "kua-05"}, "week"),
        "category_filter": handlers.StatsQuery(filters={"category": "integritas"}),
    }
    out = {}
    try:
        with factory() as session:
            for name, query in cases.items():
                timings = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    handlers.stats(session, query)
                    timings.append((time.perf_counter() - started) * 1000)
                out[name] = round(statistics.median(timings), 1)
    finally:
        engine.dispose()
    return out
