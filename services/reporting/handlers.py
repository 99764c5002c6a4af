"""reporting's use cases: record every event once, keep the projection and its counter tables,
answer statistics from the counter tables."""

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import delete, func, select

from services.reporting.db import (
    KEY_COLUMNS,
    complaints,
    daily_stats,
    duration_stats,
    events,
)
from services.reporting.domain import aggregates
from services.reporting.domain.aggregates import (
    COUNTER_COLUMNS,
    DIMENSIONS,
    MEASURES,
    OPEN_STATUSES,
    STATUS_COLUMNS,
    contribution,
)
from services.reporting.domain.projection import NON_COMPLAINT_EVENTS, project
from shared.catalogue import STATUSES
from shared.contracts import Event, event_schema, load_event
from shared.db import dialect_insert, utcnow
from shared.workdays import load_holidays, working_days_in


def record(uow_factory, event: Event) -> bool:
    """Store the event and apply it to the projection in one transaction; False if seen before."""
    with uow_factory() as uow:
        s = uow.session
        inserted = s.execute(
            dialect_insert(s, events)
            .values(
                event_id=event.event_id,
                event_type=event.event_type,
                version=event.version,
                producer=event.producer,
                correlation_id=event.correlation_id,
                occurred_at=event.occurred_at,
                data=event_schema(event.event_type).dump(event.data),
                recorded_at=utcnow(),
            )
            .on_conflict_do_nothing()
        ).rowcount
        if not inserted:
            return False
        _apply(s, event.event_type, event.data)
        uow.commit()
    return True


def _apply(session, event_type: str, data: dict) -> None:
    if event_type in NON_COMPLAINT_EVENTS:
        return
    complaint_id = str(data["complaint_id"])
    # Create-then-lock: concurrent events of one complaint serialise on its row (PostgreSQL).
    session.execute(
        dialect_insert(session, complaints)
        .values(complaint_id=complaint_id, status="received", status_seq=0)
        .on_conflict_do_nothing()
    )
    current = dict(
        session.execute(
            select(complaints).where(complaints.c.complaint_id == complaint_id).with_for_update()
        ).one()._mapping
    )
    new = project(current, event_type, data)
    session.execute(
        complaints.update().where(complaints.c.complaint_id == complaint_id).values(**new)
    )
    holidays = load_holidays()
    apply_delta(session, contribution(current, holidays), contribution(new, holidays))


def apply_delta(session, before, after) -> None:
    """Move a complaint's contribution in the counter tables (upserts, in key order)."""
    counter_changes, duration_changes = aggregates.delta(before, after)
    for key, changes in counter_changes:
        stmt = dialect_insert(session, daily_stats).values(
            **dict(zip(KEY_COLUMNS, key, strict=True)), **changes
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=list(KEY_COLUMNS),
                set_={c: daily_stats.c[c] + stmt.excluded[c] for c, v in changes.items() if v},
            )
        )
    for key, measure, days, change in duration_changes:
        stmt = dialect_insert(session, duration_stats).values(
            **dict(zip(KEY_COLUMNS, key, strict=True)), measure=measure, working_days=days,
            n=change,
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[*KEY_COLUMNS, "measure", "working_days"],
                set_={"n": duration_stats.c.n + stmt.excluded.n},
            )
        )


def rebuild(uow_factory, batch: int = 1000) -> int:
    """Drop the projections and replay every stored event in the order they happened."""
    with uow_factory() as uow:
        s = uow.session
        s.execute(delete(complaints))
        s.execute(delete(daily_stats))
        s.execute(delete(duration_stats))
        count = 0
        result = s.execute(select(events).order_by(events.c.occurred_at, events.c.event_id))
        for row in result.yield_per(batch):
            envelope = {
                "event_id": row.event_id,
                "event_type": row.event_type,
                "version": row.version,
                "occurred_at": row.occurred_at.isoformat(),
                "correlation_id": row.correlation_id,
                "producer": row.producer,
                "data": row.data,
            }
            event = load_event(envelope)
            _apply(s, event.event_type, event.data)
            count += 1
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


def _where(table, query: StatsQuery):
    clauses = []
    if query.date_from is not None:
        clauses.append(table.c.day >= query.date_from)
    if query.date_to is not None:
        clauses.append(table.c.day <= query.date_to)
    for dim, value in query.filters.items():
        clauses.append(table.c[dim] == value)
    return clauses


