"""The SLA clock's policy: how many working days each deadline of a complaint allows.

The arithmetic (working days in WIB, national holidays + cuti bersama, the office closing at
16:00) is `shared/workdays.py`, shared with reporting and notification so every service counts
the same days. A deadline of N working days falls at 16:00 WIB on the N-th working day after the
(effective) day of receipt: received Monday 10:00 with 5 days -> due the next Monday 16:00.

Two clocks per complaint, as in national complaint-handling practice (SP4N-LAPOR!):

- first response (the unit acknowledges the complaint): 3 working days for every category
  (`RESPONSE_WORKING_DAYS` overrides it per category);
- resolution: 5 working days for information requests and simple complaints, 14 for those that
  need checking, 60 for those that need a field investigation (`RESOLUTION_WORKING_DAYS`).

Both tables can be overridden per deployment (routing's config `SLA_RESPONSE_DAYS`,
`SLA_RESOLUTION_DAYS`: {category: days}). A warning is due after two thirds of a deadline
(`warning_days`). While the unit waits for the complainant (`info_requested`) the clocks pause:
`shift_working_days` moves a deadline by the working days the pause lasted.
"""

from collections.abc import Mapping
from datetime import date, datetime, time

from shared.workdays import WIB as WIB  # re-exported for callers that print WIB times
from shared.workdays import add_working_days, clock_start_day, load_holidays

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


def response_due_at(category: str, received_at: datetime, holidays=None) -> datetime:
    """When the first response to a complaint of `category` received at `received_at` is due."""
    return add_working_days(received_at, response_working_days(category), holidays)


def deadlines(
    category: str, received_at: datetime, holidays=None,
    response_overrides: Mapping[str, int] | None = None,
    resolution_overrides: Mapping[str, int] | None = None,
) -> dict[str, datetime]:
    """The four moments of a complaint's clocks: response/resolution warning and due.

    `holidays`: a shared.workdays calendar (None: the office calendar)."""
    response = response_working_days(category, response_overrides)
    resolution = resolution_working_days(category, resolution_overrides)
    calendar = load_holidays() if holidays is None else holidays
    try:
        hash(calendar)
    except TypeError:  # a plain set or list of days: as shared.workdays reads it
        calendar = frozenset(calendar)
    start = clock_start_day(received_at, calendar)
    return {
        "response_warn_at": _due(start, warning_days(response), calendar),
        "response_due_at": _due(start, response, calendar),
        "resolution_warn_at": _due(start, warning_days(resolution), calendar),
        "resolution_due_at": _due(start, resolution, calendar),
    }


# add_working_days depends on `received_at` only through the day the clock starts, so the
# deadlines of a clock start day are counted once (routing's CPU per complaint: four walks of
# up to 60 working days each). Bounded: cleared when full.
_DUE: dict[tuple, datetime] = {}
_DUE_MAX = 4096


def _due(start: date, days: int, calendar) -> datetime:
    key = (start, days, calendar)
    due = _DUE.get(key)
    if due is None:
        if len(_DUE) >= _DUE_MAX:
            _DUE.clear()
        # Midnight of a working day starts the clock that same day.
        due = _DUE[key] = add_working_days(datetime.combine(start, time(0), tzinfo=WIB), days,
                                           calendar)
    return due
