"""The wire contracts: every event type survives a round trip through JSON, and load_event
refuses anything else with the reason the dead-letter queue will show."""

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.contracts import CURRENT_VERSIONS, MalformedEvent, build_event, load_event
from shared.contracts.events import PRODUCERS, SCHEMAS

WIB = timezone(timedelta(hours=7))
COMPLAINT_ID = "3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10"
CAUSE_ID = "0d9b3c1e-6a2f-4f7e-8b5d-1c2e3f4a5b6c"
AT = datetime(2025, 3, 3, 8, 15, 30, tzinfo=WIB)


ATTACHMENT = {"sha256": "ab" * 32, "size": 48213, "media_type": "image/jpeg",
              "name": "atap bocor.jpg"}


def sample_data(event_type: str) -> dict:
    """Valid data for each event type, every field given (so nothing is filled by defaults)."""
    samples = {
        "complaint_received": {
            "complaint_id": COMPLAINT_ID,
            "tracking_code": "DMS-7KQ4-MX9T-2BH3",
            "channel": "qr",
            "category": "pendidikan_madrasah",
            "description": "Ijazah belum diberikan padahal sudah lulus tahun lalu",
            "kecamatan_code": "17.08.05",
            "desa_code": "17.08.05.2003",
            "unit_hint": "mtsn-2-kepahiang",
            "unit_hint_trusted": True,
            "confidentiality": "confidential",
            "contact_channels": ["email", "phone"],
            "received_at": AT,
            "attachments": [ATTACHMENT],
        },
        "complaint_routed": {
            "complaint_id": COMPLAINT_ID,
            "tracking_code": "DMS-7KQ4-MX9T-2BH3",
            "unit_code": "mtsn-2-kepahiang",
            "unit_name": "MTsN 2 Kepahiang",
            "unit_type": "madrasah",
            "stage": "live",
            "rule": "qr_unit",
            "reason": "Pengaduan dari poster QR madrasah",
            "category": "pendidikan_madrasah",
            "channel": "qr",
            "confidentiality": "public",
            "contact_channels": ["whatsapp"],
            "kecamatan_code": None,
            "summary": "Ijazah belum diberikan",
            "routed_at": AT,
            "due_at": AT + timedelta(days=5),
            "status": "routed",
            "seq": 1,
        },
        "notification_sent": {
            "complaint_id": COMPLAINT_ID,
            "delivery_id": "7a1d4c1e-0000-4f7e-8b5d-1c2e3f4a5b6c",
            "cause_event_id": CAUSE_ID,
            "audience": "complainant",
            "channel": "sms",
            "provider": "file",
            "template": "complaint_routed",
            "sent_at": AT,
        },
        "notification_failed": {
            "complaint_id": COMPLAINT_ID,
            "delivery_id": "7a1d4c1e-0000-4f7e-8b5d-1c2e3f4a5b6c",
            "cause_event_id": CAUSE_ID,
            "audience": "unit",
            "channel": "email",
            "provider": "smtp",
            "template": "complaint_routed",
            "reason": "alamat e-mail ditolak",
            "failed_at": AT,
        },
    }
    action = {
        "complaint_id": COMPLAINT_ID,
        "tracking_code": "DMS-7KQ4-MX9T-2BH3",
        "unit_code": "mtsn-2-kepahiang",
        "actor_role": "unit_operator",
        "status": "acknowledged",
        "seq": 2,
        "at": AT,
    }
    samples.update(
        complaint_acknowledged=action,
        complaint_work_started={**action, "status": "in_progress", "cause": "info_added"},
        complaint_info_requested={**action, "question": "Kapan ijazah diminta?"},
        complaint_responded={**action, "response": "Ijazah dapat diambil hari Senin."},
        complaint_resolved={**action, "resolution": "Ijazah sudah diserahkan."},
        complaint_closed={**action, "reason": "Selesai"},
        complaint_returned={**action, "reason": "Bukan wewenang madrasah ini"},
        complaint_sla_warning={"complaint_id": COMPLAINT_ID, "tracking_code": "DMS-7KQ4-MX9T-2BH3",
                     "unit_code": "kua-merigi", "due_at": AT, "at": AT},
        complaint_sla_breached={"complaint_id": COMPLAINT_ID, "tracking_code": "DMS-7KQ4-MX9T-2BH3",
                      "unit_code": "kua-merigi", "due_at": AT, "at": AT},
        unit_stage_changed={"unit_code": "kua-merigi", "old_stage": "off", "new_stage": "pilot",
                            "changed_by": "admin", "reason": "uji coba", "at": AT},
        complaint_info_added={"complaint_id": COMPLAINT_ID, "tracking_code": "DMS-7KQ4-MX9T-2BH3",
                              "channel": "whatsapp", "text": "Foto menyusul", "at": AT},
        complaint_rated={"complaint_id": COMPLAINT_ID, "tracking_code": "DMS-7KQ4-MX9T-2BH3",
                         "rating": 4, "comment": "Cepat", "at": AT},
        complaint_attachment_added={"complaint_id": COMPLAINT_ID,
                                    "tracking_code": "DMS-7KQ4-MX9T-2BH3", "channel": "whatsapp",
                                    "attachment": ATTACHMENT, "at": AT},
        complaint_reopened={"complaint_id": COMPLAINT_ID, "tracking_code": "DMS-7KQ4-MX9T-2BH3",
                            "reason": "Belum selesai", "at": AT},
        complaint_submitted={"message_id": "rd-000123", "channel": "rumah_digital",
                             "category": "nikah_rujuk", "kecamatan_code": "17.08.05",
                             "desa_code": None, "unit_code": None,
                             "description": "Pendaftaran nikah belum diproses dua minggu",
                             "confidentiality": "public",
                             "complainant": {"name": "Budi", "phone": "0812345678",
                                             "email": None}},
    )
    return samples[event_type]