def _label(value: str) -> str:
    return value if value else "unrouted"


def stats(session, query: StatsQuery | None = None, today: date | None = None) -> dict:
    """Statistics for a period and filters, from the counter tables only (3 grouped queries)."""
    query = query or StatsQuery()
    where = _where(daily_stats, query)
    sums = [func.coalesce(func.sum(daily_stats.c[c]), 0).label(c) for c in COUNTER_COLUMNS]
    by_dims = session.execute(
        select(*(daily_stats.c[d] for d in DIMENSIONS), *sums).where(*where)
        .group_by(*(daily_stats.c[d] for d in DIMENSIONS))
    ).all()
    open_sum = sum(daily_stats.c[STATUS_COLUMNS[s]] for s in OPEN_STATUSES)
    by_day = session.execute(
        select(daily_stats.c.day, func.sum(daily_stats.c.complaints).label("complaints"),
               func.sum(open_sum).label("open"),
               func.sum(daily_stats.c.st_resolved + daily_stats.c.st_closed).label("done"))
        .where(*where).group_by(daily_stats.c.day).order_by(daily_stats.c.day)
    ).all()
    histogram_rows = session.execute(
        select(duration_stats.c.measure, duration_stats.c.working_days,
               func.sum(duration_stats.c.n))
        .where(*_where(duration_stats, query))
        .group_by(duration_stats.c.measure, duration_stats.c.working_days)
    ).all()
    return summarise(by_dims, by_day, histogram_rows, query, today or date.today())


def summarise(by_dims, by_day, histogram_rows, query: StatsQuery, today: date) -> dict:
    # Plain tuples: one pass over the grouped rows (thousands at most), no per-cell lookups.
    n_dims = len(DIMENSIONS)
    unit_index = DIMENSIONS.index("unit_code")
    complaints_index = COUNTER_COLUMNS.index("complaints")
    per_unit: dict[str, list[int]] = {}
    per_dim: list[dict[str, int]] = [{} for _ in DIMENSIONS]
    for row in by_dims:
        values = row[n_dims:]
        n = int(values[complaints_index] or 0)
        if not n:
            continue
        unit = per_unit.setdefault(_label(row[unit_index]), [0] * len(COUNTER_COLUMNS))
        for i, v in enumerate(values):
            unit[i] += int(v or 0)
        for d in range(n_dims):
            label = _label(row[d]) if d == unit_index else (row[d] or "unknown")
            per_dim[d][label] = per_dim[d].get(label, 0) + n
    total = dict.fromkeys(COUNTER_COLUMNS, 0)
    units = {u: dict(zip(COUNTER_COLUMNS, v, strict=True)) for u, v in per_unit.items()}
    for c in units.values():
        for column, v in c.items():
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
    for name, dim in (("by_unit", "unit_code"), ("by_kecamatan", "kecamatan_code"),
                      ("by_channel", "channel"), ("by_category", "category"),
                      ("by_confidentiality", "confidentiality")):
        result[name] = dict(sorted(per_dim[DIMENSIONS.index(dim)].items()))

    # Backlog: open complaints and how long they have waited (working days since received).
    holidays = load_holidays()
    ages = {}
    for day, _n, open_n, _done in by_day:
        if open_n:
            age = max(0, working_days_in(day, today, holidays))
            ages[age] = ages.get(age, 0) + int(open_n)
    result["backlog"] = {
        "open": sum(ages.values()),
        "median_age_working_days": aggregates.percentile(ages, 0.5),
        "p90_age_working_days": aggregates.percentile(ages, 0.9),
        "oldest_age_working_days": max(ages) if ages else None,
        "over_5_working_days": sum(n for age, n in ages.items() if age > 5),
    }

    histograms = {m: {} for m in MEASURES}
    for measure, days, n in histogram_rows:
        if n:
            histograms[measure][int(days)] = int(n)
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
    trend: dict[str, dict] = {}
    for day, n, open_n, done in by_day:
        bucket = trend.setdefault(
            aggregates.bucket_of(day, query.trend), {"received": 0, "open": 0, "done": 0}
        )
        bucket["received"] += int(n or 0)
        bucket["open"] += int(open_n or 0)
        bucket["done"] += int(done or 0)
    result["trend"] = {"period": query.trend, "buckets": trend}
    return result


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
