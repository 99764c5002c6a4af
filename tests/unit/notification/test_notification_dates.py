from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from services.notification.domain.dates import format_date, format_datetime, to_wib


def test_date_is_written_with_indonesian_day_and_month_names():
    assert format_date(date(2026, 12, 7)) == "Senin, 7 Desember 2026"


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 1), "Kamis, 1 Januari 2026"),
        (date(2026, 2, 20), "Jumat, 20 Februari 2026"),
        (date(2026, 3, 21), "Sabtu, 21 Maret 2026"),
        (date(2026, 5, 17), "Minggu, 17 Mei 2026"),
        (date(2026, 8, 18), "Selasa, 18 Agustus 2026"),
        (date(2026, 11, 25), "Rabu, 25 November 2026"),
    ],
)
def test_every_day_name_is_spelled_out(day, expected):
    assert format_date(day) == expected


def test_utc_evening_is_already_the_next_day_in_wib():
    late_utc = datetime(2026, 12, 6, 17, 30, tzinfo=UTC)  # 00.30 WIB on 7 December
    assert format_date(late_utc) == "Senin, 7 Desember 2026"


def test_datetime_shows_the_wib_time_with_a_dot():
    moment = datetime(2026, 12, 7, 2, 5, tzinfo=UTC)
    assert format_datetime(moment) == "Senin, 7 Desember 2026 pukul 09.05 WIB"


def test_iso_text_from_an_event_is_accepted():
    assert format_datetime("2026-12-07T16:00:00+07:00") == "Senin, 7 Desember 2026 pukul 16.00 WIB"
    assert format_date("2026-12-06T23:00:00Z") == "Senin, 7 Desember 2026"
    assert format_date("2026-12-07") == "Senin, 7 Desember 2026"


def test_other_offsets_are_converted_to_wib():
    wita = timezone(timedelta(hours=8))
    assert to_wib(datetime(2026, 12, 7, 8, 0, tzinfo=wita)).hour == 7


def test_naive_datetime_is_refused_because_its_day_is_ambiguous():
    with pytest.raises(ValueError):
        format_date(datetime(2026, 12, 7, 23, 0))
