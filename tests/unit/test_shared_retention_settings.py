"""The shared retention sweep's settings: defaults, the redelivery floor of processed_events, a
sweep interval or OUTBOX_DELETE_PUBLISHED that is not what it must be refused, and every service
with an outbox or processed_events passing them on from its config.yaml."""

from datetime import timedelta

import pytest
from support.service_config import load_config

from shared import retention


def test_defaults_keep_outbox_rows_a_week_and_processed_events_a_month():
    assert retention.windows_from({}) == retention.Windows(
        outbox=timedelta(hours=168), processed_events=timedelta(days=30), batch_size=500)
    assert retention.sweep_interval({}) == 3600
    assert retention.windows_from({"OUTBOX_RETENTION_HOURS": None,
                                   "PROCESSED_EVENTS_RETENTION_DAYS": ""}) == retention.Windows()


def test_a_processed_events_window_inside_the_redelivery_horizon_is_refused():
    # A parked message requeued from its dead-letter queue days later must still be recognised.
    with pytest.raises(retention.RetentionConfigError, match="below the safe minimum 8"):
        retention.windows_from({"PROCESSED_EVENTS_RETENTION_DAYS": "7.9"})
    assert retention.windows_from({"PROCESSED_EVENTS_RETENTION_DAYS": 8}).processed_events == \
        timedelta(days=8)


@pytest.mark.parametrize(("settings", "message"), [
    ({"OUTBOX_RETENTION_HOURS": "seminggu"}, "must be a number"),
    ({"OUTBOX_RETENTION_HOURS": "0"}, "below the safe minimum"),
    ({"OUTBOX_RETENTION_HOURS": "nan"}, "below the safe minimum"),
    ({"PROCESSED_EVENTS_RETENTION_DAYS": "inf"}, "implausibly large"),
    ({"RETENTION_BATCH_SIZE": "0"}, "below the safe minimum"),
])
def test_invalid_settings_are_refused(settings, message):
    with pytest.raises(retention.RetentionConfigError, match=message):
        retention.windows_from(settings)


@pytest.mark.parametrize("service", ["intake", "routing", "notification"])
def test_every_service_with_the_tables_reads_the_settings_from_its_config(service, monkeypatch):
    for name in ("OUTBOX_RETENTION_SWEEP_SECONDS", "OUTBOX_RETENTION_HOURS",
                 "PROCESSED_EVENTS_RETENTION_DAYS", "RETENTION_BATCH_SIZE"):
        monkeypatch.delenv(name, raising=False)
    config = load_config(service)
    assert retention.windows_from(config) == retention.Windows()
    assert retention.sweep_interval(config) == 3600

    monkeypatch.setenv("OUTBOX_RETENTION_HOURS", "48")
    monkeypatch.setenv("PROCESSED_EVENTS_RETENTION_DAYS", "14")
    monkeypatch.setenv("OUTBOX_RETENTION_SWEEP_SECONDS", "600")
    config = load_config(service)
    assert retention.windows_from(config) == retention.Windows(
        outbox=timedelta(hours=48), processed_events=timedelta(days=14))
    assert retention.sweep_interval(config) == 600


@pytest.mark.parametrize(("raw", "seconds"), [("600", 600), (0.05, 0.05), ("0", 0), (-1, -1)])
def test_the_sweep_interval_is_a_number_of_seconds_and_zero_or_less_turns_it_off(raw, seconds):
    assert retention.sweep_interval({"OUTBOX_RETENTION_SWEEP_SECONDS": raw}) == seconds


@pytest.mark.parametrize(("raw", "message"), [
    ("sejam", "OUTBOX_RETENTION_SWEEP_SECONDS must be a number, got 'sejam'"),
    ([3600], "OUTBOX_RETENTION_SWEEP_SECONDS must be a number, got \\[3600\\]"),
    (True, "OUTBOX_RETENTION_SWEEP_SECONDS must be a number, got True"),
    ("nan", "OUTBOX_RETENTION_SWEEP_SECONDS=nan is not a finite number of seconds"),
    ("inf", "OUTBOX_RETENTION_SWEEP_SECONDS=inf is not a finite number of seconds"),
])
def test_a_sweep_interval_that_is_not_a_finite_number_is_refused(raw, message):
    with pytest.raises(retention.RetentionConfigError, match=message):
        retention.sweep_interval({"OUTBOX_RETENTION_SWEEP_SECONDS": raw})


@pytest.mark.parametrize(("raw", "expected"), [
    (None, False), ("", False), (False, False), (True, True),
    ("true", True), ("TRUE", True), ("yes", True), ("on", True), ("1", True), (1, True),
    ("false", False), ("no", False), ("off", False), ("0", False), (0, False),
])
def test_outbox_delete_published_is_a_boolean_off_by_default(raw, expected):
    assert retention.delete_published({"OUTBOX_DELETE_PUBLISHED": raw}) is expected
    assert retention.delete_published({}) is False


@pytest.mark.parametrize("raw", ["ya", "hapus", "2", 2, 1.0, "truee"])
def test_outbox_delete_published_that_is_not_a_boolean_is_refused(raw):
    with pytest.raises(retention.RetentionConfigError,
                       match="OUTBOX_DELETE_PUBLISHED must be a boolean \\(true or false\\), got"):
        retention.delete_published({"OUTBOX_DELETE_PUBLISHED": raw})


@pytest.mark.parametrize("service", ["intake", "routing", "notification"])
def test_every_service_with_an_outbox_reads_outbox_delete_published_from_its_config(
        service, monkeypatch):
    monkeypatch.delenv("OUTBOX_DELETE_PUBLISHED", raising=False)
    assert retention.delete_published(load_config(service)) is False
    for raw, expected in (("true", True), ("1", True), ("off", False)):
        monkeypatch.setenv("OUTBOX_DELETE_PUBLISHED", raw)
        assert retention.delete_published(load_config(service)) is expected
    monkeypatch.setenv("OUTBOX_DELETE_PUBLISHED", "ya")
    with pytest.raises(retention.RetentionConfigError, match="got 'ya'"):
        retention.delete_published(load_config(service))
    monkeypatch.setenv("OUTBOX_RETENTION_SWEEP_SECONDS", "sejam")
    with pytest.raises(retention.RetentionConfigError, match="must be a number, got 'sejam'"):
        retention.sweep_interval(load_config(service))
