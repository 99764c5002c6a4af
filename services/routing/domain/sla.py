"""The SLA clock: response deadlines in working days, Western Indonesia Time (WIB, UTC+7).

Working days are Monday to Friday except national holidays and cuti bersama
(`data/holidays.yaml`). The office closes at 16:00 WIB: a complaint received after that, or on a
non-working day, is treated as received at the start of the next working day. A deadline of N
working days falls at 16:00 WIB on the N-th working day after the (effective) day of receipt:
received Monday 10:00 with 5 days -> due the next Monday 16:00.

Two clocks per complaint, as in national complaint-handling practice (SP4N-LAPOR!):

- first response (the unit acknowledges the complaint): 3 working days for every category
  (`RESPONSE_WORKING_DAYS` overrides it per category);
- resolution: 5 working days for information requests and simple complaints, 14 for those that
  need checking, 60 for those that need a field investigation (`RESOLUTION_WORKING_DAYS`).

Both tables can be overridden per deployment (routing's config `SLA_RESPONSE_DAYS`,
`SLA_RESOLUTION_DAYS`: {category: days}). A warning is due after two thirds of a deadline
(`warning_at`). While the unit waits for the complainant (`info_requested`) the clocks pause:
`shift_working_days` moves a deadline by the working days the pause lasted.

The non-working days are the Indonesian national holidays of the `holidays` library (country
ID) plus the bundled calendar `data/holidays.yaml`, which adds the cuti bersama decided every
year by SKB 3 Menteri (and corrects moved holidays before the library does).
"""

from collections.abc import Iterable, Mapping
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

HOLIDAYS_FILE = Path(__file__).resolve().parent.parent / "data" / "holidays.yaml"
OFFICE_CLOSES = time(16, 0)
DEFAULT_RESPONSE_WORKING_DAYS = 3
RESPONSE_WORKING_DAYS: dict[str, int] = {}
DEFAULT_RESOLUTION_WORKING_DAYS = 14
RESOLUTION_WORKING_DAYS: dict[str, int] = {
    # information and simple complaints
    "pelayanan_ptsp": 5,
    "lainnya": 5,
    "nikah_rujuk": 5,  # weddings are date-bound
    # need checking
    "zakat_infak": 14,
    "kemasjidan": 14,
    "haji_umrah": 14,
    "pendidikan_madrasah": 14,
    "guru_tendik": 14,
    # need a field investigation
    "wakaf": 60,  # land, witnesses, certificates
    "integritas": 60,
}
# After resolution the complainant has this long to rate or reopen; then the complaint closes.
FEEDBACK_WORKING_DAYS = 10

Holidays = frozenset[date]


def response_working_days(category: str, overrides: Mapping[str, int] | None = None) -> int:
    """Working days allowed for the first response to a complaint of this category."""
    if overrides and category in overrides:
        return int(overrides[category])
    return RESPONSE_WORKING_DAYS.get(category, DEFAULT_RESPONSE_WORKING_DAYS)


def resolution_working_days(category: str, overrides: Mapping[str, int] | None = None) -> int:
    """Working days allowed to resolve a complaint of this category."""
    if overrides and category in overrides:
        return int(overrides[category])
    return RESOLUTION_WORKING_DAYS.get(category, DEFAULT_RESOLUTION_WORKING_DAYS)


def warning_days(days: int) -> int:
    """The working day (after the start) at which two thirds of a `days` deadline have passed."""
    return max(1, round(2 * days / 3)) if days > 1 else days


class OfficeCalendar:
    """Non-working days besides weekends: national holidays (library) + the YAML calendar."""

    def __init__(self, extra: Iterable[date] = (), library=None):
        self.extra = frozenset(extra)
        self.library = library if library is not None else holidays_lib.country_holidays("ID")

    def __contains__(self, day: object) -> bool:
        return day in self.extra or day in self.library


@cache
def office_calendar() -> OfficeCalendar:
    return OfficeCalendar(load_holidays())


@cache
def _load(path: Path) -> Holidays:
    with path.open(encoding="utf-8") as fh:
        document = yaml.safe_load(fh)
    return frozenset(entry["date"] for entry in document["holidays"])


def load_holidays(path: str | Path | None = None) -> Holidays:
    """Holiday dates from a YAML calendar (default: the bundled data/holidays.yaml)."""
    return _load(Path(path) if path else HOLIDAYS_FILE)


def _calendar(holidays: Iterable[date] | OfficeCalendar | None):
    if holidays is None:
        return office_calendar()
    if isinstance(holidays, frozenset | OfficeCalendar):
        return holidays
    return frozenset(holidays)


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


def shift_working_days(
    moment: datetime, days: int, holidays: Iterable[date] | None = None
) -> datetime:
    """`moment` moved `days` working days later, same time of day (a paused clock resumes)."""
    if days <= 0:
        return moment
    calendar = _calendar(holidays)
    local = _local(moment)
    day = local.date()
    for _ in range(days):
        day = _next_working_day(day, calendar)
    return datetime.combine(day, local.timetz()).astimezone(moment.tzinfo)


def paused_working_days(
    paused_at: datetime, resumed_at: datetime, holidays: Iterable[date] | None = None
) -> int:
    """Working days a clock stood still between `paused_at` and `resumed_at` (0 the same day)."""
    calendar = _calendar(holidays)
    first, last = _local(paused_at).date(), _local(resumed_at).date()
    count, day = 0, first + timedelta(days=1)
    while day <= last:
        count += is_working_day(day, calendar)
        day += timedelta(days=1)
    return count


def deadlines(
    category: str, received_at: datetime, holidays: Iterable[date] | None = None,
    response_overrides: Mapping[str, int] | None = None,
    resolution_overrides: Mapping[str, int] | None = None,
) -> dict[str, datetime]:
    """The four moments of a complaint's clocks: response/resolution warning and due."""
    calendar = _calendar(holidays)
    response = response_working_days(category, response_overrides)
    resolution = resolution_working_days(category, resolution_overrides)
    return {
        "response_warn_at": add_working_days(received_at, warning_days(response), calendar),
        "response_due_at": add_working_days(received_at, response, calendar),
        "resolution_warn_at": add_working_days(received_at, warning_days(resolution), calendar),
        "resolution_due_at": add_working_days(received_at, resolution, calendar),
    }
