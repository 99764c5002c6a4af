"""The SLA clock: response deadlines in working days, Western Indonesia Time (WIB, UTC+7).

Working days are Monday to Friday except national holidays and cuti bersama
(`data/holidays.yaml`). The office closes at 16:00 WIB: a complaint received after that, or on a
non-working day, is treated as received at the start of the next working day. A deadline of N
working days falls at 16:00 WIB on the N-th working day after the (effective) day of receipt:
received Monday 10:00 with 5 days -> due the next Monday 16:00.

Response targets (first substantive response by the handling unit), in working days:

    integritas   3  reports of extortion or bribery need quick protection of the complainant
    nikah_rujuk  3  weddings are date-bound; a late answer is no answer
    (others)     5  the usual public-service complaint response time

The table is `RESPONSE_WORKING_DAYS`; `response_working_days(category)` reads it.
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

HOLIDAYS_FILE = Path(__file__).resolve().parent.parent / "data" / "holidays.yaml"
OFFICE_CLOSES = time(16, 0)
DEFAULT_RESPONSE_WORKING_DAYS = 5
RESPONSE_WORKING_DAYS: dict[str, int] = {"integritas": 3, "nikah_rujuk": 3}

Holidays = frozenset[date]


def response_working_days(category: str) -> int:
    """Working days allowed for the first response to a complaint of this category."""
    return RESPONSE_WORKING_DAYS.get(category, DEFAULT_RESPONSE_WORKING_DAYS)


@cache
def _load(path: Path) -> Holidays:
    with path.open(encoding="utf-8") as fh:
        document = yaml.safe_load(fh)
    return frozenset(entry["date"] for entry in document["holidays"])


def load_holidays(path: str | Path | None = None) -> Holidays:
    """Holiday dates from a YAML calendar (default: the bundled data/holidays.yaml)."""
    return _load(Path(path) if path else HOLIDAYS_FILE)


def _calendar(holidays: Iterable[date] | None) -> Holidays:
    if holidays is None:
        return load_holidays()
    return holidays if isinstance(holidays, frozenset) else frozenset(holidays)


def is_working_day(day: date, holidays: Iterable[date] | None = None) -> bool:
    return day.weekday() < 5 and day not in _calendar(holidays)


def _local(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the SLA clock needs an aware datetime")
    return moment.astimezone(WIB)


def _next_working_day(day: date, holidays: Holidays) -> date:
    day += timedelta(days=1)
    while not is_working_day(day, holidays):
        day += timedelta(days=1)
    return day


def clock_start_day(received_at: datetime, holidays: Iterable[date] | None = None) -> date:
    """The working day a complaint counts as received (after 16:00 or off days: the next one)."""
    calendar = _calendar(holidays)
    local = _local(received_at)
    if is_working_day(local.date(), calendar) and local.time() < OFFICE_CLOSES:
        return local.date()
    return _next_working_day(local.date(), calendar)


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


def working_days_between(a: datetime, b: datetime, holidays: Iterable[date] | None = None) -> int:
    """Working days from the day `a` counts as received up to `b`'s day (WIB).

    Counts working days after `clock_start_day(a)` up to and including `b`'s date, so that
    `working_days_between(t, add_working_days(t, n)) == n`. Negative when `b` is earlier.
    """
    calendar = _calendar(holidays)
    first = clock_start_day(a, calendar)
    last = _local(b).date()
    sign = 1
    if last < first:
        first, last, sign = last, first, -1
    count = 0
    day = first + timedelta(days=1)
    while day <= last:
        count += is_working_day(day, calendar)
        day += timedelta(days=1)
    return sign * count


def response_due_at(
    category: str, received_at: datetime, holidays: Iterable[date] | None = None
) -> datetime:
    """When the first response to a complaint of `category` received at `received_at` is due."""
    return add_working_days(received_at, response_working_days(category), holidays)