EVENT_TYPES = sorted({event_type for event_type, _ in SCHEMAS})


def envelope(event_type="complaint_received", **data_overrides) -> dict:
    data = {**sample_data(event_type), **data_overrides}
    return build_event(event_type, data, correlation_id=COMPLAINT_ID, occurred_at=AT)


def reason_for(body) -> str:
    with pytest.raises(MalformedEvent) as raised:
        load_event(body)
    return raised.value.reason


# -- round trip ---------------------------------------------------------------------------------


def test_every_event_type_has_a_sample_and_a_producer():
    for event_type in EVENT_TYPES:
        assert sample_data(event_type)
        # "channels": external channels publishing complaint_submitted to intake.
        assert PRODUCERS[event_type] in (
            "intake", "routing", "notification", "reporting", "channels"
        )


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_an_event_survives_a_round_trip_through_json_bytes(event_type):
    built = envelope(event_type)
    wire = json.dumps(built).encode("utf-8")

    event = load_event(wire)

    assert event.event_id == built["event_id"]
    uuid.UUID(event.event_id)
    assert event.event_type == event_type
    assert event.version == CURRENT_VERSIONS[event_type]
    assert event.producer == PRODUCERS[event_type]
    assert event.correlation_id == COMPLAINT_ID
    assert event.occurred_at == AT
    assert event.data == sample_data(event_type)


def test_a_dict_and_a_json_string_load_the_same_event():
    built = envelope()

    assert load_event(built) == load_event(json.dumps(built))


def test_loaded_identifiers_are_strings_and_times_are_aware():
    event = load_event(envelope("notification_sent"))

    assert event.data["complaint_id"] == COMPLAINT_ID
    assert event.data["cause_event_id"] == CAUSE_ID
    assert event.data["sent_at"].utcoffset() is not None
    assert event.data["sent_at"].astimezone(UTC) == datetime(2025, 3, 3, 1, 15, 30, tzinfo=UTC)


# -- refusals -----------------------------------------------------------------------------------


def test_bytes_that_are_not_utf8_are_undecodable():
    assert reason_for(b"\xff\xfe not json") == "undecodable"


def test_text_that_is_not_json_is_undecodable():
    assert reason_for('{"event_id": ') == "undecodable"


