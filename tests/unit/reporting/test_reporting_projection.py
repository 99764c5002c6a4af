"""The reporting projection as a pure function: order tolerance, forward-only status, re-routes,
notification counters."""

from datetime import UTC, datetime, timedelta

from services.reporting.domain.projection import project

COMPLAINT_ID = "3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10"
RECEIVED_AT = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
ROUTED_AT = RECEIVED_AT + timedelta(seconds=30)


def received(**overrides):
    data = {
        "complaint_id": COMPLAINT_ID,
        "tracking_code": "DMS-7KQ4-MX9T-2BH3",
        "channel": "qr",
        "category": "nikah_rujuk",
        "description": "Pendaftaran nikah di KUA sangat lambat dilayani",
        "kecamatan_code": "17.08.05",
        "confidentiality": "public",
        "contact_channels": ["email"],
        "received_at": RECEIVED_AT,
    }
    data.update(overrides)
    return data


def routed(unit_code="kua-merigi", rule="kua_kecamatan", at=ROUTED_AT, **overrides):
    data = {
        "complaint_id": COMPLAINT_ID,
        "tracking_code": "DMS-7KQ4-MX9T-2BH3",
        "unit_code": unit_code,
        "unit_name": "KUA Kecamatan Merigi",
        "unit_type": "kua",
        "stage": "pilot",
        "rule": rule,
        "reason": "Urusan nikah ditangani KUA kecamatan",
        "category": "nikah_rujuk",
        "channel": "qr",
        "confidentiality": "public",
        "contact_channels": ["email"],
        "kecamatan_code": "17.08.05",
        "summary": "",
        "routed_at": at,
        "due_at": at + timedelta(days=5),
    }
    data.update(overrides)
    return data


def notification(audience="unit", at=ROUTED_AT + timedelta(minutes=1)):
    return {
        "complaint_id": COMPLAINT_ID,
        "delivery_id": "d-1",
        "cause_event_id": "0d9b3c1e-6a2f-4f7e-8b5d-1c2e3f4a5b6c",
        "audience": audience,
        "channel": "email",
        "provider": "file",
        "template": "complaint_routed",
        "sent_at": at,
    }


def apply_all(*steps, start=None):
    row = start
    for event_type, data in steps:
        row = project(row, event_type, data)
    return row


def test_received_then_routed_gives_a_routed_complaint_with_all_its_facts():
    row = apply_all(("complaint_received", received()), ("complaint_routed", routed()))

    assert row["status"] == "routed"
    assert (row["channel"], row["category"], row["kecamatan_code"]) == (
        "qr", "nikah_rujuk", "17.08.05"
    )
    assert (row["unit_code"], row["rule"]) == ("kua-merigi", "kua_kecamatan")
    assert row["received_at"] == RECEIVED_AT
    assert row["routed_at"] == ROUTED_AT
    assert row["due_at"] == ROUTED_AT + timedelta(days=5)
    assert (row["notifications_sent"], row["notifications_failed"]) == (0, 0)


def test_the_same_events_in_any_order_give_the_same_facts():
    events = [
        ("complaint_received", received()),
        ("complaint_routed", routed()),
        ("notification_sent", notification("unit")),
        ("notification_sent", notification("complainant")),
    ]
    in_order = apply_all(*events)

    assert apply_all(*reversed(events)) == in_order
    assert apply_all(events[1], events[0], events[3], events[2]) == in_order


def test_a_late_complaint_received_does_not_move_the_status_back():
    row = apply_all(("complaint_routed", routed()), ("complaint_received", received()))

    assert row["status"] == "routed"
    assert row["received_at"] == RECEIVED_AT
    assert row["unit_code"] == "kua-merigi"


def test_a_late_complaint_received_fills_gaps_without_overriding_later_facts():
    row = apply_all(
        ("complaint_routed", routed(kecamatan_code=None)),
        ("complaint_received", received(channel="web", kecamatan_code="17.08.05")),
    )

    assert row["channel"] == "qr"  # said by routing first: kept
    assert row["kecamatan_code"] == "17.08.05"  # routing said nothing: filled


def test_a_status_never_moves_back_from_a_later_stage():
    row = apply_all(("complaint_routed", routed()), start={"complaint_id": COMPLAINT_ID,
                                                          "status": "resolved", "status_seq": 4})

    assert row["status"] == "resolved"


def test_a_re_route_replaces_the_unit_but_keeps_the_first_routing_time():
    later = ROUTED_AT + timedelta(hours=2)
    row = apply_all(
        ("complaint_received", received()),
        ("complaint_routed", routed()),
        ("complaint_routed", routed("kankemenag-kepahiang", rule="returned", at=later)),
    )

    assert (row["unit_code"], row["rule"]) == ("kankemenag-kepahiang", "returned")
    assert row["routed_at"] == ROUTED_AT
    assert row["due_at"] == later + timedelta(days=5)
    assert row["status"] == "routed"


def test_a_late_original_routing_does_not_undo_a_re_route():
    later = ROUTED_AT + timedelta(hours=2)
    re_route = ("complaint_routed", routed("kankemenag-kepahiang", rule="returned", at=later))
    original = ("complaint_routed", routed())
    in_order = apply_all(("complaint_received", received()), original, re_route)

    out_of_order = apply_all(("complaint_received", received()), re_route, original)

    # The module promises order tolerance: the newest routing decides the unit, the earliest
    # routing time is kept, whichever copy arrives last.
    assert (out_of_order["unit_code"], out_of_order["rule"]) == ("kankemenag-kepahiang",
                                                                 "returned")
    assert out_of_order["routed_at"] == ROUTED_AT
    assert out_of_order == in_order


def test_notifications_are_counted_and_the_first_time_per_audience_is_kept():
    first = ROUTED_AT + timedelta(minutes=1)
    row = apply_all(
        ("complaint_received", received()),
        ("complaint_routed", routed()),
        ("notification_sent", notification("unit", at=first)),
        ("notification_sent", notification("unit", at=first + timedelta(hours=1))),
        ("notification_sent", notification("complainant", at=first + timedelta(minutes=2))),
        ("notification_failed", {"complaint_id": COMPLAINT_ID, "audience": "complainant"}),
    )

    assert (row["notifications_sent"], row["notifications_failed"]) == (3, 1)
    assert row["unit_notified_at"] == first
    assert row["complainant_notified_at"] == first + timedelta(minutes=2)
    assert row["status"] == "routed"


def test_a_complaint_known_only_from_a_notification_counts_as_received():
    row = project(None, "notification_sent", notification("unit"))

    assert row["complaint_id"] == COMPLAINT_ID
    assert row["status"] == "received"
    assert row["notifications_sent"] == 1
    assert row.get("unit_code") is None


def test_projecting_does_not_change_the_row_it_was_given():
    current = project(None, "complaint_received", received())
    snapshot = dict(current)

    project(current, "complaint_routed", routed())

    assert current == snapshot
