"""The working-day SLA clock in WIB."""

from datetime import UTC, date, datetime, timedelta

import pytest
import yaml

from services.routing.domain.sla import (
    deadlines,
    resolution_working_days,
    response_due_at,
    response_working_days,
    warning_days,
)
from shared.workdays import (
    HOLIDAYS_FILE,
    HOLIDAYS_FILE_ENV,
    WIB,
    OfficeCalendar,
    add_working_days,
    clock_start_day,
    listed_days,
    load_holidays,
    paused_working_days,
    shift_working_days,
    working_days_between,
    working_days_in,
)

NO_HOLIDAYS: frozenset[date] = frozenset()


def wib(y, m, d, hh=10, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=WIB)


def test_five_working_days_from_a_monday_morning_is_next_monday_at_closing():
    assert add_working_days(wib(2026, 2, 2), 5, NO_HOLIDAYS) == wib(2026, 2, 9, 16)


def test_working_days_skip_the_weekend():
    # Thursday + 2 working days = Monday
    assert add_working_days(wib(2026, 2, 5), 2, NO_HOLIDAYS) == wib(2026, 2, 9, 16)


def test_a_complaint_after_16_wib_counts_from_the_next_working_day():
    assert clock_start_day(wib(2026, 2, 6, 16, 1), NO_HOLIDAYS) == date(2026, 2, 9)
    assert add_working_days(wib(2026, 2, 6, 17), 1, NO_HOLIDAYS) == wib(2026, 2, 10, 16)


def test_a_complaint_before_16_wib_counts_from_that_day():
    assert clock_start_day(wib(2026, 2, 6, 15, 59), NO_HOLIDAYS) == date(2026, 2, 6)


def test_a_complaint_on_saturday_counts_from_monday():
    assert clock_start_day(wib(2026, 2, 7, 9), NO_HOLIDAYS) == date(2026, 2, 9)


def test_utc_times_are_read_in_wib():
    # 09:30 UTC is 16:30 WIB: after office hours
    received = datetime(2026, 2, 4, 9, 30, tzinfo=UTC)
    assert clock_start_day(received, NO_HOLIDAYS) == date(2026, 2, 5)


def test_naive_datetimes_are_rejected():
    with pytest.raises(ValueError):
        add_working_days(datetime(2026, 2, 2, 10), 1, NO_HOLIDAYS)


def test_the_lebaran_2026_holidays_and_cuti_bersama_stop_the_clock():
    holidays = load_holidays()
    # Tue 17 Mar 2026 10:00; 18-24 Mar are Nyepi, Idul Fitri and cuti bersama.
    assert add_working_days(wib(2026, 3, 17), 1, holidays) == wib(2026, 3, 25, 16)
    assert add_working_days(wib(2026, 3, 17), 3, holidays) == wib(2026, 3, 27, 16)


def test_a_complaint_received_on_a_holiday_counts_from_the_next_working_day():
    holidays = load_holidays()
    assert clock_start_day(wib(2026, 1, 1, 9), holidays) == date(2026, 1, 2)
    assert clock_start_day(wib(2026, 12, 24, 9), holidays) == date(2026, 12, 28)


def test_the_bundled_calendar_covers_2026_and_2027():
    holidays = load_holidays()
    assert date(2026, 8, 17) in holidays
    assert date(2026, 3, 23) in holidays  # cuti bersama Idul Fitri
    assert date(2027, 8, 17) in holidays
    assert date(2026, 3, 25) not in holidays


def test_working_days_between_inverts_add_working_days():
    holidays = load_holidays()
    start = wib(2026, 3, 13, 11)
    for n in range(0, 30):
        assert working_days_between(start, add_working_days(start, n, holidays), holidays) == n


def test_working_days_between_is_negative_backwards():
    assert working_days_between(wib(2026, 2, 9), wib(2026, 2, 5), NO_HOLIDAYS) == -2


def test_first_response_is_due_in_three_working_days_for_every_category():
    for category in ("integritas", "nikah_rujuk", "wakaf", "tidak-dikenal"):
        assert response_working_days(category) == 3
    assert response_working_days("wakaf", {"wakaf": 4}) == 4


def test_resolution_takes_5_14_or_60_working_days_by_category():
    assert resolution_working_days("pelayanan_ptsp") == 5
    assert resolution_working_days("pendidikan_madrasah") == 14
    assert resolution_working_days("integritas") == 60
    assert resolution_working_days("lainnya", {"lainnya": 7}) == 7


def test_the_warning_comes_after_two_thirds_of_a_deadline():
    assert [warning_days(n) for n in (1, 3, 5, 14, 60)] == [1, 2, 3, 9, 40]


def test_the_holidays_library_knows_national_holidays_missing_from_the_yaml():
    library_only = OfficeCalendar(extra=())
    assert date(2026, 8, 17) in library_only  # Hari Proklamasi
    assert date(2026, 3, 23) not in library_only  # cuti bersama: only in the YAML
    assert date(2026, 3, 23) in OfficeCalendar(listed_days())
    assert date(2028, 8, 17) in load_holidays()  # beyond the YAML: the library's years


