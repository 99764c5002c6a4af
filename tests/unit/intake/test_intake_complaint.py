import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.intake.domain.complaint import (
    INITIAL_STATUS,
    STATUS_ORDER,
    next_status,
    public_view,
    status_after,
)
from shared.catalogue import STATUSES

WIB = timezone(timedelta(hours=7))
RECEIVED_AT = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
ROUTED_AT = datetime(2025, 3, 3, 1, 5, tzinfo=UTC)


def make_record(**overrides):
    record = {
        "id": "6f1c0d8e-9f5a-4a43-9d5e-2f1d3b7c8a90",
        "tracking_code": "DMS-7KQ4-MX9T-2BH3",
        "status": "routed",
        "category": "nikah_rujuk",
        "channel": "web",
        "confidentiality": "confidential",
        "description": "Petugas meminta uang tambahan untuk pendaftaran nikah.",
        "kecamatan_code": "17.08.04",
        "desa_code": "17.08.04.2001",
        "complainant_name": "Siti Aminah",
        "complainant_phone": "+6281234567890",
        "complainant_email": "siti@contoh.id",
        "unit_code": "kua-kepahiang",
        "unit_name": "KUA Kecamatan Kepahiang",
    }
    record.update(overrides)
    return record


def make_history():
    return [
        {"status": "routed", "occurred_at": ROUTED_AT, "actor": "Siti Aminah"},
        {"status": "received", "occurred_at": RECEIVED_AT, "note": "siti@contoh.id"},
    ]


def test_the_lifecycle_uses_the_catalogue_statuses_in_order():
    assert tuple(STATUSES) == STATUS_ORDER
    assert INITIAL_STATUS == STATUS_ORDER[0] == "received"


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("complaint_received", "received"),
        ("complaint_routed", "routed"),
        ("complaint_resolved", "resolved"),
        ("notification_sent", None),
        ("notification_failed", None),
        ("something_else", None),
    ],
)
def test_events_map_to_the_status_they_stand_for(event_type, status):
    assert status_after(event_type) == status


def test_a_first_received_event_sets_the_initial_status():
    assert next_status(None, "complaint_received") == "received"


def test_routing_moves_a_received_complaint_forward():
    assert next_status("received", "complaint_routed") == "routed"


def test_a_late_received_event_never_overrides_routed():
    assert next_status("routed", "complaint_received") == "routed"


def test_a_routed_event_arriving_before_received_is_not_undone():
    status = next_status(None, "complaint_routed")
    assert next_status(status, "complaint_received") == "routed"


def test_events_without_a_status_leave_it_unchanged():
    assert next_status("routed", "notification_sent") == "routed"


def test_redelivering_the_same_event_changes_nothing():
    assert next_status("routed", "complaint_routed") == "routed"


def test_an_unknown_current_status_is_a_bug_and_raises():
    with pytest.raises(ValueError):
        next_status("lost", "complaint_routed")


def test_public_view_has_exactly_the_public_fields():
    view = public_view(make_record(), make_history())
    assert view == {
        "tracking_code": "DMS-7KQ4-MX9T-2BH3",
        "status": "routed",
        "status_label": "Diteruskan ke unit",
        "category": "nikah_rujuk",
        "category_name": "Nikah dan Rujuk",
        "unit_code": "kua-kepahiang",
        "unit_name": "KUA Kecamatan Kepahiang",
        "expected_at": None,
        "history": [
            {"status": "received", "status_label": "Diterima", "at": "2025-03-03T01:00:00+00:00"},
            {
                "status": "routed",
                "status_label": "Diteruskan ke unit",
                "at": "2025-03-03T01:05:00+00:00",
            },
        ],
    }


def test_public_view_contains_no_personal_data_or_complaint_text():
    text = json.dumps(public_view(make_record(), make_history()))
    for private in ("Siti", "+6281234567890", "siti@contoh.id", "Petugas", "17.08.04", "6f1c0d8e"):
        assert private not in text


def test_the_unit_is_shown_only_once_routed():
    view = public_view(
        make_record(status="received"), [{"status": "received", "occurred_at": RECEIVED_AT}]
    )
    assert (view["unit_code"], view["unit_name"]) == (None, None)
    assert view["status_label"] == "Diterima"


def test_the_unit_stays_shown_after_routing():
    view = public_view(make_record(status="resolved"), make_history())
    assert view["unit_name"] == "KUA Kecamatan Kepahiang"
    assert view["status_label"] == "Selesai"


def test_history_times_are_utc_whatever_form_they_are_stored_in():
    view = public_view(
        make_record(),
        [
            {"status": "received", "occurred_at": datetime(2025, 3, 3, 1, 0)},  # naive: UTC
            {"status": "routed", "occurred_at": datetime(2025, 3, 3, 8, 5, tzinfo=WIB)},
            {"status": "acknowledged", "occurred_at": "2025-03-03T09:00:00+07:00"},
        ],
    )
    assert [entry["at"] for entry in view["history"]] == [
        "2025-03-03T01:00:00+00:00",
        "2025-03-03T01:05:00+00:00",
        "2025-03-03T02:00:00+00:00",
    ]


def test_every_history_entry_has_an_indonesian_label():
    history = [
        {"status": status, "occurred_at": RECEIVED_AT + timedelta(hours=i)}
        for i, status in enumerate(STATUS_ORDER)
    ]
    view = public_view(make_record(status="closed"), history)
    assert [entry["status_label"] for entry in view["history"]] == list(STATUSES.values())
