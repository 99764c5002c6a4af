"""The shared retention sweep's settings: defaults, the redelivery floor of processed_events, and
every service with an outbox or processed_events passing them on from its config.yaml."""

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
