"""Working-day arithmetic in Western Indonesia Time (WIB, UTC+7): the one implementation.

routing's SLA clock (deadlines), reporting's "working days to first response" and notification's
answer/feedback dates all count with this module, so they always agree:
`working_days_between(t, add_working_days(t, n)) == n`.

Working days are Monday to Friday except

- the Indonesian national holidays (libur nasional) of the `holidays` library (country ID), and
- the days listed in a YAML calendar: the cuti bersama decided every year by SKB 3 Menteri, and
  any day off the government adds or moves before the library catches up. Default
  `shared/data/holidays.yaml`; a deployment points `DUMAS_HOLIDAYS_FILE` at its own file.

The office closes at 16:00 WIB: something received after that, or on a non-working day, counts
from the next working day. A deadline of N working days falls at 16:00 WIB on the N-th working
day after that day: received Monday 10:00 with 5 days -> due the next Monday 16:00.

Every function takes an optional calendar: None (the office calendar above), an `OfficeCalendar`,
or any iterable of dates (tests pass `frozenset()` for "weekends only").
"""

import os
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from pathlib import Path

import holidays as holidays_lib
import yaml

try:
    from zoneinfo import ZoneInfo

    WIB = ZoneInfo("Asia/Jakarta")
except (ImportError, KeyError):  # no tz database on the host; WIB has had no DST since 1964
    WIB = timezone(timedelta(hours=7), "WIB")

HOLIDAYS_FILE = Path(__file__).resolve().parent / "data" / "holidays.yaml"
HOLIDAYS_FILE_ENV = "DUMAS_HOLIDAYS_FILE"
OFFICE_CLOSES = time(16, 0)
COUNTRY = "ID"


def national_holidays(year: int) -> Iterable[date]:
    """Indonesia's national holidays in `year`, from the `holidays` library."""
    return holidays_lib.country_holidays(COUNTRY, years=year).keys()


class OfficeCalendar:
    """Non-working days besides weekends: national holidays (library) + listed days (YAML).

    Looked up per year and cached, so membership is one set look-up and a range of dates can be
    counted without asking the library day by day.
    """

    def __init__(self, extra: Iterable[date] = (), national=None):
        self.extra = frozenset(extra)
        # year -> that year's national holidays; the library unless a test passes its own
        self._national = national or national_holidays
        self._years: dict[int, frozenset[date]] = {}

    def year(self, year: int) -> frozenset[date]:
        days = self._years.get(year)
        if days is None:
            days = frozenset(self._national(year)) | {d for d in self.extra if d.year == year}
            self._years[year] = days
        return days

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and day in self.year(day.year)

    def between(self, first: date, last: date) -> frozenset[date]:
        """The non-working days (weekends aside) after `first` up to and including `last`."""
        found: set[date] = set()
        for year in range(first.year, last.year + 1):
            found.update(d for d in self.year(year) if first < d <= last)
        return frozenset(found)


Holidays = OfficeCalendar | frozenset[date]


@cache
def _listed(path: Path) -> frozenset[date]:
    with path.open(encoding="utf-8") as fh:
        document = yaml.safe_load(fh) or {}
    return frozenset(entry["date"] for entry in document.get("holidays") or ())


def holidays_file() -> Path:
    """The YAML calendar in use: `DUMAS_HOLIDAYS_FILE`, else the bundled one."""
    configured = os.environ.get(HOLIDAYS_FILE_ENV)
    return Path(configured) if configured else HOLIDAYS_FILE


def listed_days(path: str | Path | None = None) -> frozenset[date]:
    """The days of a YAML calendar (cuti bersama and extra days off), without the library's."""
    return _listed(Path(path) if path else holidays_file())


@cache
def _office_calendar(path: Path) -> OfficeCalendar:
    return OfficeCalendar(_listed(path))


def load_holidays(path: str | Path | None = None) -> OfficeCalendar:
    """The office calendar: national holidays of the library plus the listed days of `path`
    (default: `holidays_file()`). Cached per file."""
    return _office_calendar(Path(path) if path else holidays_file())


def _calendar(holidays: Iterable[date] | OfficeCalendar | None) -> Holidays:
    if holidays is None:
        return load_holidays()
    if isinstance(holidays, frozenset | OfficeCalendar):
        return holidays
    return frozenset(holidays)


def is_working_day(day: date, holidays: Iterable[date] | OfficeCalendar | None = None) -> bool:
    return day.weekday() < 5 and day not in _calendar(holidays)


def local(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("working-day arithmetic needs an aware datetime")
    return moment.astimezone(WIB)


def local_date(moment: datetime) -> date:
    """The calendar day in WIB (a complaint at 23:30 UTC is the next day in Kepahiang)."""
    return local(moment).date()


def _next_working_day(day: date, calendar: Holidays) -> date:
    day += timedelta(days=1)
    while not is_working_day(day, calendar):
        day += timedelta(days=1)
    return day


def clock_start_day(received_at: datetime, holidays=None) -> date:
    """The working day something counts as received (after 16:00 or off days: the next one)."""
    calendar = _calendar(holidays)
    moment = local(received_at)
    if is_working_day(moment.date(), calendar) and moment.time() < OFFICE_CLOSES:
        return moment.date()
    return _next_working_day(moment.date(), calendar)


def add_working_days(start: datetime, days: int, holidays=None) -> datetime:
    """16:00 WIB on the `days`-th working day after the day `start` counts as received."""
    if days < 0:
        raise ValueError("days must not be negative")
    calendar = _calendar(holidays)
    day = clock_start_day(start, calendar)
    for _ in range(days):
        day = _next_working_day(day, calendar)
    return datetime.combine(day, OFFICE_CLOSES, tzinfo=WIB)


def working_days_in(first: date, last: date, holidays=None) -> int:
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
    if isinstance(calendar, OfficeCalendar):
        off = calendar.between(first, last)
    else:
        off = (h for h in calendar if first < h <= last)
    count -= sum(1 for h in off if h.weekday() < 5)
    return sign * count


def working_days_between(a: datetime, b: datetime, holidays=None) -> int:
    """Working days from the day `a` counts as received up to `b`'s day (WIB).

    Received Monday 10:00 and answered Wednesday: 2. Answered the same day: 0.
    """
    calendar = _calendar(holidays)
    return working_days_in(clock_start_day(a, calendar), local_date(b), calendar)


def shift_working_days(moment: datetime, days: int, holidays=None) -> datetime:
    """`moment` moved `days` working days later, same time of day (a paused clock resumes)."""
    if days <= 0:
        return moment
    calendar = _calendar(holidays)
    day = local_date(moment)
    for _ in range(days):
        day = _next_working_day(day, calendar)
    return datetime.combine(day, local(moment).timetz()).astimezone(moment.tzinfo)


def paused_working_days(paused_at: datetime, resumed_at: datetime, holidays=None) -> int:
    """Working days a clock stood still between `paused_at` and `resumed_at` (0 the same day)."""
    return max(0, working_days_in(local_date(paused_at), local_date(resumed_at), holidays))