def test_a_deadline_across_a_weekend_and_a_national_holiday():
    # Thu 13 Aug 2026 10:00: Fri 14, Mon 16? no: Mon 17 Aug is Independence Day.
    calendar = load_holidays()
    assert add_working_days(wib(2026, 8, 13), 3, calendar) == wib(2026, 8, 19, 16)
    d = deadlines("pelayanan_ptsp", wib(2026, 8, 13), calendar)
    assert d["response_warn_at"] == wib(2026, 8, 18, 16)
    assert d["response_due_at"] == wib(2026, 8, 19, 16)
    assert d["resolution_due_at"] == wib(2026, 8, 21, 16)


def test_a_paused_clock_moves_its_deadline_by_the_working_days_it_waited():
    calendar = load_holidays()
    # paused Fri 14 Aug, resumed Wed 19 Aug: Mon 17 is a holiday -> Tue 18, Wed 19 = 2 days
    assert paused_working_days(wib(2026, 8, 14), wib(2026, 8, 19), calendar) == 2
    assert shift_working_days(wib(2026, 8, 14, 16), 2, calendar) == wib(2026, 8, 19, 16)
    assert shift_working_days(wib(2026, 8, 14, 16), 0, calendar) == wib(2026, 8, 14, 16)


def test_response_due_at_uses_the_category_table():
    received = wib(2026, 2, 2)
    assert response_due_at("integritas", received, NO_HOLIDAYS) == wib(2026, 2, 5, 16)
    assert response_due_at("lainnya", received, NO_HOLIDAYS) - received == timedelta(
        days=3, hours=6
    )


def test_the_libur_nasional_listed_for_2026_are_the_ones_the_library_knows():
    document = yaml.safe_load(HOLIDAYS_FILE.read_text(encoding="utf-8"))
    listed = [e["date"] for e in document["holidays"]
              if e["kind"] == "libur_nasional" and not e.get("tentative")]
    assert listed, "the bundled calendar lists the SKB's national holidays"
    assert [d for d in listed if d not in OfficeCalendar(extra=())] == []


def test_a_deployment_can_bring_its_own_cuti_bersama_list(tmp_path, monkeypatch):
    own = tmp_path / "holidays.yaml"
    own.write_text("holidays:\n  - {date: 2026-02-09, kind: cuti_bersama, name: Uji}\n")
    monkeypatch.setenv(HOLIDAYS_FILE_ENV, str(own))
    calendar = load_holidays()
    assert date(2026, 2, 9) in calendar  # the deployment's day off
    assert date(2026, 3, 23) not in calendar  # the bundled cuti bersama are not used
    assert date(2026, 8, 17) in calendar  # national holidays still come from the library
    # Mon 9 Feb is off: a complaint of Fri 6 Feb 10:00 is due 1 working day later on Tue 10.
    assert add_working_days(wib(2026, 2, 6), 1) == wib(2026, 2, 10, 16)


def test_reporting_counts_the_days_routing_sets_deadlines_with():
    received = wib(2026, 5, 13, 11)  # before Kenaikan (14), its cuti bersama (15), a weekend
    due = deadlines("pelayanan_ptsp", received)["resolution_due_at"]
    assert due == wib(2026, 5, 22, 16)  # Mon 18 .. Fri 22
    assert working_days_between(received, due) == 5
    assert working_days_in(date(2026, 5, 13), date(2026, 5, 22)) == 5


@pytest.mark.parametrize("calendar", [None, OfficeCalendar(extra=[date(2026, 5, 19)]),
                                      [date(2026, 5, 19)]], ids=["office", "own", "list"])
def test_the_deadlines_equal_counting_working_days_from_each_moment(calendar):
    # deadlines() counts once per day the clock starts; every hour of a week with Kenaikan,
    # its cuti bersama and a weekend, around closing time too, gives what add_working_days
    # gives for that very moment.
    moments = [wib(2026, 5, 11) + timedelta(minutes=m) for m in range(0, 9 * 24 * 60, 37)]
    moments += [wib(2026, 5, 13, 15, 59), wib(2026, 5, 13, 16), wib(2026, 5, 13, 16, 1)]
    for moment in moments:
        for category in ("nikah_rujuk", "haji_umrah", "wakaf"):
            days = {"response": response_working_days(category),
                    "resolution": resolution_working_days(category)}
            expected = {}
            for clock, n in days.items():
                expected[f"{clock}_warn_at"] = add_working_days(moment, warning_days(n), calendar)
                expected[f"{clock}_due_at"] = add_working_days(moment, n, calendar)
            assert deadlines(category, moment, calendar) == expected, (moment, category)
            assert deadlines(category, moment.astimezone(UTC), calendar) == expected


def test_the_deadlines_follow_the_calendar_the_deployment_switches_to(tmp_path, monkeypatch):
    received = wib(2026, 2, 6)  # Friday
    assert deadlines("nikah_rujuk", received)["response_warn_at"] == wib(2026, 2, 10, 16)
    own = tmp_path / "holidays.yaml"
    own.write_text("holidays:\n  - {date: 2026-02-10, kind: cuti_bersama, name: Uji}\n")
    monkeypatch.setenv(HOLIDAYS_FILE_ENV, str(own))
    assert deadlines("nikah_rujuk", received)["response_warn_at"] == wib(2026, 2, 11, 16)
