"""Working-day arithmetic for Western Indonesia Time (WIB, UTC+7), pure and shared.

Working days are Monday to Friday except national holidays and cuti bersama
(`shared/data/holidays.yaml`). The office closes at 16:00 WIB: something received after that, or
on a non-working day, counts from the next working day. The rules are the same as routing's SLA
clock (services/routing/domain/sla.py), so reporting's "working days to first response" agrees
with the deadlines routing sets: `working_days_between(t, add_working_days(t, n)) == n`.
"""

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from pathlib import Path

import yaml

try:
    from zoneinfo import ZoneInfo

    WIB = ZoneInfo("Asia/Jakarta")
except (ImportError, KeyError):  # no tz database on the host; WIB has had no DST since 1964
    WIB = timezone(timedelta(hours=7), "WIB")

HOLIDAYS_FILE = Path(__file__).resolve().parent / "data" / "holidays.yaml"
OFFICE_CLOSES = time(16, 0)

Holidays = frozenset[date]


@cache
def _load(path: Path) -> Holidays:
    with path.open(encoding="utf-8") as fh:
        document = yaml.safe_load(fh)
    return frozenset(entry["date"] for entry in document["holidays"])


def load_holidays(path: str | Path | None = None) -> Holidays:
    """Holiday dates from a YAML calendar (default: shared/data/holidays.yaml)."""
    return _load(Path(path) if path else HOLIDAYS_FILE)


def _calendar(holidays: Iterable[date] | None) -> Holidays:
    if holidays is None:
        return load_holidays()
    return holidays if isinstance(holidays, frozenset) else frozenset(holidays)


def is_working_day(day: date, holidays: Iterable[date] | None = None) -> bool:
    return day.weekday() < 5 and day not in _calendar(holidays)


def local(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("working-day arithmetic needs an aware datetime")
    return moment.astimezone(WIB)


def local_date(moment: datetime) -> date:
    """The calendar day in WIB (a complaint at 23:30 UTC is the next day in Kepahiang)."""
    return local(moment).date()


def _next_working_day(day: date, holidays: Holidays) -> date:
    day += timedelta(days=1)
    while not is_working_day(day, holidays):
        day += timedelta(days=1)
    return day


def clock_start_day(received_at: datetime, holidays: Iterable[date] | None = None) -> date:
    """The working day something counts as received (after 16:00 or off days: the next one)."""
    calendar = _calendar(holidays)
    moment = local(received_at)
    if is_working_day(moment.date(), calendar) and moment.time() < OFFICE_CLOSES:
        return moment.date()
    return _next_working_day(moment.date(), calendar)


def add_working_days(
    start: datetime, days: int, holidays: Iterable[date] | None = None
) -> datetime:
    """16:00 WIB on the `days`-th working day after the day `start` counts as received."""
    if days < 0:
        raise ValueError("days must not be negative")
    calendar = _calendar(holidays)
    day = clock_start_day(start, calendar)
    for _ in range(days):
        day = _next_working_day(day, calendar)
    return datetime.combine(day, OFFICE_CLOSES, tzinfo=WIB)


def working_days_in(first: date, last: date, holidays: Iterable[date] | None = None) -> int:
    """Working days after `first` up to and including `last` (negative when `last` < `first`)."""
    calendar = _calendar(holidays)
    sign = 1
    if last < first:
        first, last, sign = last, first, -1
    # Whole weeks at once (five weekdays each), then the rest day by day.
    span = (last - first).days
    weeks, rest = divmod(span, 7)
    count = weeks * 5
    day = first + timedelta(days=weeks * 7)
    for _ in range(rest):
        day += timedelta(days=1)
        count += day.weekday() < 5
    count -= sum(1 for h in calendar if first < h <= last and h.weekday() < 5)
    return sign * count


def working_days_between(a: datetime, b: datetime, holidays: Iterable[date] | None = None) -> int:
    """Working days from the day `a` counts as received up to `b`'s day (WIB).

    Received Monday 10:00 and answered Wednesday: 2. Answered the same day: 0.
    """
    calendar = _calendar(holidays)
    return working_days_in(clock_start_day(a, calendar), local_date(b), calendar)