@pytest.mark.parametrize("body", ["[1, 2]", "null", '"complaint_received"', "42"])
def test_json_that_is_not_an_object_is_an_invalid_envelope(body):
    assert reason_for(body) == "invalid_envelope"


@pytest.mark.parametrize(
    "field",
    ["event_id", "event_type", "version", "occurred_at", "correlation_id", "producer", "data"],
)
def test_an_envelope_missing_a_field_is_invalid(field):
    body = envelope()
    del body[field]

    assert reason_for(body) == "invalid_envelope"


@pytest.mark.parametrize(
    "field, value",
    [
        ("version", "1"),
        ("event_id", "not-a-uuid"),
        ("occurred_at", "2025-03-03T08:15:30"),  # naive
        ("data", ["not", "an", "object"]),
    ],
)
def test_an_envelope_field_of_the_wrong_type_is_invalid(field, value):
    body = envelope()
    body[field] = value

    assert reason_for(body) == "invalid_envelope"


@pytest.mark.parametrize("version", [3, 99])
def test_a_version_without_a_schema_is_unknown(version):
    body = envelope()  # complaint_received: v1 and v2 exist
    body["version"] = version

    assert reason_for(body) == "unknown_version"


def test_an_unknown_event_type_is_an_unknown_version():
    body = envelope()
    body["event_type"] = "complaint_teleported"

    assert reason_for(body) == "unknown_version"


def test_an_event_of_another_type_than_expected_is_refused():
    with pytest.raises(MalformedEvent) as raised:
        load_event(envelope("complaint_routed"), expected_types=("complaint_received",))

    assert raised.value.reason == "unexpected_type"


def test_an_unknown_field_in_data_is_invalid_data():
    body = envelope()
    body["data"]["email"] = "siti.aminah@contoh.id"  # personal data never travels in an event

    assert reason_for(body) == "invalid_data"


@pytest.mark.parametrize(
    "field, value",
    [
        ("description", 123),
        ("complaint_id", "not-a-uuid"),
        ("contact_channels", "email"),
        ("category", "sengketa_tanah"),
        ("received_at", "kemarin"),
    ],
)
def test_a_data_field_of_the_wrong_type_or_value_is_invalid_data(field, value):
    body = envelope()
    body["data"][field] = value

    assert reason_for(body) == "invalid_data"


def test_data_missing_a_required_field_is_invalid_data():
    body = envelope()
    del body["data"]["category"]

    assert reason_for(body) == "invalid_data"


def test_a_malformed_event_says_what_is_wrong():
    body = envelope()
    body["data"]["description"] = 123

    with pytest.raises(MalformedEvent) as raised:
        load_event(body)

    assert "description" in raised.value.details
    assert str(raised.value).startswith("invalid_data: ")


# -- building -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_type, field, value",
    [
        ("complaint_received", "category", "sengketa_tanah"),
        ("complaint_received", "description", ""),
        ("complaint_received", "received_at", datetime(2025, 3, 3, 8, 15)),  # naive
        ("complaint_routed", "unit_type", "kantor"),
        ("notification_sent", "audience", "kepala"),
        ("notification_failed", "reason", ""),
    ],
)
def test_build_event_refuses_invalid_data(event_type, field, value):
    with pytest.raises(ValueError, match=f"invalid {event_type} event"):
        envelope(event_type, **{field: value})


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_build_event_refuses_data_missing_a_required_field(event_type):
    data = dict(sample_data(event_type))
    required = next(k for k in ("complaint_id", "message_id", "unit_code") if k in data)
    del data[required]

    with pytest.raises(ValueError, match=required):
        build_event(event_type, data, correlation_id=COMPLAINT_ID)


def test_a_complaint_received_v1_still_in_a_queue_is_upcast_with_no_attachments():
    data = {k: v for k, v in envelope("complaint_received")["data"].items()
            if k != "attachments"}
    v1 = {**envelope("complaint_received"), "version": 1, "data": data}

    event = load_event(json.dumps(v1))

    assert (event.version, event.data["attachments"]) == (2, [])
