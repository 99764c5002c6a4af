"""Dates as an Indonesian government office writes them, in WIB.

Day and month names are spelled out here rather than taken from the system locale, so a message
reads the same on every host (containers rarely ship an ``id_ID`` locale).
"""

from datetime import date, datetime, timedelta, timezone

# Western Indonesia Time. Indonesia has no daylight saving, so a fixed offset is exact and needs
# no tz database on the host.
WIB = timezone(timedelta(hours=7), "WIB")

# Index = date.weekday() (Monday is 0).
DAY_NAMES: tuple[str, ...] = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
MONTH_NAMES: tuple[str, ...] = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)


def to_wib(value: datetime | str) -> datetime:
    """The moment ``value`` (an aware datetime or ISO 8601 text) as seen in WIB."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive time is ambiguous (UTC? WIB?) and would show the wrong day near midnight.
        raise ValueError(f"datetime without a time zone: {value!r}")
    return moment.astimezone(WIB)


def _as_day(value: date | datetime | str) -> date:
    if isinstance(value, str) and len(value) == 10:
        return date.fromisoformat(value)  # a calendar day, "2026-12-07": no zone to convert
    if isinstance(value, datetime | str):
        return to_wib(value).date()
    return value


def format_date(value: date | datetime | str) -> str:
    """``Senin, 7 Desember 2026``: the WIB calendar day of a moment, or a plain date."""
    day = _as_day(value)
    return f"{DAY_NAMES[day.weekday()]}, {day.day} {MONTH_NAMES[day.month - 1]} {day.year}"


def format_datetime(value: datetime | str) -> str:
    """``Senin, 7 Desember 2026 pukul 09.05 WIB`` (Indonesian writes the time with a dot)."""
    moment = to_wib(value)
    return f"{format_date(moment)} pukul {moment:%H.%M} WIB"
